"""Read-only aggregates of the store for the operator (the admin dashboard).

Feedback is an append-only event log: counts use each user's latest event per message, so a
user who switches from like to dislike counts once, as a dislike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, func, select
from sqlalchemy.orm import Session

from alignloop.store.models import (
    Comparison,
    Conversation,
    Feedback,
    Message,
    ModelVersion,
    SafetyLabel,
    TrustScore,
    User,
)
from alignloop.store.vocab import DISLIKE_REASONS

NO_REASON = "none given"


def latest_feedback():
    """Subquery: each (message, user)'s latest feedback event."""
    newest = (
        select(func.max(Feedback.id).label("id"))
        .group_by(Feedback.message_id, Feedback.user_id)
        .subquery()
    )
    return select(Feedback).join(newest, Feedback.id == newest.c.id).subquery()


def _per_day(session: Session, created_at, since: datetime, *where) -> dict[str, int]:
    day = func.date(created_at)
    rows = session.execute(
        select(day, func.count()).where(created_at >= since, *where).group_by(day)
    )
    return {str(d)[:10]: n for d, n in rows}


def day_labels(days: int, today: date) -> list[str]:
    return [(today - timedelta(days=days - 1 - i)).isoformat() for i in range(days)]


def activity_by_day(session: Session, days: int = 30, now: datetime | None = None) -> dict:
    """Counts per UTC day over the last `days` days, zeros filled in."""
    now = now or datetime.now(UTC)
    since = datetime.combine(now.date() - timedelta(days=days - 1), datetime.min.time(), UTC)
    fb = latest_feedback()
    series_queries = {
        "conversations": (Conversation.created_at,),
        "human messages": (Message.created_at, Message.sender == "human"),
        "bot messages": (Message.created_at, Message.sender == "bot"),
        "likes": (fb.c.created_at, fb.c.kind == "like"),
        "dislikes": (fb.c.created_at, fb.c.kind == "dislike"),
        "canned safety replies": (
            Message.created_at,
            Message.sender == "bot",
            Message.safety_gated.is_(True),
        ),
        "red-team labels": (SafetyLabel.created_at, SafetyLabel.labeler_kind == "user"),
        "votes": (Comparison.voted_at, Comparison.outcome.is_not(None)),
    }
    labels = day_labels(days, now.date())
    series = {}
    for name, (column, *where) in series_queries.items():
        counts = _per_day(session, column, since, *where)
        series[name] = [counts.get(d, 0) for d in labels]
    return {"days": labels, "series": series}


def _reason_label(reason: str | None) -> str:
    return DISLIKE_REASONS.get(reason, NO_REASON) if reason else NO_REASON


def dislike_reasons_by_day(session: Session, days: int = 30, now: datetime | None = None) -> dict:
    """Current dislikes per reason per UTC day (the day of the user's latest event)."""
    now = now or datetime.now(UTC)
    since = datetime.combine(now.date() - timedelta(days=days - 1), datetime.min.time(), UTC)
    fb = latest_feedback()
    day = func.date(fb.c.created_at)
    rows = session.execute(
        select(day, fb.c.reason, func.count())
        .where(fb.c.kind == "dislike", fb.c.created_at >= since)
        .group_by(day, fb.c.reason)
    )
    labels = day_labels(days, now.date())
    index = {d: i for i, d in enumerate(labels)}
    series = {label: [0] * days for label in [*DISLIKE_REASONS.values(), NO_REASON]}
    for d, reason, n in rows:
        series[_reason_label(reason)][index[str(d)[:10]]] = n
    return {"days": labels, "series": series}


def dislikes_by_reason(session: Session) -> dict[str, int]:
    """Current dislikes per reason (every offered reason listed, zeros included)."""
    fb = latest_feedback()
    rows = session.execute(
        select(fb.c.reason, func.count()).where(fb.c.kind == "dislike").group_by(fb.c.reason)
    )
    counts = {DISLIKE_REASONS[slug]: 0 for slug in DISLIKE_REASONS}
    for reason, n in rows:
        counts[_reason_label(reason)] = n
    return counts


