"""The one command line: `alignloop --help` lists every command."""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console

from alignloop.config import ServeConfig, config_command
from alignloop.curate.config import CurateConfig, ReleaseConfig
from alignloop.errors import AlignloopError
from alignloop.evaluate.config import SafetyEvalConfig
from alignloop.loop.cli import register_demo, register_loop
from alignloop.safety.cli import safety_app
from alignloop.safety.redteam_cli import redteam_app
from alignloop.simulate.live.cli import add_live_callback
from alignloop.simulate.settings import SimulateDeploymentConfig
from alignloop.synth.cli import synth_app

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
db_app = typer.Typer(no_args_is_help=True, help="The store's schema (Alembic migrations).")
models_app = typer.Typer(no_args_is_help=True, help="Models: build the embedded ones once.")
app.add_typer(db_app, name="db")
app.add_typer(models_app, name="models")
train_app = typer.Typer(
    no_args_is_help=True,
    help="Train a model version: sft, reward, dpo, kto, cringe, ppo (configs/train/*.yaml).",
)
app.add_typer(train_app, name="train")
evaluate_app = typer.Typer(no_args_is_help=True, help="Measure trained models.")
app.add_typer(evaluate_app, name="evaluate")
app.add_typer(safety_app, name="safety")
app.add_typer(redteam_app, name="redteam")
app.add_typer(synth_app, name="synth")
simulate_app = typer.Typer(
    help="Simulated users, to test the loop: with no subcommand, users chat with a running "
    "server over HTTP (--users N --turns M --server URL); `deployment` fills a store directly."
)
app.add_typer(simulate_app, name="simulate")
console = Console(stderr=True)
add_live_callback(simulate_app, console)  # `alignloop simulate --users N --turns M --server URL`

DB_OPTION = typer.Option("alignloop.db", "--db", help="SQLite file path or SQLAlchemy URL.")


@config_command(app, "serve", ServeConfig, "Serve the model: chat API, feedback, compare, UI.")
def serve(settings: ServeConfig) -> None:
    # No OMP_WAIT_POLICY=PASSIVE here: it made every forward pass about 30% slower on 2 cores
    # (OpenMP workers sleeping between parallel regions) to save 3 ms per chat turn. All
    # generation runs on one model thread (backends/batching.py), so one team spins at most.
    from alignloop.serve.runner import serve_forever

    url = f"http://{settings.host}:{settings.port}"
    console.print(f"alignloop chat: {url}/  (also /compare, /redteam, /privacy)", soft_wrap=True)
    console.print(
        f"admin: {url}/admin"
        if settings.admin_token
        else "admin: off (set admin_token in a --config file to open /admin)",
        soft_wrap=True,
    )
    serve_forever(settings)


@db_app.command("upgrade")
def db_upgrade(db: str = DB_OPTION) -> None:
    """Apply every migration the store lacks (the server also does this when it starts)."""
    from alignloop.store.db import current_revision, make_engine, upgrade

    engine = make_engine(db)
    upgrade(engine)
    console.print(f"store {db} is at revision {current_revision(engine)}")


@db_app.command("current")
def db_current(db: str = DB_OPTION) -> None:
    """Print the store's migration revision."""
    from alignloop.store.db import current_revision, make_engine

    typer.echo(current_revision(make_engine(db)) or "empty (run: alignloop db upgrade)")


@app.command("export")
def export_cmd(
    db: str = DB_OPTION,
    out: Path = typer.Option(..., "--out", help="Output file: .jsonl, or .parquet."),
    with_context: bool = typer.Option(
        False, "--with-context", help="Include each bot turn's context snapshot."
    ),
) -> None:
    """Export conversations with their feedback, leaving out users who asked for deletion."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from alignloop.curate.export import export
    from alignloop.store.db import make_engine

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=console) as bar:
        task = bar.add_task("exporting conversations", total=None)
        count = export(make_engine(db), out, with_context, lambda: bar.advance(task))
    console.print(f"wrote {count} conversations to {out}")


@config_command(app, "curate", CurateConfig, (CurateConfig.__doc__ or "").strip())
def curate_cmd(settings: CurateConfig) -> None:
    from alignloop.curate.run import curate

    with _stage_progress() as on_stage:
        result = curate(settings, on_stage)
    summary = result.summary
    typer.echo(f"curation run {result.run_id}: datasets in {result.out}")
    typer.echo(
        f"  {summary['messages']} messages, {summary['messages_flagged_unsafe']} flagged unsafe; "
        f"{summary['users']} users, {summary['users_distrusted']} users distrusted"
    )
    typer.echo(
        f"  bot replies: {summary['bot_replies_positive']} positive, "
        f"{summary['bot_replies_negative']} negative"
    )
    for kind, rows in summary["rows"].items():
        typer.echo(f"  {kind}: {rows} rows")
    typer.echo("  seconds: " + ", ".join(f"{k} {v}" for k, v in result.seconds.items()))


@config_command(app, "release", ReleaseConfig, (ReleaseConfig.__doc__ or "").strip())
def release_cmd(settings: ReleaseConfig) -> None:
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from alignloop.curate.release import release
    from alignloop.store.db import make_engine

    secret = Path(settings.secret_file) if settings.secret_file else None
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=console) as bar:
        task = bar.add_task("de-identifying conversations", total=None)
        card = release(
            make_engine(settings.db), Path(settings.out), secret, lambda: bar.advance(task)
        )
    typer.echo(
        f"released {card['conversations']} conversations of {card['users']} users to "
        f"{settings.out} ({card['conversations_left_out']} left out without consent)"
    )


@contextmanager
def _stage_progress():
    """A Rich progress line per stage of a chain (`on_stage(name, done, total)`)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console
    ) as bar:
        tasks: dict[str, int] = {}

        def on_stage(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=total)
            bar.update(tasks[name], completed=done)

        yield on_stage


