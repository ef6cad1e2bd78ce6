"""The store on a SQLite file and on a real PostgreSQL server: migrations, turns, feedback."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alignloop.errors import Conflict, Forbidden, InvalidInput, NotFound
from alignloop.store.db import (
    current_revision,
    head_revision,
    make_engine,
    normalize_url,
    upgrade,
)
from alignloop.store.models import Feedback, Message, SafetyLabel
from alignloop.store.repository import (
    Turn,
    add_feedback,
    create_comparison,
    log_turn,
    record_vote,
    request_deletion,
    set_consent,
    table_counts,
    user_for_token,
)
from alignloop.store.writer import GroupCommitWriter


def _turn(session, user_id, context, reply="a reply", gated=False):
    return log_turn(session, Turn(user_id, context, reply, None, {"temperature": 0.7}, gated))


def test_migrations_apply_once_and_are_idempotent(engine):
    assert current_revision(engine) == head_revision() == "0006"
    upgrade(engine)
    with Session(engine) as s:
        assert table_counts(s)["messages"] == 0


def test_sqlite_store_is_wal_with_durable_commits(tmp_path):
    engine = make_engine(str(tmp_path / "x.db"))
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_url_normalization():
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("data/a.db").startswith("sqlite:////")


def test_turn_is_logged_with_context_and_continued_by_resent_history(engine):
    with Session(engine) as s, s.begin():
        user = user_for_token(s, "token-one-abc")
        first = [{"role": "user", "content": "hi"}]
        t1 = _turn(s, user.id, first, "hello!")
        history = [*first, {"role": "assistant", "content": "hello!"}]
        t2 = _turn(s, user.id, [*history, {"role": "user", "content": "how are you?"}])
        other = user_for_token(s, "token-two-abc")
        t3 = _turn(s, other.id, [*history, {"role": "user", "content": "how are you?"}])
    assert t2.conversation_id == t1.conversation_id  # the resent history continues it
    assert t3.conversation_id != t1.conversation_id  # another user's history never does
    with Session(engine) as s:
        bot = s.get(Message, t2.bot_message_id)
        assert bot.sender == "bot" and bot.position == 3
        assert bot.context[-1] == {"role": "user", "content": "how are you?"}
        assert bot.generation == {"temperature": 0.7}


def test_feedback_is_validated_before_anything_is_written(engine):
    with Session(engine) as s, s.begin():
        user = user_for_token(s, "token-one-abc")
        stranger = user_for_token(s, "token-two-abc")
        turn = _turn(s, user.id, [{"role": "user", "content": "hi"}])
    bad = [
        (dict(message_id=10**9, kind="like"), NotFound),
        (dict(message_id=turn.human_message_id, kind="like"), Conflict),
        (dict(message_id=turn.bot_message_id, kind="dislike", reason="boring"), InvalidInput),
        (dict(message_id=turn.bot_message_id, kind="like", reason="rude"), InvalidInput),
        (dict(message_id=turn.bot_message_id, kind="sensitive_agree"), Conflict),
        (dict(message_id=turn.bot_message_id, kind="love"), InvalidInput),
    ]
    for kwargs, error in bad:
        with Session(engine) as s, s.begin(), pytest.raises(error):
            add_feedback(s, user.id, **kwargs)
    with Session(engine) as s, s.begin(), pytest.raises(NotFound):
        add_feedback(s, stranger.id, turn.bot_message_id, "like")
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Feedback)) == 0
    with Session(engine) as s, s.begin():
        add_feedback(s, user.id, turn.bot_message_id, "dislike", "Rude / inappropriate", "Be kind")
    with Session(engine) as s:
        row = s.scalars(select(Feedback)).one()
        assert (row.kind, row.reason, row.text) == ("dislike", "rude", "Be kind")


def test_comparison_votes_are_checked_and_recorded_once(engine):
    with Session(engine) as s, s.begin():
        user = user_for_token(s, "token-one-abc")
        responses = [{"text": t, "model": "m"} for t in "abc"]
        cid = create_comparison(s, user.id, [{"role": "user", "content": "q"}], responses, None)
    for kwargs in (dict(outcome="choice", choice=3), dict(outcome="ranking", ranking=[0, 0, 1])):
        with Session(engine) as s, s.begin(), pytest.raises(InvalidInput):
            record_vote(s, user.id, cid, **kwargs)
    with Session(engine) as s, s.begin():
        record_vote(s, user.id, cid, "ranking", ranking=[2, 0, 1])
    with Session(engine) as s, s.begin(), pytest.raises(Conflict):
        record_vote(s, user.id, cid, "tie")


def test_consent_and_deletion(engine):
    with Session(engine) as s, s.begin():
        user = user_for_token(s, "token-one-abc")
        row = set_consent(s, user.id, training=True, publication=None)
        assert (row.consent_training, row.consent_publication) == (True, None)
        request_deletion(s, user.id)
    with Session(engine) as s, s.begin(), pytest.raises(Forbidden):
        set_consent(s, user.id, training=True, publication=True)


def test_writer_isolates_a_failing_job_and_commits_the_rest(engine):
    with Session(engine) as s, s.begin():
        user = user_for_token(s, "token-one-abc")
        turn = _turn(s, user.id, [{"role": "user", "content": "hi"}])
    writer = GroupCommitWriter(engine).start()
    try:
        futures = [
            writer.submit(lambda s: add_feedback(s, user.id, turn.bot_message_id, "like"))
            for _ in range(50)
        ]
        futures.append(writer.submit(lambda s: add_feedback(s, user.id, 10**9, "like")))
        futures += [
            writer.submit(lambda s: add_feedback(s, user.id, turn.bot_message_id, "dislike"))
            for _ in range(50)
        ]
        results = [f.exception() for f in futures]
    finally:
        writer.stop()
    assert sum(isinstance(r, NotFound) for r in results) == 1
    assert sum(r is None for r in results) == 100
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Feedback)) == 100


def test_concurrent_writers_lose_nothing(engine):
    with Session(engine) as s, s.begin():
        user = user_for_token(s, "token-one-abc")
        turn = _turn(s, user.id, [{"role": "user", "content": "hi"}])
    writer = GroupCommitWriter(engine).start()

    def hammer():
        for _ in range(40):
            writer.run_sync(lambda s: add_feedback(s, user.id, turn.bot_message_id, "like"))

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.stop()
    assert writer.batches < writer.jobs  # writes were grouped into shared commits
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Feedback)) == 320
        assert s.scalar(select(func.count()).select_from(SafetyLabel)) == 0
