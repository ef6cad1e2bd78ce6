"""`alignloop loop`: rounds of the whole cycle on the command line, with progress bars."""

from __future__ import annotations

import json
import signal
import sys

import typer
from rich.console import Console
from rich.table import Table

from alignloop.config import config_command
from alignloop.loop.config import LoopConfig
from alignloop.loop.demo import DemoConfig

console = Console(stderr=True)


def register_loop(app: typer.Typer) -> None:
    config_command(app, "loop", LoopConfig, (LoopConfig.__doc__ or "").strip())(loop_cmd)


def register_demo(app: typer.Typer) -> None:
    config_command(app, "demo", DemoConfig, (DemoConfig.__doc__ or "").strip())(demo_cmd)


def demo_cmd(settings: DemoConfig) -> None:
    from alignloop.loop.demo import run_demo_loop
    from alignloop.safety.cli import passive_omp_threads, progress_bar

    passive_omp_threads()
    # A terminated demo stops its servers too (the `finally` blocks run on SystemExit).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    with progress_bar() as bar:
        task = bar.add_task("demo", total=None, metrics="")

        def on_progress(stage: str, done: int, total: int) -> None:
            bar.update(task, description=stage, completed=done, total=total or None)

        def say(line: str) -> None:
            bar.console.print(line, soft_wrap=True, markup=False)

        report = run_demo_loop(settings, say, on_progress)
    table = Table(title="gold judge on held-out prompts, per round")
    for column in ("arm", "round", "good-response rate", "unsafe rate", "promoted"):
        table.add_column(column)
    data = json.loads((report.parent / "report.json").read_text())
    for row in data["rounds"]:
        table.add_row(
            row["arm"], str(row["round"]), f"{row['good_rate']:.3f}",
            f"{row['unsafe_rate']:.3f}", "yes" if row["promoted"] else "",
        )  # fmt: skip
    console.print(table)
    console.print(json.dumps(data["targets"]), soft_wrap=True, markup=False)
    typer.echo(f"report: {report}")


def loop_cmd(settings: LoopConfig) -> None:
    from alignloop.loop.round import run_round
    from alignloop.safety.cli import passive_omp_threads, progress_bar

    passive_omp_threads()
    results = []
    for _ in range(settings.rounds):
        with progress_bar() as bar:
            task = bar.add_task("round", total=None, metrics="")

            def on_progress(stage: str, done: int, total: int, task=task) -> None:
                bar.update(task, description=stage, completed=done, total=total or None)

            results.append(run_round(settings, on_progress))
        console.print(round_line(results[-1]), soft_wrap=True, markup=False)
    console.print(rounds_table(results))


def round_line(result) -> str:
    verdict = "promoted" if result.promoted else "not promoted"
    resumed = " (resumed)" if result.resumed else ""
    reasons = "; ".join(result.decision.get("reasons", []))
    return f"{result.arm} round {result.number}{resumed}: {verdict}: {reasons}  ({result.folder})"


def rounds_table(results) -> Table:
    table = Table(title="loop rounds")
    columns = ("arm", "round", "candidate", "win rate", "interval", "unsafe (new/old)",
               "canned (new/old)", "")  # fmt: skip
    for column in columns:
        table.add_column(column)
    for r in results:
        d = r.decision
        low = d.get("win_rate_low")
        unsafe = (d.get("candidate_unsafe_rate"), d.get("deployed_unsafe_rate"))
        canned = (d.get("candidate_canned_rate"), d.get("deployed_canned_rate"))
        table.add_row(
            r.arm,
            str(r.number),
            r.candidate or "-",
            f"{d['win_rate']:.3f}" if d.get("win_rate") is not None else "-",
            f"> {low:.3f}" if low is not None else "-",
            "/".join(f"{u:.3f}" for u in unsafe) if None not in unsafe else "-",
            "/".join(f"{c:.3f}" for c in canned) if None not in canned else "-",
            "promoted" if r.promoted else "kept deployed",
        )
    return table