def totals(session: Session) -> dict[str, int]:
    fb = latest_feedback()

    def count(query: Select) -> int:
        return session.scalar(query) or 0

    return {
        "users": count(select(func.count()).select_from(User)),
        "conversations": count(select(func.count()).select_from(Conversation)),
        "red-team conversations": count(select(func.count()).where(Conversation.mode == "redteam")),
        "messages": count(select(func.count()).select_from(Message)),
        "likes": count(select(func.count()).where(fb.c.kind == "like")),
        "dislikes": count(select(func.count()).where(fb.c.kind == "dislike")),
        "corrections": count(
            select(func.count()).where(fb.c.kind == "dislike", func.length(fb.c.text) > 0)
        ),
        "canned safety replies": count(
            select(func.count()).where(Message.sender == "bot", Message.safety_gated.is_(True))
        ),
        "red-team labels": count(select(func.count()).where(SafetyLabel.labeler_kind == "user")),
        "votes": count(select(func.count()).where(Comparison.outcome.is_not(None))),
        "deletion requests": count(
            select(func.count()).where(User.deletion_requested_at.is_not(None))
        ),
    }


def top_troll_scores(session: Session, limit: int = 10) -> list[dict[str, Any]]:
    """Users with the highest latest troll score from curation (empty until curation runs)."""
    newest = select(func.max(TrustScore.id).label("id")).group_by(TrustScore.user_id).subquery()
    rows = session.execute(
        select(TrustScore, User.pseudonym)
        .join(newest, TrustScore.id == newest.c.id)
        .join(User, User.id == TrustScore.user_id)
        .order_by(TrustScore.troll_score.desc(), TrustScore.user_id)
        .limit(limit)
    )
    return [
        {
            "pseudonym": pseudonym,
            "troll_score": round(score.troll_score, 4),
            "n_labels": score.n_labels,
            "method": score.method,
            "run_id": score.run_id,
            "signals": {k: round(v, 3) for k, v in (score.components or {}).items()},
            "computed_at": score.computed_at.isoformat(),
        }
        for score, pseudonym in rows
    ]


def latest_model_versions(session: Session, limit: int = 10) -> list[dict[str, Any]]:
    rows = session.scalars(select(ModelVersion).order_by(ModelVersion.id.desc()).limit(limit))
    return [
        {
            "id": v.id,
            "name": v.name,
            "base": v.base,
            "parent_id": v.parent_id,
            "metrics": v.metrics or {},
            "created_at": v.created_at.isoformat(),
        }
        for v in rows
    ]


@dataclass(frozen=True)
class ConversationFilter:
    """The admin browser's filters; None means any."""

    feedback: str | None = None  # like | dislike | none (no feedback at all)
    reason: str | None = None  # a dislike reason slug
    user: str | None = None  # a pseudonym
    mode: str | None = None  # chat | compare | redteam
    limit: int = 50
    offset: int = 0


def _with_feedback(kind: str | None = None, reason: str | None = None):
    fb = latest_feedback()
    query = select(Message.conversation_id).join(fb, fb.c.message_id == Message.id)
    if kind:
        query = query.where(fb.c.kind == kind)
    if reason:
        query = query.where(fb.c.reason == reason)
    return query


def browse_conversations(session: Session, f: ConversationFilter) -> dict[str, Any]:
    """One page of conversations (newest first) matching the filter, with the total."""
    query = select(Conversation, User.pseudonym).join(User, User.id == Conversation.user_id)
    conditions = []
    if f.user:
        conditions.append(User.pseudonym == f.user)
    if f.mode:
        conditions.append(Conversation.mode == f.mode)
    if f.feedback == "none":
        conditions.append(Conversation.id.not_in(_with_feedback()))
    elif f.feedback or f.reason:
        conditions.append(Conversation.id.in_(_with_feedback(f.feedback, f.reason)))
    if conditions:
        query = query.where(and_(*conditions))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = session.execute(
        query.order_by(Conversation.id.desc()).limit(f.limit).offset(f.offset)
    ).all()
    ids = [c.id for c, _ in page]
    return {
        "total": total,
        "conversations": [
            {
                "id": c.id,
                "user": pseudonym,
                "mode": c.mode,
                "created_at": c.created_at.isoformat(),
                **summary,
            }
            for (c, pseudonym), summary in zip(page, _summaries(session, ids), strict=True)
        ],
    }