@config_command(
    simulate_app,
    "deployment",
    SimulateDeploymentConfig,
    (SimulateDeploymentConfig.__doc__ or "").strip(),
)
def simulate_deployment_cmd(settings: SimulateDeploymentConfig) -> None:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from alignloop.simulate.deployment import DeploymentConfig, FeedbackRates, simulate_into

    config = DeploymentConfig(rates=FeedbackRates.bb3x()) if settings.bb3x_rates else None
    columns = (TextColumn("simulating"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("messages", total=settings.messages)
        population = simulate_into(
            settings.db,
            settings.users,
            settings.messages,
            settings.seed,
            settings.troll_share,
            settings.truth,
            config,
            settings.texts_from,
            lambda n: bar.update(task, completed=n),
        )
    typer.echo(
        f"wrote into {settings.db}: " + ", ".join(f"{v} {k}" for k, v in population.counts.items())
    )
    if settings.truth:
        typer.echo(f"ground truth in {settings.truth}")


@models_app.command("prepare")
def models_prepare(name: str = typer.Argument("smollm2", help="'smollm2', 'tiny' or a path.")):
    """Build an embedded model's cached safetensors folder now (serve does it on first use)."""
    from alignloop.backends.models import resolve_model

    with console.status(f"preparing {name}"):
        resolved = resolve_model(name)
    console.print(f"{resolved.name}: {resolved.path}")


def _register_trainers() -> None:
    from alignloop.train.config import ALGORITHMS

    for algo, cls in ALGORITHMS.items():
        config_command(train_app, algo, cls, (cls.__doc__ or algo).strip())(_trainer(algo))


def _trainer(algo: str):
    def run(settings) -> None:
        from alignloop.train.progress import train_with_progress

        result = train_with_progress(algo, settings, console)
        console.print(f"trained {algo}: {result.steps} steps, version in {result.out}")
        for key, value in result.metrics.items():
            console.print(
                f"  {key}: {value:.4g}" if isinstance(value, float) else f"  {key}: {value}"
            )
        if result.version_id is not None:
            console.print(f"registered as model version {result.version_id} in {settings.db}")

    return run


_register_trainers()


def _register_compare() -> None:
    """`alignloop evaluate --models A,B --prompts FILE`: the pairwise comparison and report."""
    from alignloop.evaluate.command import register_compare

    register_compare(evaluate_app, console)


_register_compare()


@evaluate_app.command("reward")
def evaluate_reward(
    model: Path = typer.Option(..., "--model", help="Folder of a trained reward model."),
    data: Path = typer.Option(..., "--data", help="Pairs file (prompt/chosen/rejected or HH)."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Pairs scored at once."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Score at most this many."),
) -> None:
    """Pairwise accuracy of a reward model: the share of pairs it scores chosen above rejected."""
    from alignloop.evaluate.reward import pairwise_accuracy

    result = pairwise_accuracy(model, data, batch_size, limit, console)
    typer.echo(f"pairwise accuracy {result.accuracy:.4f} on {result.pairs} pairs")


@evaluate_app.command("judge")
def evaluate_judge(
    judge: str = typer.Option(..., "--judge", help="Judge classifier: a folder or 'profanity'."),
    labels: Path = typer.Option(..., "--labels", help="JSON lines: context, reply, unsafe."),
    threshold: float = typer.Option(
        0.5, "--threshold", min=0.0, max=1.0, help="P(unsafe) at which the judge says unsafe."
    ),
) -> None:
    """How far a safety judge agrees with people's labels: accuracy, the unsafe class's
    precision, recall and F1, false and missed unsafe rates, Cohen's kappa and the AUC."""
    from alignloop.evaluate.agreement import read_labels, score_labels
    from alignloop.safety.classifiers import load_classifier

    rows = read_labels(labels)  # a bad file is refused before the judge loads
    figures = score_labels(load_classifier(judge), rows, threshold)
    typer.echo(json.dumps(figures, indent=2))


@config_command(evaluate_app, "safety", SafetyEvalConfig, (SafetyEvalConfig.__doc__ or "").strip())
def evaluate_safety_cmd(settings: SafetyEvalConfig) -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as in `safety train`: before torch
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from alignloop.evaluate.safety import evaluate_safety, report_table

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=console) as bar:
        tasks: dict[str, int] = {}

        def on_progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        report = evaluate_safety(settings, on_progress)
    Console().print(report_table(report))
    if settings.out:
        console.print(f"report in {settings.out}")
    if settings.replies_out:
        console.print(f"replies in {settings.replies_out}")


register_loop(app)
register_demo(app)


@app.command("tour")
def tour(
    model: str = typer.Option("smollm2", help="Model to serve ('tiny' for a quick run)."),
    out: Path = typer.Option(Path("demo-data"), help="Folder for the store, export and logs."),
) -> None:
    """Start the server, hold one scripted conversation with feedback over HTTP, show the data."""
    from alignloop.demo import run_demo

    run_demo(model, out, console)


def main() -> None:
    try:
        app()
    except AlignloopError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        sys.exit(2)
