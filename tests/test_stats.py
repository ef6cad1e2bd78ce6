"""Regeneration, the red-team rule, and the admin aggregates, on SQLite and PostgreSQL; the
SVG charts; the migrations matching the ORM models."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select
from sqlalchemy.orm import Session

from alignloop.charts import bar_chart, line_chart, nice_max
from alignloop.errors import Conflict, NotFound
from alignloop.store import stats
from alignloop.store.models import Base, Comparison, Message, TrustScore
from alignloop.store.repository import (
    Turn,
    add_feedback,
    add_safety_label,
    check_can_continue,
    log_regeneration,
    log_turn,
    record_vote,
    user_for_token,
)

HELLO = [{"role": "user", "content": "hello"}]


def _turn(s, user_id, context=HELLO, reply="hi", gated=False, mode="chat", conversation=None):
    return log_turn(s, Turn(user_id, context, reply, None, {}, gated, conversation, mode))


def test_migrations_match_the_models(engine):
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_regenerated_reply_waits_for_a_pick_that_decides_the_main_line(engine):
    with Session(engine) as s, s.begin():
        user = user_for_token(s, "regen-user-token")
        turn = _turn(s, user.id)
        regen = log_regeneration(s, user.id, turn.bot_message_id, "hello again", {}, False, None)
    assert regen.human_message_id == turn.human_message_id and regen.old_text == "hi"
    with Session(engine) as s, pytest.raises(Conflict, match="pick the better"):
        check_can_continue(s, user.id, turn.conversation_id)
    with Session(engine) as s, pytest.raises(Conflict, match="awaits a choice"):
        log_regeneration(s, user.id, regen.new_message_id, "third", {}, False, None)
    with Session(engine) as s, s.begin():
        record_vote(s, user.id, regen.comparison_id, "choice", choice=0)
    with Session(engine) as s:
        new = s.get(Message, regen.new_message_id)
        assert new.superseded_by_id == turn.bot_message_id and new.position == 1
        assert s.get(Message, turn.bot_message_id).superseded_by_id is None
        assert s.scalar(select(Comparison.source)) == "regenerate"
        check_can_continue(s, user.id, turn.conversation_id)  # no longer blocked


@pytest.mark.parametrize("outcome", ["tie", "both_bad"])
def test_regeneration_without_a_pick_keeps_the_new_reply(engine, outcome):
    with Session(engine) as s, s.begin():
        user = user_for_token(s, "regen-user-token")
        turn = _turn(s, user.id)
        regen = log_regeneration(s, user.id, turn.bot_message_id, "again", {}, False, None)
        record_vote(s, user.id, regen.comparison_id, outcome)
        assert s.get(Message, turn.bot_message_id).superseded_by_id == regen.new_message_id


def test_only_the_latest_plain_reply_can_be_regenerated(engine):
    with Session(engine) as s, s.begin():
        user = user_for_token(s, "regen-user-token")
        other = user_for_token(s, "someone-else-token")
        first = _turn(s, user.id)
        second = _turn(s, user.id, [*HELLO, {"role": "assistant", "content": "hi"}, *HELLO])
        gated = _turn(s, user.id, [{"role": "user", "content": "bad words"}], "canned", True)
    cases = [
        (first.bot_message_id, user.id, Conflict, "latest reply"),
        (gated.bot_message_id, user.id, Conflict, "canned safety reply"),
        (second.human_message_id, user.id, Conflict, "written by the human"),
        (second.bot_message_id, other.id, NotFound, "no message"),
    ]
    for message_id, user_id, error, words in cases:
        with Session(engine) as s, pytest.raises(error, match=words):
            log_regeneration(s, user_id, message_id, "x", {}, False, None)
    with Session(engine) as s:
        assert s.scalar(select(Comparison.id)) is None  # nothing written


def test_red_team_turn_needs_the_users_label_first(engine):
    with Session(engine) as s, s.begin():
        user = user_for_token(s, "red-team-token")
        turn = _turn(s, user.id, mode="redteam")
        add_safety_label(s, turn.bot_message_id, "unsafe", "classifier", "profanity", 0.9)
    follow = [*HELLO, {"role": "assistant", "content": "hi"}, *HELLO]
    for conversation in (turn.conversation_id, None):  # by id, and by resent history
        with Session(engine) as s, pytest.raises(Conflict, match="safe or unsafe"):
            _turn(s, user.id, follow, conversation=conversation)
    with Session(engine) as s, s.begin():
        add_safety_label(s, turn.bot_message_id, "safe", "user", user.pseudonym)
        assert _turn(s, user.id, follow).conversation_id == turn.conversation_id


def _seed(engine):
    """Two users: one likes then dislikes (counts once, as a dislike), one dislikes as rude."""
    with Session(engine) as s, s.begin():
        alice = user_for_token(s, "alice-token-123")
        bob = user_for_token(s, "bob-token-45678")
        a = _turn(s, alice.id, [{"role": "user", "content": "alice asks"}])
        b = _turn(s, bob.id, [{"role": "user", "content": "bob asks"}])
        quiet = _turn(s, bob.id, [{"role": "user", "content": "no feedback here"}])
        add_feedback(s, alice.id, a.bot_message_id, "like")
        add_feedback(s, alice.id, a.bot_message_id, "dislike", "nonsensical", "say it well")
        add_feedback(s, bob.id, b.bot_message_id, "dislike", "rude")
        _turn(s, bob.id, [{"role": "user", "content": "red"}], "canned", True, "redteam")
        s.add_all(
            [
                TrustScore(user_id=alice.id, method="t", troll_score=0.1, n_labels=3),
                TrustScore(user_id=bob.id, method="t", troll_score=0.2, n_labels=3),
                TrustScore(user_id=bob.id, method="t", troll_score=0.8, n_labels=5),
            ]
        )
    return alice, bob, a, b, quiet


def test_totals_count_each_users_latest_feedback(engine):
    _seed(engine)
    with Session(engine) as s:
        totals = stats.totals(s)
        reasons = stats.dislikes_by_reason(s)
    assert (totals["likes"], totals["dislikes"], totals["corrections"]) == (0, 2, 1)
    assert totals["canned safety replies"] == 1 and totals["red-team conversations"] == 1
    assert reasons["Nonsensical / incorrect"] == 1 and reasons["Rude / inappropriate"] == 1
    assert reasons["Other"] == 0


def test_activity_is_counted_per_day_with_zeros_filled(engine):
    _seed(engine)
    now = datetime.now(UTC)
    with Session(engine) as s:
        activity = stats.activity_by_day(s, days=3, now=now)
    today = now.date().isoformat()
    assert activity["days"] == [(now.date() - timedelta(days=2 - i)).isoformat() for i in range(3)]
    assert activity["days"][-1] == today
    assert activity["series"]["conversations"] == [0, 0, 4]
    assert activity["series"]["dislikes"] == [0, 0, 2]
    assert activity["series"]["likes"] == [0, 0, 0]
    assert activity["series"]["canned safety replies"] == [0, 0, 1]
    with Session(engine) as s:
        reasons = stats.dislike_reasons_by_day(s, days=2, now=now)["series"]
    assert reasons["Rude / inappropriate"] == [0, 1] and reasons["Other"] == [0, 0]


def test_troll_scores_use_each_users_latest_score(engine):
    _, bob, *_ = _seed(engine)
    with Session(engine) as s:
        top = stats.top_troll_scores(s)
    assert (top[0]["pseudonym"], top[0]["troll_score"]) == (bob.pseudonym, 0.8)
    assert len(top) == 2


def test_conversation_browser_filters(engine):
    alice, bob, a, b, quiet = _seed(engine)

    def ids(**filters) -> set[int]:
        with Session(engine) as s:
            page = stats.browse_conversations(s, stats.ConversationFilter(**filters))
        assert page["total"] == len(page["conversations"])
        return {c["id"] for c in page["conversations"]}

    assert ids(feedback="dislike") == {a.conversation_id, b.conversation_id}
    assert ids(feedback="like") == set()  # alice changed her mind
    assert ids(reason="rude") == {b.conversation_id}
    assert ids(user=alice.pseudonym) == {a.conversation_id}
    assert quiet.conversation_id in ids(feedback="none")
    assert a.conversation_id not in ids(feedback="none")
    assert len(ids(mode="redteam")) == 1
    with Session(engine) as s:
        page = stats.browse_conversations(s, stats.ConversationFilter(user=bob.pseudonym, limit=1))
        detail = stats.conversation_detail(s, b.conversation_id)
    assert page["total"] == 3 and len(page["conversations"]) == 1
    assert detail["messages"][1]["feedback"] == [
        {"kind": "dislike", "reason": "rude", "text": None}
    ]


def test_nice_axis_tops():
    assert [nice_max(v) for v in (0, 0.3, 1, 3, 7, 12, 999)] == [1, 0.5, 1, 5, 10, 20, 1000]


def test_charts_are_valid_svg_with_escaped_labels():
    hostile = "<script>alert(1)</script>"
    for svg in (
        line_chart(["2026-11-20", "2026-11-21"], {hostile: [1, 3], "b": [0, 2]}, "t & <x>"),
        bar_chart({hostile: 2, "ok": 0}, "reasons"),
        line_chart([], {}, "empty"),
    ):
        root = ET.fromstring(svg)  # well-formed XML
        assert root.tag.endswith("svg")
        assert "<script" not in svg
    assert "&lt;script&gt;" in bar_chart({hostile: 2}, "r")
