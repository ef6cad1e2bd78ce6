"""`alignloop simulate [--users N --turns M --server URL ...]`: the `simulate` group's callback.

Given no subcommand, the group runs the live simulation with one flag per field of
`SimulateLiveConfig` (plus --config FILE.yaml); `alignloop simulate deployment ...` still
runs the bulk simulator. A Rich progress bar while users talk; a summary table at the end.
"""

from __future__ import annotations

import inspect
import typing
from pathlib import Path
from typing import Any, Literal

import typer
from rich.console import Console
from rich.table import Table

from alignloop.config import _cli_type, load_config
from alignloop.simulate.live.config import SimulateLiveConfig


def _option_parameters() -> list[inspect.Parameter]:
    """One keyword parameter per config field (a Typer option), as `config_command` builds."""
    params = [
        inspect.Parameter(
            "config",
            inspect.Parameter.KEYWORD_ONLY,
            default=typer.Option(None, "--config", help="YAML file of options."),
            annotation=Path | None,
        )
    ]
    for name, field in SimulateLiveConfig.model_fields.items():
        flag = "--" + name.replace("_", "-")
        kind = _cli_type(field.annotation)
        decl = f"{flag}/--no-{flag[2:]}" if kind is bool else flag
        extra = ""
        if typing.get_origin(field.annotation) is Literal:
            extra = f" One of: {', '.join(map(str, typing.get_args(field.annotation)))}."
        params.append(
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=typer.Option(
                    None,
                    decl,
                    help=f"{field.description}{extra} [default: {field.default}]",
                    show_default=False,
                ),
                annotation=kind | None,
            )
        )
    return params


def add_live_callback(group: typer.Typer, console: Console) -> None:
    """Make `group` run the live simulation when it is called without a subcommand."""

    def callback(ctx: typer.Context, **options: Any) -> None:
        if ctx.invoked_subcommand is not None:
            return
        path = options.pop("config")
        overrides = {k: v for k, v in options.items() if v is not None}
        run_live(load_config(SimulateLiveConfig, path, overrides), console)

    context = inspect.Parameter(
        "ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context
    )
    callback.__signature__ = inspect.Signature([context, *_option_parameters()])  # type: ignore[attr-defined]
    callback.__doc__ = (SimulateLiveConfig.__doc__ or "").strip()
    group.callback(invoke_without_command=True)(callback)


def run_live(settings: SimulateLiveConfig, console: Console) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from alignloop.simulate.live.run import simulate

    columns = (TextColumn("users talking"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("turns", total=settings.users * settings.turns)
        result = simulate(settings, lambda done, total: bar.update(task, completed=done))
    Console().print(summary_table(result.summary))
    for error in result.summary["errors"]:
        console.print(f"[yellow]user {error['user']} stopped early:[/yellow] {error['error']}")
    console.print(f"ground truth in {result.replies_path}; summary in {result.summary_path}")


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def summary_table(summary: dict[str, Any]) -> Table:
    """Good-response and unsafe rates by the gold judge, by group; then the feedback posted."""
    table = Table(title="Simulated users vs. the served model (gold judge)")
    for column in ("group", "replies", "good", "unsafe"):
        table.add_column(column, justify="left" if column == "group" else "right")
    sections = [("all", {"": summary["overall"]})]
    sections += [
        ("user type", summary["by_user_type"]),
        ("prompt", summary["by_prompt_kind"]),
        ("model", summary["by_model_version"]),
    ]
    if "measure" in summary:
        sections.append(("held-out", {"measured": summary["measure"]}))
    for section, groups in sections:
        for name, figures in groups.items():
            table.add_row(
                f"{section}: {name}" if name else section,
                str(figures["n"]),
                _percent(figures["good_rate"]),
                _percent(figures["unsafe_rate"]),
            )
    feedback = summary["feedback"]
    table.caption = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in feedback.items())
    return table
