"""`alignloop safety train | score`: the safety classifiers on the command line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from alignloop.config import config_command
from alignloop.safety.baked import BakeConfig
from alignloop.safety.config import SafetyTrainConfig
from alignloop.safety.multitask import GateDataConfig
from alignloop.safety.sensitive import SensitiveTopicsConfig

safety_app = typer.Typer(
    no_args_is_help=True,
    help="Safety classifiers P(unsafe | context, utterance): train one, score files with it.",
)
console = Console(stderr=True)
SCORE_CHUNK = 1024  # pairs per progress update while scoring


def passive_omp_threads() -> None:
    """Torch's OpenMP workers otherwise spin between operations and, on cores shared with
    other work, make each step several times slower (measured: 3.5x on 2 busy cores). Must
    happen before torch loads; an explicit OMP_WAIT_POLICY in the environment wins."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[metrics]}"),
        console=console,
    )


@config_command(safety_app, "train", SafetyTrainConfig, (SafetyTrainConfig.__doc__ or "").strip())
def train(settings: SafetyTrainConfig) -> None:
    passive_omp_threads()
    from alignloop.safety.train import train_classifier

    with progress_bar() as bar:
        task = bar.add_task(f"{settings.kind}: reading data", total=None, metrics="")

        def on_progress(stage: str, done: int, total: int, metrics: dict) -> None:
            shown = "  ".join(f"{key} {value:.4g}" for key, value in metrics.items())
            bar.update(task, description=stage, completed=done, total=total, metrics=shown)

        result = train_classifier(settings, on_progress)
    console.print(f"trained {settings.kind} classifier {result.name!r} in {result.folder}")
    for key, value in result.metrics.items():
        console.print(f"  {key}: {value:.4g}" if isinstance(value, float) else f"  {key}: {value}")
    if result.version_id is not None:
        console.print(f"registered as model version {result.version_id} in {settings.db}")


@safety_app.command("score")
def score(
    classifier: str = typer.Option(
        ..., "--classifier", help="Classifier folder, 'profanity', or a registered name with --db."
    ),
    data: Path = typer.Option(
        ..., "--data", help="Rows with context and response (label optional): .jsonl, .json, ..."
    ),
    out: Path = typer.Option(..., "--out", help='Scores file: one {"p_unsafe": p} line per row.'),
    db: str | None = typer.Option(None, "--db", help="Store to look registered names up in."),
    threshold: float = typer.Option(
        0.5, "--threshold", min=0, max=1, help="P(unsafe) counted unsafe in the printed metrics."
    ),
) -> None:
    """Score every row of a file, in order; prints unsafe-F1 and accuracy when all are labelled."""
    passive_omp_threads()
    import numpy as np

    from alignloop.safety.classifiers import load_classifier
    from alignloop.safety.data import load_safety_examples
    from alignloop.safety.train import classification_metrics

    examples = load_safety_examples(data, require_label=False)
    with console.status(f"loading {classifier}"):
        model = load_classifier(classifier, db)
    pairs = [(e.context, e.response) for e in examples]
    scores = []
    with progress_bar() as bar:
        task = bar.add_task("score", total=len(pairs), metrics="")
        for start in range(0, len(pairs), SCORE_CHUNK):
            scores.append(model.score_batch(pairs[start : start + SCORE_CHUNK]))
            bar.update(task, advance=len(scores[-1]))
    write_scores(out, np.concatenate(scores))
    console.print(f"wrote {len(examples)} scores to {out}")
    if all(e.label is not None for e in examples):
        labels = [bool(e.label) for e in examples]
        metrics = classification_metrics(labels, np.concatenate(scores), threshold)
        shown = {key: value for key, value in metrics.items() if value is not None}
        console.print("  ".join(f"{key} {value:.4f}" for key, value in shown.items()))


def write_scores(out: Path, scores) -> None:
    """One JSON line per score, written whole or not at all."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial-{os.getpid()}")
    partial.write_text("".join(json.dumps({"p_unsafe": float(p)}) + "\n" for p in scores))
    os.replace(partial, out)


@config_command(safety_app, "bake", BakeConfig, (BakeConfig.__doc__ or "").strip())
def bake(settings: BakeConfig) -> None:
    passive_omp_threads()
    from alignloop.safety.baked import build_baked_dataset

    with progress_bar() as bar:
        task = bar.add_task("bake: reading data", total=None, metrics="")

        def on_progress(stage: str, done: int, total: int, metrics: dict) -> None:
            counted = {"completed": done, "total": total} if total else {}
            bar.update(task, description=f"bake: {stage}", **counted)

        result = build_baked_dataset(settings, on_progress)
    console.print(
        f"wrote {len(result.rows)} SFT rows to {result.out} (card: {result.out}.card.json)"
    )
    for key, value in result.counts().items():
        console.print(f"  {key}: {value}")


@config_command(safety_app, "gate-data", GateDataConfig, (GateDataConfig.__doc__ or "").strip())
def gate_data(settings: GateDataConfig) -> None:
    from alignloop.safety.multitask import build_gate_data

    with console.status("building the gate's multi-task data"):
        result = build_gate_data(settings)
    console.print(f"wrote {len(result.rows)} rows to {result.out} (card: {result.out}.card.json)")
    for key, value in result.counts().items():
        console.print(f"  {key}: {value}")


# --- `alignloop safety topics`: the sensitive-topic classifier (safety/sensitive.py) ----------


@config_command(
    safety_app, "topics", SensitiveTopicsConfig, (SensitiveTopicsConfig.__doc__ or "").strip()
)
def topics(settings: SensitiveTopicsConfig) -> None:
    passive_omp_threads()
    from alignloop.safety.sensitive import train_topic_classifier

    with progress_bar() as bar:
        task = bar.add_task("sensitive topics: reading data", total=None, metrics="")

        def on_progress(stage: str, done: int, total: int, metrics: dict) -> None:
            bar.update(task, description=stage, completed=done, total=total)

        result = train_topic_classifier(settings, on_progress)
    metrics = result.metrics
    console.print(
        f"trained sensitive-topic classifier {result.name!r} in {result.folder} "
        f"({metrics['train_rows']} train rows, {metrics['eval_rows']} held out)"
    )
    for label, key in ((f"{settings.threshold:g}", "eval_at_threshold"), ("0.5", "eval_at_0.5")):
        held = metrics[key]
        console.print(
            f"  held-out at {label}: sensitive F1 {held['sensitive_f1']:.4f}  "
            f"precision {held['sensitive_precision']:.4f}  recall {held['sensitive_recall']:.4f}  "
            f"accuracy {held['accuracy']:.4f}"
        )
        recall = "  ".join(f"{t} {r:.3f}" for t, r in held["topic_recall"].items() if r is not None)
        flagged = "  ".join(
            f"{s} {v:.3f}" for s, v in held["none_flagged"].items() if v is not None
        )
        console.print(f"    topic recall: {recall}")
        console.print(f"    none rows flagged: {flagged}")
    if result.version_id is not None:
        console.print(f"registered as model version {result.version_id} in {settings.db}")
