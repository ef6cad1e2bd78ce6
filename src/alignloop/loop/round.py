"""One round of the cycle (`alignloop loop`): curate -> round rows -> train the candidate ->
train the judge's reward model -> evaluate against the deployed version -> promote or not.

The round is a row of `loop_rounds` (its messages, versions and decision) and a folder
(`<work>/<arm>/round-N/`: curate/, data/, candidate/, reward/, evaluation/, state.json). Each step
is recorded in state.json when it finishes; a crashed round is resumed by the next call (same
number, same folder, same messages) at its first unfinished step. The trainers resume from
their own checkpoints within a step.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from alignloop.errors import InvalidInput
from alignloop.loop.config import LoopConfig
from alignloop.loop.data import label_counts, split_round_rows
from alignloop.loop.state import RoundState
from alignloop.store.db import make_engine, upgrade
from alignloop.store.models import LoopRound, ModelVersion
from alignloop.store.rounds import fail_round, finish_round, open_round, unlearned_since

log = logging.getLogger("alignloop.loop")
Progress = Callable[[str, int, int], None]
"""Called as (stage, done, total); total 0 while unknown."""


@dataclass
class RoundResult:
    arm: str
    number: int
    folder: Path
    resumed: bool
    promoted: bool
    decision: dict[str, Any]
    candidate: str | None


@dataclass(frozen=True)
class RoundPlan:
    """What a round works on: read from its store row once, then passed to every step."""

    id: int
    number: int
    folder: Path
    first_message_id: int
    last_message_id: int
    unlearned_from_message_id: int  # first message after the deployed version's round
    deployed: str  # model folder or spec
    deployed_name: str


def run_rounds(config: LoopConfig, on_progress: Progress | None = None) -> list[RoundResult]:
    return [run_round(config, on_progress) for _ in range(config.rounds)]


def run_round(config: LoopConfig, on_progress: Progress | None = None) -> RoundResult:
    """Run (or resume) the arm's next round; the store says which and on what messages."""
    from alignloop.loop.evaluation import held_out_prompts

    held_out_prompts(config)  # bad held-out prompts stop the round before it opens
    engine = make_engine(config.db)
    upgrade(engine)
    plan, resumed = _open(engine, config)
    state = RoundState(plan.folder)
    report = on_progress or (lambda stage, done, total: None)
    try:
        decision, candidate = _steps(config, plan, state, report)
    except BaseException as exc:
        with Session(engine) as session, session.begin():
            fail_round(session, plan.id, f"{type(exc).__name__}: {exc}")
        raise
    return RoundResult(
        config.arm, plan.number, plan.folder, resumed, bool(decision.get("promote")), decision,
        candidate,
    )  # fmt: skip


def _open(engine, config: LoopConfig) -> tuple[RoundPlan, bool]:
    arm_folder = Path(config.work) / config.arm
    with Session(engine) as session, session.begin():
        row, resumed = open_round(
            session,
            config.arm,
            lambda n: (arm_folder / f"round-{n}").resolve(),
            config.model_dump(mode="json"),
        )
        deployed = row.deployed_version
        plan = RoundPlan(
            row.id,
            row.number,
            Path(row.folder),
            row.first_message_id,
            row.last_message_id,
            unlearned_since(session, config.arm),
            _deployed_source(deployed, config),
            deployed.name if deployed else config.base_model,
        )
    return plan, resumed


def _deployed_source(version: ModelVersion | None, config: LoopConfig) -> str:
    if version is None:
        return config.base_model
    if not version.path or not Path(version.path).is_dir():
        raise InvalidInput(
            f"the deployed version {version.name} has no model folder ({version.path}); "
            "restore it or start a new arm",
            "arm",
        )
    return version.path


def _steps(config: LoopConfig, plan: RoundPlan, state: RoundState, report: Progress):
    from alignloop.loop import steps

    curated = state.step("curate", lambda: steps.curate(config, plan, report))
    rows = state.step(
        "data",
        lambda: {
            kind: split_round_rows(
                Path(curated["out"]), kind, plan.unlearned_from_message_id,
                plan.first_message_id, plan.last_message_id, plan.folder / "data",
            ).as_dict()
            for kind in steps.ROUND_KINDS
        },
    )  # fmt: skip
    if config.corrections_as_positives:
        rows["binary"] = state.step("positives", lambda: steps.add_demonstrations(plan, rows))
    kind, part = steps.training_kind(config), steps.training_part(config)
    labelled = rows[kind][f"{part}_count"]
    if labelled < config.min_examples:
        decision = {
            "promote": False,
            "reasons": [f"{labelled} {part} {kind} rows (min_examples {config.min_examples})"],
            "data": rows,
        }
        return _finish(config, plan, state, curated, None, decision), None
    # after the count: the safe answers of earlier rounds alone never start a round
    if config.safe_answers and "safety" in rows:  # a round begun before them has none
        rows["binary"] = state.step(
            "safe answers", lambda: steps.add_safe_answers(config, plan, rows)
        )
    candidate = state.step("train", lambda: steps.train_candidate(config, plan, rows, report))
    judge_model = None
    if config.train_reward_model:
        judge_model = state.step("reward", lambda: steps.train_reward(config, plan, rows, report))
    evaluation = state.step(
        "evaluate",
        lambda: steps.evaluate(config, plan, candidate["out"], judge_model, report),
    )
    decision = {**evaluation["decision"], "data": rows, "labels": label_counts(
        Path(rows["binary"][part])
    )}  # fmt: skip
    _finish(config, plan, state, curated, candidate, decision)
    return decision, candidate["name"]


def _finish(config, plan: RoundPlan, state: RoundState, curated, candidate, decision) -> dict:
    engine = make_engine(config.db)

    def record() -> dict:
        with Session(engine) as session, session.begin():
            version_id = _version_id(session, candidate["name"]) if candidate else None
            finish_round(session, plan.id, version_id, curated.get("run_id"), decision)
        return {"promoted": bool(decision.get("promote"))}

    state.step("promote", record)
    return decision


def _version_id(session: Session, name: str) -> int | None:
    from sqlalchemy import select

    return session.scalar(select(ModelVersion.id).where(ModelVersion.name == name))


def round_rows(db: str, arm: str | None = None) -> list[LoopRound]:
    from alignloop.store.rounds import rounds

    with Session(make_engine(db), expire_on_commit=False) as session:
        found = rounds(session, arm)
        for row in found:
            _ = row.candidate_version, row.deployed_version
        return found
