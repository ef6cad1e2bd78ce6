"""Domain operations on the store. Each takes a Session and leaves committing to the caller.

They validate before they write, so a rejected request writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.orm import Session

from alignloop.errors import Conflict, Forbidden, InvalidInput, NotFound
from alignloop.store.models import (
    Comparison,
    Conversation,
    Feedback,
    Message,
    ModelVersion,
    SafetyLabel,
    TrustScore,
    User,
    utcnow,
)
from alignloop.store.vocab import FEEDBACK_KINDS, normalize_reason

ROLE_TO_SENDER = {"user": "human", "assistant": "bot", "system": "system"}


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def tail_hash(messages: Sequence[dict[str, str]]) -> str:
    """Digest of a conversation's messages (role and content), to match a resent history."""
    canon = json.dumps([[m["role"], m["content"]] for m in messages], ensure_ascii=False)
    return hashlib.sha256(canon.encode()).hexdigest()


@dataclass(frozen=True)
class UserRef:
    id: int
    pseudonym: str
    deletion_requested: bool = False


def user_for_token(session: Session, token: str) -> UserRef:
    """The user behind a bearer token or cookie, created on first sight."""
    digest = hash_token(token)
    user = session.scalar(select(User).where(User.token_hash == digest))
    if user is None:
        user = User(token_hash=digest, pseudonym=secrets.token_hex(8))
        session.add(user)
        session.flush()
    return UserRef(user.id, user.pseudonym, user.deletion_requested_at is not None)


def register_model_version(
    session: Session,
    name: str,
    base: str | None = None,
    path: str | None = None,
    parent_id: int | None = None,
) -> int:
    """Id of the model version called `name`, created if new."""
    existing = session.scalar(select(ModelVersion.id).where(ModelVersion.name == name))
    if existing is not None:
        return existing
    version = ModelVersion(name=name, base=base, path=path, parent_id=parent_id, metrics={})
    session.add(version)
    session.flush()
    return version.id


@dataclass(frozen=True)
class TrainedVersion:
    name: str
    base: str
    path: str
    algorithm: str
    weights: str  # 'adapter' | 'full'
    data_version: str
    config: dict[str, Any]
    metrics: dict[str, Any]
    parent: str | None = None  # name or path of the version it improves on


def add_trained_version(session: Session, version: TrainedVersion) -> int:
    """Record a trained model version with its lineage; a name already taken is refused."""
    if session.scalar(select(ModelVersion.id).where(ModelVersion.name == version.name)):
        raise Conflict(f"a model version named {version.name!r} exists; pick another name", "name")
    parent_id = None
    if version.parent is not None:
        parent_id = session.scalar(
            select(ModelVersion.id).where(
                (ModelVersion.name == version.parent) | (ModelVersion.path == version.parent)
            )
        )
    row = ModelVersion(
        name=version.name,
        base=version.base,
        path=version.path,
        parent_id=parent_id,
        algorithm=version.algorithm,
        weights=version.weights,
        data_version=version.data_version,
        config=version.config,
        metrics=version.metrics,
    )
    session.add(row)
    session.flush()
    return row.id


@dataclass
class Turn:
    """A human message and the bot's reply, with what the bot saw and how it generated."""

    user_id: int
    context: list[dict[str, str]]  # every message the model saw, ending with the human turn
    reply: str
    model_version_id: int | None
    generation: dict[str, Any] = field(default_factory=dict)
    safety_gated: bool = False
    conversation_id: int | None = None
    mode: str = "chat"


@dataclass(frozen=True)
class LoggedTurn:
    conversation_id: int
    human_message_id: int
    bot_message_id: int


def find_continued_conversation(session: Session, user_id: int, history_hash: str) -> int | None:
    """The user's conversation whose logged tail matches the resent history, if any."""
    return session.scalar(
        select(Message.conversation_id)
        .join(Conversation)
        .where(Message.tail_hash == history_hash, Conversation.user_id == user_id)
        .order_by(Message.id.desc())
        .limit(1)
    )


