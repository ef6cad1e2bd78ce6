"""The `alignloop evaluate` group's own command: with --models it compares models pairwise
(`compare.run_comparison`); with a subcommand (`reward`, `safety`, ...) it steps aside.

The options are EvaluateConfig's fields, built by `config_command` as for every other command,
and become the group callback's (Typer runs a group callback before any subcommand, so the
callback runs the comparison only when no subcommand was named).
"""

from __future__ import annotations

import inspect
import os
from typing import Any

import typer
from rich.console import Console

from alignloop.config import config_command
from alignloop.evaluate.config import EvaluateConfig

HELP = (
    "Measure trained models. With --models A,B,... --prompts FILE: compare them pairwise "
    "(win rates with intervals, Bradley-Terry ratings, good-response and unsafe rates, "
    "promotion against the first model) and write report.json + report.html; or run a "
    "subcommand."
)


def register_compare(evaluate_app: typer.Typer, console: Console) -> None:
    """Make `alignloop evaluate --models ...` run the comparison on `evaluate_app`."""
    holder = typer.Typer()
    config_command(holder, "compare", EvaluateConfig, HELP)(lambda s: run_command(s, console))
    inner = holder.registered_commands[0].callback
    options = list(inspect.signature(inner).parameters.values())

    def callback(ctx: typer.Context, **kwargs: Any) -> None:
        if ctx.invoked_subcommand is not None:
            return
        if kwargs.get("models") is None and kwargs.get("config") is None:
            typer.echo(ctx.get_help())
            raise typer.Exit(0)
        inner(**kwargs)

    context = inspect.Parameter(
        "ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context
    )
    callback.__signature__ = inspect.Signature([context, *options])  # type: ignore[attr-defined]
    evaluate_app.callback(invoke_without_command=True, help=HELP)(callback)


def run_command(settings: EvaluateConfig, console: Console) -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads, as elsewhere
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from alignloop.evaluate.compare import run_comparison

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console) as bar:
        tasks: dict[str, Any] = {}

        def on_progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        result = run_comparison(settings, on_progress)
    Console().print(summary_table(result.data))
    typer.echo(f"report: {result.report}")


def summary_table(data: dict[str, Any]):
    """Win rates, ratings and promotion decisions for the terminal."""
    from rich.console import Group
    from rich.table import Table

    wins = Table(title="win rates (ties half)")
    for column in ("model a", "over model b", "win rate", "interval", "n"):
        wins.add_column(column)
    for row in data["win_rates"]:
        interval = f"[{row['low']:.3f}, {row['high']:.3f}]"
        wins.add_row(row["model_a"], row["model_b"], f"{row['rate']:.3f}", interval, str(row["n"]))
    ratings = Table(title="Bradley-Terry ratings")
    for column in ("model", "rating", "interval"):
        ratings.add_column(column)
    for row in sorted(data["ratings"], key=lambda r: -r["rating"]):
        interval = f"[{row['low']:.0f}, {row['high']:.0f}]"
        ratings.add_row(row["model"], f"{row['rating']:.0f}", interval)
    lines = [
        f"{p['candidate']}: {'promote' if p['promote'] else 'keep ' + p['deployed']} "
        f"({'; '.join(p['reasons'])})"
        for p in data.get("promotion") or []
    ]
    return Group(wins, ratings, *lines)