def first_human_messages(session: Session, ids: list[int], chars: int) -> dict[int, str]:
    """Each conversation's first human message, cut to `chars` (a title or snippet)."""
    first: dict[int, str] = {}
    for conversation_id, text in session.execute(
        select(Message.conversation_id, Message.text)
        .where(Message.conversation_id.in_(ids), Message.sender == "human")
        .order_by(Message.conversation_id, Message.position)
    ):
        first.setdefault(conversation_id, text[:chars])
    return first


def _summaries(session: Session, ids: list[int]) -> list[dict[str, Any]]:
    """Per conversation: message count, first human text, likes and dislikes."""
    counts = dict(
        session.execute(
            select(Message.conversation_id, func.count())
            .where(Message.conversation_id.in_(ids))
            .group_by(Message.conversation_id)
        ).all()
    )
    first = first_human_messages(session, ids, 80)
    fb = latest_feedback()
    votes: dict[tuple[int, str], int] = {}
    for conversation_id, kind, n in session.execute(
        select(Message.conversation_id, fb.c.kind, func.count())
        .join(fb, fb.c.message_id == Message.id)
        .where(Message.conversation_id.in_(ids))
        .group_by(Message.conversation_id, fb.c.kind)
    ):
        votes[(conversation_id, kind)] = n
    return [
        {
            "messages": counts.get(i, 0),
            "first_message": first.get(i, ""),
            "likes": votes.get((i, "like"), 0),
            "dislikes": votes.get((i, "dislike"), 0),
        }
        for i in ids
    ]


def conversation_detail(session: Session, conversation_id: int) -> dict[str, Any] | None:
    """Any user's conversation for the operator: every message (replaced ones marked), every
    feedback event and safety label."""
    row = session.execute(
        select(Conversation, User.pseudonym)
        .join(User, User.id == Conversation.user_id)
        .where(Conversation.id == conversation_id)
    ).first()
    if row is None:
        return None
    conversation, pseudonym = row
    messages = list(
        session.scalars(
            select(Message)
            .where(Message.conversation_id == conversation_id)
            .order_by(Message.position, Message.id)
        )
    )
    ids = [m.id for m in messages]
    feedback = _grouped(
        session, select(Feedback).where(Feedback.message_id.in_(ids)).order_by(Feedback.id)
    )
    labels = _grouped(
        session,
        select(SafetyLabel).where(SafetyLabel.message_id.in_(ids)).order_by(SafetyLabel.id),
    )
    return {
        "id": conversation.id,
        "user": pseudonym,
        "mode": conversation.mode,
        "created_at": conversation.created_at.isoformat(),
        "messages": [
            {
                "id": m.id,
                "position": m.position,
                "sender": m.sender,
                "text": m.text,
                "safety_gated": m.safety_gated,
                "superseded_by_id": m.superseded_by_id,
                "feedback": [
                    {"kind": f.kind, "reason": f.reason, "text": f.text}
                    for f in feedback.get(m.id, [])
                ],
                "safety_labels": [
                    {"label": s.label, "by": s.labeler_kind, "score": s.score}
                    for s in labels.get(m.id, [])
                ],
            }
            for m in messages
        ],
    }


def _grouped(session: Session, query: Select) -> dict[int, list]:
    grouped: dict[int, list] = {}
    for row in session.scalars(query):
        grouped.setdefault(row.message_id, []).append(row)
    return grouped