def owned_conversation(session: Session, user_id: int, conversation_id: int) -> Conversation:
    conversation = session.get(Conversation, conversation_id)
    if conversation is None or conversation.user_id != user_id:
        raise NotFound(f"no conversation {conversation_id} for this user", "conversation_id")
    return conversation


def log_turn(session: Session, turn: Turn) -> LoggedTurn:
    """Write the human message and the bot reply of one turn (one conversation, created if new)."""
    if not turn.context or turn.context[-1]["role"] != "user":
        raise InvalidInput("the last message must have role 'user'", "messages")
    conversation_id = turn.conversation_id
    if conversation_id is None:
        conversation_id = find_continued_conversation(
            session, turn.user_id, tail_hash(turn.context[:-1])
        )
    if conversation_id is None:
        conversation = Conversation(
            user_id=turn.user_id, mode=turn.mode, model_version_id=turn.model_version_id
        )
        session.add(conversation)
        session.flush()
        conversation_id = conversation.id
    else:
        check_can_continue(session, turn.user_id, conversation_id)
    position = len(turn.context) - 1
    human = Message(
        conversation_id=conversation_id,
        position=position,
        sender="human",
        text=turn.context[-1]["content"],
        tail_hash=tail_hash(turn.context),
    )
    bot = Message(
        conversation_id=conversation_id,
        position=position + 1,
        sender="bot",
        text=turn.reply,
        model_version_id=turn.model_version_id,
        context=turn.context,
        generation=turn.generation,
        safety_gated=turn.safety_gated,
        tail_hash=tail_hash([*turn.context, {"role": "assistant", "content": turn.reply}]),
    )
    session.add_all([human, bot])
    session.flush()
    return LoggedTurn(conversation_id, human.id, bot.id)


def _latest_bot_message(session: Session, conversation_id: int) -> Message | None:
    return session.scalar(
        select(Message)
        .where(
            Message.conversation_id == conversation_id,
            Message.sender == "bot",
            Message.superseded_by_id.is_(None),
        )
        .order_by(Message.position.desc(), Message.id.desc())
        .limit(1)
    )


def pending_regeneration(session: Session, conversation_id: int) -> Comparison | None:
    """The conversation's regenerated pair still awaiting the user's pick, if any."""
    return session.scalar(
        select(Comparison).where(
            Comparison.conversation_id == conversation_id,
            Comparison.source == "regenerate",
            Comparison.outcome.is_(None),
        )
    )


def check_can_continue(session: Session, user_id: int, conversation_id: int) -> Conversation:
    """The user's conversation, if a new turn may follow: no regenerated reply awaits a choice,
    and in red-team mode the last bot reply has the user's safe / unsafe label."""
    conversation = owned_conversation(session, user_id, conversation_id)
    pending = pending_regeneration(session, conversation_id)
    if pending is not None:
        raise Conflict(
            f"pick the better of the two replies first (POST /api/compare/{pending.id}/vote)",
            "conversation_id",
        )
    if conversation.mode == "redteam":
        last = _latest_bot_message(session, conversation_id)
        if last is not None and not _labelled_by_user(session, last.id):
            raise Conflict(
                f"label the bot's last reply (message {last.id}) safe or unsafe before going on",
                "conversation_id",
            )
    return conversation


def _labelled_by_user(session: Session, message_id: int) -> bool:
    return (
        session.scalar(
            select(SafetyLabel.id)
            .where(SafetyLabel.message_id == message_id, SafetyLabel.labeler_kind == "user")
            .limit(1)
        )
        is not None
    )


