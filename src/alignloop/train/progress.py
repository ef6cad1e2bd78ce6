"""A progress bar over training steps, with the latest loss and the algorithm's metrics."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from alignloop.train.config import TrainConfig
from alignloop.train.loop import TrainResult
from alignloop.train.run import train

SHOWN = ("loss", "accuracy", "score", "kl", "reward_margin")


def train_with_progress(algo: str, config: TrainConfig, console: Console) -> TrainResult:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[metrics]}"),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(f"train {algo}", total=None, metrics="loading")

        def on_step(step: int, total: int, metrics: dict) -> None:
            shown = "  ".join(f"{k} {metrics[k]:.4f}" for k in SHOWN if k in metrics)
            bar.update(task, completed=step, total=total, metrics=shown)

        return train(algo, config, on_step)
