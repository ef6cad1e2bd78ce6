"""`alignloop redteam round`: one Bot-Adversarial-Dialogue round on the command line."""

from __future__ import annotations

import typer

from alignloop.config import config_command
from alignloop.safety.cli import console, passive_omp_threads, progress_bar
from alignloop.safety.redteam_config import RedteamRoundConfig

redteam_app = typer.Typer(
    no_args_is_help=True,
    help="Bot-Adversarial-Dialogue: retrain the safety classifier on red-team labels, in rounds.",
)


@config_command(
    redteam_app, "round", RedteamRoundConfig, (RedteamRoundConfig.__doc__ or "").strip()
)
def round_(settings: RedteamRoundConfig) -> None:
    passive_omp_threads()
    from alignloop.safety.redteam import run_round

    with progress_bar() as bar:
        task = bar.add_task("red-team round", total=None, metrics="")

        def on_progress(stage: str, done: int, total: int, metrics: dict) -> None:
            shown = "  ".join(f"{key} {value:.4g}" for key, value in metrics.items())
            bar.update(task, description=stage, completed=done, total=total or None, metrics=shown)

        result = run_round(settings, on_progress)
    gathered = result.gathered
    console.print(
        f"red-team round {result.number}: {gathered.new_labels} new labels "
        f"(ids {gathered.first_label_id}..{gathered.last_label_id}) on {len(gathered.new)} "
        f"replies, {gathered.several_labels} labelled by several people "
        f"({gathered.split_votes} disagreed, majority kept)"
    )
    console.print(
        f"  trained on {result.train_rows} red-team rows (every round so far) + "
        f"{result.base_rows} base rows; compared on {result.eval_rows} rows "
        f"({result.holdout} held-out red-team replies)"
    )
    for label, metrics in (("old", result.old), ("new", result.new)):
        name = result.previous_classifier if label == "old" else f"redteam-round-{result.number}"
        auc = "undefined" if metrics["auc"] is None else f"{metrics['auc']:.4f}"
        console.print(
            f"  {label} {name}: unsafe-F1 {metrics['unsafe_f1']:.4f}  "
            f"accuracy {metrics['accuracy']:.4f}  AUC {auc}"
        )
    verdict = "promoted" if result.promoted else "not promoted (the gate keeps the old classifier)"
    verdict += f" by {settings.compare_by}"
    console.print(
        f"  round {result.number}: {verdict}; classifier in {result.folder}", soft_wrap=True
    )