def regenerable_message(session: Session, user_id: int, message_id: int) -> Message:
    """The user's bot message, if it may be regenerated: the latest reply of a chat or red-team
    conversation, not a canned safety reply, with no regeneration already awaiting a choice."""
    owned_message(session, user_id, message_id, sender="bot")
    message = session.get(Message, message_id)
    if message.superseded_by_id is not None:
        raise Conflict(f"message {message_id} was already replaced", "message_id")
    if message.safety_gated:
        raise Conflict(
            f"message {message_id} is a canned safety reply; say whether the topic was "
            "sensitive instead",
            "message_id",
        )
    pending = pending_regeneration(session, message.conversation_id)
    if pending is not None:
        raise Conflict(
            f"a regenerated reply awaits a choice (POST /api/compare/{pending.id}/vote)",
            "message_id",
        )
    latest = _latest_bot_message(session, message.conversation_id)
    if latest is None or latest.id != message_id:
        raise Conflict("only the conversation's latest reply can be regenerated", "message_id")
    return message


@dataclass(frozen=True)
class Regeneration:
    comparison_id: int
    conversation_id: int
    human_message_id: int | None
    old_message_id: int
    new_message_id: int
    old_text: str


def log_regeneration(
    session: Session,
    user_id: int,
    message_id: int,
    reply: str,
    generation: dict[str, Any],
    safety_gated: bool,
    model_version_id: int | None,
) -> Regeneration:
    """Write a regenerated reply beside the old one, and the comparison the user will vote on
    (responses: old, then new). The vote decides which stays in the conversation."""
    old = regenerable_message(session, user_id, message_id)
    new = Message(
        conversation_id=old.conversation_id,
        position=old.position,
        sender="bot",
        text=reply,
        model_version_id=model_version_id,
        context=old.context,
        generation=generation,
        safety_gated=safety_gated,
        tail_hash=tail_hash([*(old.context or []), {"role": "assistant", "content": reply}]),
    )
    session.add(new)
    session.flush()
    responses = [
        {"text": m.text, "message_id": m.id, "model_version_id": m.model_version_id}
        for m in (old, new)
    ]
    comparison = Comparison(
        user_id=user_id,
        conversation_id=old.conversation_id,
        source="regenerate",
        context=old.context or [],
        responses=responses,
    )
    session.add(comparison)
    session.flush()
    human_id = session.scalar(
        select(Message.id).where(
            Message.conversation_id == old.conversation_id,
            Message.position == old.position - 1,
            Message.sender == "human",
        )
    )
    return Regeneration(comparison.id, old.conversation_id, human_id, old.id, new.id, old.text)


# The feedback hot path's statements, built once: constructing and cache-keying a statement
# costs several times more than SQLite's execution of it.
_OWNED_MESSAGE = (
    select(Message.sender, Message.safety_gated, Conversation.user_id)
    .join(Conversation)
    .where(Message.id == bindparam("message_id"))
)
_INSERT_FEEDBACK = insert(Feedback.__table__).returning(Feedback.__table__.c.id)


def owned_message(session: Session, user_id: int, message_id: int, sender: str | None = None):
    """(sender, safety_gated) of a message in one of the user's conversations, else NotFound."""
    row = session.connection().execute(_OWNED_MESSAGE, {"message_id": message_id}).first()
    if row is None or row.user_id != user_id:
        raise NotFound(f"no message {message_id} in this user's conversations", "message_id")
    if sender is not None and row.sender != sender:
        raise Conflict(
            f"message {message_id} was written by the {row.sender}; this goes on {sender} messages",
            "message_id",
        )
    return row


def add_feedback(
    session: Session,
    user_id: int,
    message_id: int,
    kind: str,
    reason: str | None = None,
    text: str | None = None,
) -> int:
    """Record like, dislike (with reason) or agreement on a canned reply, on a bot message."""
    if kind not in FEEDBACK_KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(FEEDBACK_KINDS)}; got {kind!r}", "kind")
    if reason is not None:
        if kind != "dislike":
            raise InvalidInput("a reason goes only with kind 'dislike'", "reason")
        reason = normalize_reason(reason)
    row = owned_message(session, user_id, message_id, sender="bot")
    if kind.startswith("sensitive_") and not row.safety_gated:
        raise Conflict(
            f"message {message_id} is not a canned safety reply; use 'like' or 'dislike'", "kind"
        )
    values = {
        "message_id": message_id,
        "user_id": user_id,
        "kind": kind,
        "reason": reason,
        "text": text,
        "created_at": utcnow(),
    }
    return session.connection().execute(_INSERT_FEEDBACK, values).scalar_one()


