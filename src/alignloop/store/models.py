"""The ORM tables. Where a message, a label or a model version lives is in its table's name.

Enumerated columns are strings with CHECK constraints (portable across SQLite and PostgreSQL);
their vocabularies are in `vocab.py`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from alignloop.store.vocab import (
    COMPARISON_SOURCES,
    DISLIKE_REASONS,
    FEEDBACK_KINDS,
    LABELER_KINDS,
    MODES,
    SAFETY_LABELS,
    SENDERS,
)

JSONType = JSON().with_variant(JSONB(), "postgresql")
# BIGINT on PostgreSQL; INTEGER on SQLite so the column stays an alias of the rowid.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


def _one_of(column: str, values: tuple[str, ...] | dict[str, str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    type_annotation_map: ClassVar = {dict[str, Any]: JSONType, list[Any]: JSONType}


class User(Base):
    """A pseudonymous person (or script). The bearer token or UI cookie is kept only as a hash."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    pseudonym: Mapped[str] = mapped_column(String(32), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    consent_training: Mapped[bool | None] = mapped_column(Boolean)
    consent_publication: Mapped[bool | None] = mapped_column(Boolean)
    deletion_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ModelVersion(Base):
    """A servable model: a base plus optional adapter or full weights, with its lineage."""

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    base: Mapped[str | None] = mapped_column(String(500))
    path: Mapped[str | None] = mapped_column(String(1000))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    algorithm: Mapped[str | None] = mapped_column(String(32))  # None: not trained here
    weights: Mapped[str | None] = mapped_column(String(16))  # 'adapter' | 'full'
    data_version: Mapped[str | None] = mapped_column(String(200))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    parent: Mapped[ModelVersion | None] = relationship(remote_side=[id])


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (CheckConstraint(_one_of("mode", MODES), name="ck_conversations_mode"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    mode: Mapped[str] = mapped_column(String(16), default="chat")
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    messages: Mapped[list[Message]] = relationship(
        back_populates="conversation", order_by="Message.id"
    )


class Message(Base):
    """One turn. Bot turns carry the exact context the model saw and the settings it used.

    `tail_hash` is a digest of the conversation up to and including this message: an OpenAI
    client that resends the whole history is matched to the conversation it continues.
    """

    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint(_one_of("sender", SENDERS), name="ck_messages_sender"),
        Index("ix_messages_conversation_position", "conversation_id", "position"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"))
    position: Mapped[int] = mapped_column(Integer)
    sender: Mapped[str] = mapped_column(String(8))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    context: Mapped[list[Any] | None] = mapped_column()
    generation: Mapped[dict[str, Any] | None] = mapped_column()
    safety_gated: Mapped[bool] = mapped_column(Boolean, default=False)
    tail_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    # A regenerated reply and the one it competed with share a position; the one the user did
    # not pick points at the one they did, and leaves the conversation's main line.
    superseded_by_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))

    conversation: Mapped[Conversation] = relationship(back_populates="messages")
    feedback: Mapped[list[Feedback]] = relationship(order_by="Feedback.id")


class Feedback(Base):
    """One feedback event. Events are appended, never updated: the latest per user wins."""

    __tablename__ = "feedback"
    __table_args__ = (
        CheckConstraint(_one_of("kind", FEEDBACK_KINDS), name="ck_feedback_kind"),
        CheckConstraint(
            f"reason IS NULL OR (kind = 'dislike' AND {_one_of('reason', DISLIKE_REASONS)})",
            name="ck_feedback_reason",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    reason: Mapped[str | None] = mapped_column(String(24))
    text: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Comparison(Base):
    """A prompt, K responses, and the user's choice (index, tie, both bad) or ranking.

    `source` is `compare` for the side-by-side page (anonymous samples) and `regenerate` for a
    chat reply regenerated in place (responses: the old reply, then the new one; each response
    names its bot message).
    """

    __tablename__ = "comparisons"
    __table_args__ = (
        CheckConstraint(_one_of("source", COMPARISON_SOURCES), name="ck_comparisons_source"),
        CheckConstraint(
            "outcome IS NULL OR outcome IN ('choice', 'tie', 'both_bad', 'ranking')",
            name="ck_comparisons_outcome",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"))
    source: Mapped[str] = mapped_column(String(16), default="compare", server_default="compare")
    context: Mapped[list[Any]] = mapped_column()
    responses: Mapped[list[Any]] = mapped_column()
    outcome: Mapped[str | None] = mapped_column(String(16))
    choice: Mapped[int | None] = mapped_column(Integer)
    ranking: Mapped[list[Any] | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    voted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SafetyLabel(Base):
    """Safe / unsafe on a message, from a person, a crowd worker or a classifier (with a score)."""

    __tablename__ = "safety_labels"
    __table_args__ = (
        CheckConstraint(_one_of("label", SAFETY_LABELS), name="ck_safety_labels_label"),
        CheckConstraint(_one_of("labeler_kind", LABELER_KINDS), name="ck_safety_labels_kind"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    labeler_kind: Mapped[str] = mapped_column(String(16))
    labeler: Mapped[str] = mapped_column(String(200))
    label: Mapped[str] = mapped_column(String(8))
    score: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TrustScore(Base):
    """How far curation trusts a user's labels: `troll_score` 0 (helper) to 1 (troll).

    Written by curation (one row per user per scoring run); the latest row per user counts.
    """

    __tablename__ = "trust_scores"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    method: Mapped[str] = mapped_column(String(64))
    troll_score: Mapped[float] = mapped_column(Float)
    n_labels: Mapped[int] = mapped_column(Integer, default=0)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("curation_runs.id"), index=True)
    components: Mapped[dict[str, Any] | None] = mapped_column()  # the signals behind the score


class CurationRun(Base):
    """One run of `alignloop curate`: its settings, where it wrote, and what it found."""

    __tablename__ = "curation_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    out: Mapped[str] = mapped_column(String(1000))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Dataset(Base):
    """A versioned training dataset a curation run built (rows in a file, provenance beside)."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("curation_runs.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # sft | pairs | rankings | binary | safety
    path: Mapped[str] = mapped_column(String(1000))
    rows: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RedteamRound(Base):
    """One Bot-Adversarial-Dialogue round (SPEC.md §4): the red-team labels it gathered (ids
    `first_label_id`..`last_label_id`), the classifier trained on them, how it compared with the
    gate's classifier on the held-out labels, and whether it replaced it."""

    __tablename__ = "redteam_rounds"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    number: Mapped[int] = mapped_column(Integer, unique=True)
    first_label_id: Mapped[int] = mapped_column(BigInteger)
    last_label_id: Mapped[int] = mapped_column(BigInteger)
    labels: Mapped[int] = mapped_column(Integer)  # person labels gathered (new this round)
    holdout: Mapped[int] = mapped_column(Integer)  # held-out replies the classifiers met
    classifier_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    previous_classifier: Mapped[str] = mapped_column(String(1000))  # folder or name beaten (or not)
    # old / new: each classifier's metrics on the held-out rows; the counts behind them
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    promoted: Mapped[bool] = mapped_column(Boolean, default=False)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")

    classifier_version: Mapped[ModelVersion] = relationship()


class LoopRound(Base):
    """One round of `alignloop loop` (curate -> train -> evaluate -> promote) in an arm: the
    messages it curated (`first_message_id`..`last_message_id`), its curation run, the deployed
    version it was measured against, the candidate it trained, the promotion decision with its
    figures, and the folder holding its datasets, models and report."""

    __tablename__ = "loop_rounds"
    __table_args__ = (UniqueConstraint("arm", "number"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    arm: Mapped[str] = mapped_column(String(100))
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))  # running | finished | failed
    folder: Mapped[str] = mapped_column(String(1000))
    first_message_id: Mapped[int] = mapped_column(BigInteger)
    last_message_id: Mapped[int] = mapped_column(BigInteger)
    curation_run_id: Mapped[int | None] = mapped_column(ForeignKey("curation_runs.id"))
    deployed_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    candidate_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    promoted: Mapped[bool] = mapped_column(Boolean, default=False)
    decision: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    config: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    deployed_version: Mapped[ModelVersion | None] = relationship(foreign_keys=[deployed_version_id])
    candidate_version: Mapped[ModelVersion | None] = relationship(
        foreign_keys=[candidate_version_id]
    )
