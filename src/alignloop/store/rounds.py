"""Loop rounds in the store: which messages a round curated, what it trained, what it decided,
and which model version is deployed (the candidate of the arm's last promoted round)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alignloop.store.models import LoopRound, Message, ModelVersion


def last_round(session: Session, arm: str) -> LoopRound | None:
    return session.scalars(
        select(LoopRound).where(LoopRound.arm == arm).order_by(LoopRound.number.desc()).limit(1)
    ).first()


def rounds(session: Session, arm: str | None = None) -> list[LoopRound]:
    query = select(LoopRound).order_by(LoopRound.arm, LoopRound.number)
    if arm is not None:
        query = query.where(LoopRound.arm == arm)
    return list(session.scalars(query))


def last_promoted_round(session: Session, arm: str) -> LoopRound | None:
    return session.scalars(
        select(LoopRound)
        .where(LoopRound.arm == arm, LoopRound.promoted.is_(True))
        .order_by(LoopRound.number.desc())
        .limit(1)
    ).first()


def deployed_version(session: Session, arm: str) -> ModelVersion | None:
    """The candidate of the arm's latest promoted round; None while nothing was promoted."""
    promoted = last_promoted_round(session, arm)
    return promoted.candidate_version if promoted else None


def unlearned_since(session: Session, arm: str) -> int:
    """The first message the arm's deployed version has not learned from: the one after the
    range of the round that promoted it (1 while the base model is deployed)."""
    promoted = last_promoted_round(session, arm)
    return promoted.last_message_id + 1 if promoted else 1


def newest_message_id(session: Session) -> int:
    return session.scalar(select(func.max(Message.id))) or 0


def open_round(
    session: Session, arm: str, folder_for: Any, config: dict[str, Any]
) -> tuple[LoopRound, bool]:
    """The arm's unfinished round (resumed: same number, folder and messages), or a new one
    over the messages written since the last finished round. Returns (round, resumed)."""
    last = last_round(session, arm)
    if last is not None and last.status != "finished":
        last.status = "running"
        return last, True
    first = last.last_message_id + 1 if last else 1
    number = last.number + 1 if last else 1
    deployed = deployed_version(session, arm)
    row = LoopRound(
        arm=arm,
        number=number,
        status="running",
        folder=str(folder_for(number)),
        first_message_id=first,
        last_message_id=newest_message_id(session),
        deployed_version_id=deployed.id if deployed else None,
        promoted=False,
        decision={},
        config=config,
    )
    session.add(row)
    session.flush()
    return row, False


def finish_round(
    session: Session,
    round_id: int,
    candidate_version_id: int | None,
    curation_run_id: int | None,
    decision: dict[str, Any],
) -> LoopRound:
    row = session.get_one(LoopRound, round_id)
    row.candidate_version_id = candidate_version_id
    row.curation_run_id = curation_run_id
    row.decision = decision
    row.promoted = bool(decision.get("promote"))
    row.status = "finished"
    row.finished_at = datetime.now(UTC)
    return row


def fail_round(session: Session, round_id: int, error: str) -> None:
    row = session.get_one(LoopRound, round_id)
    row.status = "failed"
    row.decision = {**(row.decision or {}), "error": error}