def create_comparison(
    session: Session,
    user_id: int,
    context: list[dict[str, str]],
    responses: list[dict[str, Any]],
    model_version_id: int | None,
) -> int:
    conversation = Conversation(user_id=user_id, mode="compare", model_version_id=model_version_id)
    session.add(conversation)
    session.flush()
    comparison = Comparison(
        user_id=user_id, conversation_id=conversation.id, context=context, responses=responses
    )
    session.add(comparison)
    session.flush()
    return comparison.id


def record_vote(
    session: Session,
    user_id: int,
    comparison_id: int,
    outcome: str,
    choice: int | None = None,
    ranking: list[int] | None = None,
) -> Comparison:
    """Record the user's verdict once: a choice (index), a tie, both bad, or a full ranking."""
    comparison = session.get(Comparison, comparison_id)
    if comparison is None or comparison.user_id != user_id:
        raise NotFound(f"no comparison {comparison_id} for this user", "comparison_id")
    if comparison.outcome is not None:
        raise Conflict(f"comparison {comparison_id} already has a vote", "comparison_id")
    k = len(comparison.responses)
    if outcome == "choice":
        if choice is None or not 0 <= choice < k:
            raise InvalidInput(f"choice must be an index from 0 to {k - 1}", "choice")
    elif outcome == "ranking":
        if ranking is None or sorted(ranking) != list(range(k)):
            raise InvalidInput(
                f"ranking must list each response index 0..{k - 1} once, best first", "ranking"
            )
    elif outcome not in ("tie", "both_bad"):
        raise InvalidInput("outcome must be one of choice, tie, both_bad, ranking", "outcome")
    comparison.outcome, comparison.choice, comparison.ranking = outcome, choice, ranking
    comparison.voted_at = utcnow()
    if comparison.source == "regenerate":
        _keep_regeneration_winner(session, comparison)
    session.flush()
    return comparison


def _keep_regeneration_winner(session: Session, comparison: Comparison) -> None:
    """The chosen reply stays in the conversation; on a tie or both bad, the new one does."""
    if comparison.outcome == "choice":
        winner = comparison.choice
    elif comparison.outcome == "ranking":
        winner = comparison.ranking[0]
    else:
        winner = len(comparison.responses) - 1
    winner_id = comparison.responses[winner]["message_id"]
    for index, response in enumerate(comparison.responses):
        if index != winner:
            session.get(Message, response["message_id"]).superseded_by_id = winner_id


def add_safety_label(
    session: Session,
    message_id: int,
    label: str,
    labeler_kind: str,
    labeler: str,
    score: float | None = None,
) -> int:
    row = SafetyLabel(
        message_id=message_id, label=label, labeler_kind=labeler_kind, labeler=labeler, score=score
    )
    session.add(row)
    session.flush()
    return row.id


def set_consent(
    session: Session, user_id: int, training: bool | None, publication: bool | None
) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user {user_id}", "user")
    if user.deletion_requested_at is not None:
        raise Forbidden("this user asked for deletion; consent can no longer be given", "user")
    if training is not None:
        user.consent_training = training
    if publication is not None:
        user.consent_publication = publication
    session.flush()
    return user


def request_deletion(session: Session, user_id: int) -> User:
    """Mark the user deleted: every later export and dataset leaves them out."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user {user_id}", "user")
    if user.deletion_requested_at is None:
        user.deletion_requested_at = utcnow()
        user.consent_training = False
        user.consent_publication = False
    session.flush()
    return user


def table_counts(session: Session) -> dict[str, int]:
    tables = {
        "users": User,
        "conversations": Conversation,
        "messages": Message,
        "feedback": Feedback,
        "comparisons": Comparison,
        "safety_labels": SafetyLabel,
        "model_versions": ModelVersion,
        "trust_scores": TrustScore,
    }
    return {
        name: session.scalar(select(func.count()).select_from(t)) or 0 for name, t in tables.items()
    }
