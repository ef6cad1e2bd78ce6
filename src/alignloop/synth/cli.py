"""`alignloop synth queries | responses | comparisons | run`: ALMoST's synthetic comparisons.

    alignloop synth run --config configs/synth.yaml          # all three steps, one folder
    alignloop synth queries --out runs/synth --num-queries 200
    alignloop synth responses --out runs/synth --rubric configs/synth-rubric.yaml
    alignloop synth comparisons --out runs/synth
    alignloop train reward --data runs/synth/pairs.jsonl ...

Every step resumes in its --out folder after a crash; see alignloop.synth for the files.
"""

from __future__ import annotations

from contextlib import contextmanager

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from alignloop.config import config_command
from alignloop.synth.config import (
    SynthComparisonsConfig,
    SynthQueriesConfig,
    SynthResponsesConfig,
    SynthRunConfig,
)
from alignloop.synth.rmsp_cli import register_rmsp

synth_app = typer.Typer(
    no_args_is_help=True,
    help="ALMoST synthetic feedback: generate queries, answer them with ranked vanilla "
    "configurations, write comparison pairs and rankings; RM-guided self-play (rmsp) and the "
    "prompts of RL from synthetic feedback (rlsf-prompts).",
)
console = Console(stderr=True)
register_rmsp(synth_app)


@contextmanager
def stage_bars():
    """A Rich bar per stage; yields `on_progress(stage, done, total)`."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as bar:
        tasks: dict[str, int] = {}

        def on_progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield on_progress


def _report_queries(result) -> None:
    summary = result.summary
    dropped = ", ".join(f"{k} {v}" for k, v in summary["dropped"].items()) or "none"
    console.print(
        f"queries: kept {summary['kept']} of {summary['candidates']} candidates "
        f"(dropped: {dropped}); {summary['written']} written to {result.path}",
        soft_wrap=True,
    )


def _report_responses(result) -> None:
    new, old = sum(result.generated.values()), sum(result.reused.values())
    console.print(
        f"responses: {new} (query, configuration) answers generated, {old} reused; in "
        f"{result.folder}",
        soft_wrap=True,
    )


def _report_comparisons(result) -> None:
    summary = result.summary
    responses = summary["responses"]
    dropped = ", ".join(f"{k} {v}" for k, v in responses["dropped"].items() if v) or "none"
    console.print(
        f"responses kept {responses['kept']} of {responses['total']} (dropped: {dropped})",
        soft_wrap=True,
    )
    for key in ("pairs", "pairs_nofilter"):
        counts = summary[key]
        console.print(
            f"{summary['files'][key]}: {counts['written']} pairs ({counts['considered']} "
            f"considered, {counts['dropped_by_length']} dropped by the length filter, "
            f"{counts['dropped_one_per_better']} beyond one per better configuration)"
        )
    console.print(
        f"{summary['files']['rankings']}: {summary['rankings']['written']} rankings; summary in "
        f"{result.files['summary']}",
        soft_wrap=True,
    )


@config_command(
    synth_app, "queries", SynthQueriesConfig, (SynthQueriesConfig.__doc__ or "").strip()
)
def queries_cmd(settings: SynthQueriesConfig) -> None:
    from alignloop.synth.queries import generate_queries

    with stage_bars() as on_progress:
        result = generate_queries(settings, on_progress)
    _report_queries(result)


@config_command(
    synth_app, "responses", SynthResponsesConfig, (SynthResponsesConfig.__doc__ or "").strip()
)
def responses_cmd(settings: SynthResponsesConfig) -> None:
    from alignloop.synth.responses import generate_responses

    with stage_bars() as on_progress:
        result = generate_responses(settings, on_progress)
    _report_responses(result)


@config_command(
    synth_app, "comparisons", SynthComparisonsConfig, (SynthComparisonsConfig.__doc__ or "").strip()
)
def comparisons_cmd(settings: SynthComparisonsConfig) -> None:
    from alignloop.synth.comparisons import build_comparisons

    with stage_bars() as on_progress:
        result = build_comparisons(settings, on_progress)
    _report_comparisons(result)


@config_command(synth_app, "run", SynthRunConfig, (SynthRunConfig.__doc__ or "").strip())
def run_cmd(settings: SynthRunConfig) -> None:
    from alignloop.synth.pipeline import run_synth

    with stage_bars() as on_progress:
        result = run_synth(settings, on_progress)
    if result.queries is not None:
        _report_queries(result.queries)
    _report_responses(result.responses)
    _report_comparisons(result.comparisons)
