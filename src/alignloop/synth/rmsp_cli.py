"""`alignloop synth rmsp` and `alignloop synth rlsf-prompts` (registered on the synth app)."""

from __future__ import annotations

import os

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
from alignloop.synth.rmsp import RlsfPromptsConfig, RmspConfig

console = Console(stderr=True)


def _progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[metrics]}"),
        console=console,
    )


def rmsp_command(settings: RmspConfig) -> None:
    # Torch's OpenMP workers otherwise spin between generation calls on shared cores (see
    # safety.cli.passive_omp_threads); must be set before torch loads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from alignloop.synth.rmsp import run_rmsp

    bar = _progress_bar()
    tasks: list = []

    def on_progress(done: int, total: int, metrics: dict[str, float]) -> None:
        if not tasks:  # the first call comes once every input is checked
            bar.start()
            tasks.append(bar.add_task("self-play dialogues", total=total, metrics=""))
        shown = "  ".join(f"{key} {value:.3g}" for key, value in metrics.items())
        bar.update(tasks[0], completed=done, total=total, metrics=shown)

    try:
        result = run_rmsp(settings, on_progress=on_progress)
    finally:
        bar.stop()
    console.print(
        f"rmsp: {result.written} dialogues appended to {result.out} ({result.assistant_turns} "
        f"assistant turns), {result.skipped} finished before, {result.dropped} dropped",
        soft_wrap=True,
    )
    if result.mean_chosen_score is not None:
        console.print(
            f"  reward of the chosen replies {result.mean_chosen_score:.4f}, of all candidates "
            f"{result.mean_candidate_score:.4f}; ended: "
            + ", ".join(f"{why} {n}" for why, n in sorted(result.ended.items()))
        )
    console.print(f"  next: alignloop train sft --data {result.out} --out FOLDER", soft_wrap=True)


def rlsf_prompts_command(settings: RlsfPromptsConfig) -> None:
    from alignloop.synth.rmsp import write_rlsf_prompts

    count = write_rlsf_prompts(settings)
    console.print(f"wrote {count} RLSF prompts to {settings.out}", soft_wrap=True)
    console.print(
        f"  next: alignloop train ppo --reward-model SYNTH_RM --data {settings.out} "
        "--model SFT_MODEL --out FOLDER",
        soft_wrap=True,
    )


def register_rmsp(app: typer.Typer) -> None:
    """Add `rmsp` and `rlsf-prompts` to `app` (the `alignloop synth` group)."""
    config_command(app, "rmsp", RmspConfig, (RmspConfig.__doc__ or "").strip())(rmsp_command)
    config_command(
        app, "rlsf-prompts", RlsfPromptsConfig, (RlsfPromptsConfig.__doc__ or "").strip()
    )(rlsf_prompts_command)


if __name__ == "__main__":  # `python -m alignloop.synth.rmsp_cli rmsp ...` on its own
    from alignloop.errors import AlignloopError

    standalone = typer.Typer(no_args_is_help=True)
    register_rmsp(standalone)
    try:
        standalone()
    except AlignloopError as exc:  # as `alignloop` itself reports it
        console.print(f"[red]error:[/red] {exc.message}")
        raise SystemExit(2) from exc
