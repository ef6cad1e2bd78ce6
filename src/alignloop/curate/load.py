"""Read the store into column tables (pandas) for curation: one query per table, streamed in
chunks, no ORM objects, so a million messages load in seconds and stay compact.

Users who asked for deletion are left out here, so no later stage can use their data. Bot
messages' context snapshots are not loaded here (they are most of a store's bytes); the
builders fetch them for the rows they keep (`contexts`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Engine, Select, select

from alignloop.store.models import (
    Comparison,
    Conversation,
    Feedback,
    Message,
    SafetyLabel,
    User,
)

CHUNK = 50_000
Progress = Callable[[int], None]


@dataclass
class StoreTables:
    users: pd.DataFrame  # user_id, pseudonym, consent_training, consent_publication, token_hash
    messages: pd.DataFrame  # message_id, conversation_id, user_id, mode, position, sender, ...
    feedback: pd.DataFrame  # message_id, user_id, kind, reason, text (latest per user+message)
    comparisons: pd.DataFrame  # comparison_id, user_id, source, context, responses, outcome, ...
    safety_labels: pd.DataFrame  # message_id, user_id (the conversation's), labeler_kind, ...


def _read(engine: Engine, query: Select, columns: list[str], progress: Progress | None):
    frames = []
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=CHUNK).execute(query)
        for rows in result.partitions(CHUNK):
            frames.append(pd.DataFrame.from_records(rows, columns=columns))
            if progress:
                progress(len(rows))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def kept_users():
    """Ids of users who have not asked for deletion (every build and export leaves the rest out)."""
    return select(User.id).where(User.deletion_requested_at.is_(None))


def load_store(engine: Engine, progress: Progress | None = None) -> StoreTables:
    """Everything curation reads, from users who have not asked for deletion."""
    users = _read(
        engine,
        select(
            User.id,
            User.pseudonym,
            User.consent_training,
            User.consent_publication,
            User.token_hash,
        ).where(User.deletion_requested_at.is_(None)),
        ["user_id", "pseudonym", "consent_training", "consent_publication", "token_hash"],
        progress,
    )
    messages = _read(
        engine,
        select(
            Message.id,
            Message.conversation_id,
            Conversation.user_id,
            Conversation.mode,
            Message.position,
            Message.sender,
            Message.text,
            Message.safety_gated,
            Message.superseded_by_id,
            Message.model_version_id,
        )
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(Conversation.user_id.in_(kept_users()))
        .order_by(Message.conversation_id, Message.position, Message.id),
        [
            "message_id",
            "conversation_id",
            "user_id",
            "mode",
            "position",
            "sender",
            "text",
            "safety_gated",
            "superseded_by_id",
            "model_version_id",
        ],
        progress,
    )
    return StoreTables(
        users=users,
        messages=messages,
        feedback=_latest_feedback(engine, progress),
        comparisons=_comparisons(engine, progress),
        safety_labels=_read(
            engine,
            select(
                SafetyLabel.message_id,
                Conversation.user_id,
                SafetyLabel.labeler_kind,
                SafetyLabel.labeler,
                SafetyLabel.label,
                SafetyLabel.score,
            )
            .join(Message, Message.id == SafetyLabel.message_id)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Conversation.user_id.in_(kept_users())),
            ["message_id", "user_id", "labeler_kind", "labeler", "label", "score"],
            progress,
        ),
    )


def _latest_feedback(engine: Engine, progress: Progress | None) -> pd.DataFrame:
    """Feedback events are appended; a user's latest event per message and kind group wins
    (a like after a dislike replaces it; agreement on a canned reply is its own group)."""
    frame = _read(
        engine,
        select(
            Feedback.id,
            Feedback.message_id,
            Feedback.user_id,
            Feedback.kind,
            Feedback.reason,
            Feedback.text,
        )
        .where(Feedback.user_id.in_(kept_users()))
        .order_by(Feedback.id),
        ["feedback_id", "message_id", "user_id", "kind", "reason", "text"],
        progress,
    )
    frame["group"] = frame["kind"].map(lambda k: "sensitive" if k.startswith("sensitive") else "r")
    latest = frame.drop_duplicates(["message_id", "user_id", "group"], keep="last")
    return latest.drop(columns="group").reset_index(drop=True)


def _comparisons(engine: Engine, progress: Progress | None) -> pd.DataFrame:
    return _read(
        engine,
        select(
            Comparison.id,
            Comparison.user_id,
            Comparison.conversation_id,
            Comparison.source,
            Comparison.context,
            Comparison.responses,
            Comparison.outcome,
            Comparison.choice,
            Comparison.ranking,
        ).where(Comparison.outcome.is_not(None), Comparison.user_id.in_(kept_users())),
        [
            "comparison_id",
            "user_id",
            "conversation_id",
            "source",
            "context",
            "responses",
            "outcome",
            "choice",
            "ranking",
        ],
        progress,
    )


def contexts(engine: Engine, message_ids: Iterable[int]) -> dict[int, list]:
    """The context snapshots of the given bot messages (what the model saw), by id."""
    ids = list(message_ids)
    found: dict[int, list] = {}
    with engine.connect() as conn:
        for start in range(0, len(ids), 1000):
            chunk = ids[start : start + 1000]
            query = select(Message.id, Message.context).where(Message.id.in_(chunk))
            found.update({mid: ctx for mid, ctx in conn.execute(query)})
    return found
