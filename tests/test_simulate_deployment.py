"""The simulated deployment: rows as the server writes them, counts, seeds, and a ground truth
that shows in the store (trolls write more inappropriate messages and contrary feedback)."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from alignloop.backends.base import GenerationParams
from alignloop.errors import ConfigError
from alignloop.simulate.deployment import (
    DeploymentConfig,
    FeedbackRates,
    Population,
    simulate_deployment,
    simulate_into,
)
from alignloop.simulate.texts import ADVERSARIAL_MESSAGES, INAPPROPRIATE_MESSAGES
from alignloop.store.db import make_engine, upgrade
from alignloop.store.models import Comparison, Conversation, Message, SafetyLabel, User
from alignloop.store.repository import (
    Turn,
    add_feedback,
    log_turn,
    table_counts,
    tail_hash,
    user_for_token,
)
from alignloop.store.stats import latest_feedback
from conftest import SHARED

TABLES = ("users", "conversations", "messages", "feedback", "comparisons", "safety_labels")


def _store(path):
    engine = make_engine(str(path))
    upgrade(engine)
    return engine


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """One mid-sized population on SQLite that most tests read."""
    engine = _store(tmp_path_factory.mktemp("sim") / "store.db")
    truth = simulate_deployment(engine, users=150, messages=8000, seed=7)
    yield engine, truth
    engine.dispose()


def test_rows_written_match_the_truths_counts_and_the_server_can_go_on(engine):
    truth = simulate_deployment(engine, users=40, messages=1200, seed=3)
    with Session(engine) as s:
        counts = table_counts(s)
    assert {k: counts[k] for k in truth.counts} == truth.counts
    assert counts["messages"] in (1199, 1200)  # an odd leftover of one may stay unused
    assert counts["users"] == len(truth.user_type) == 40
    assert len(truth.bot_quality) == counts["messages"] - len(_human_ids(engine))
    # Ids came from Python: the server's own inserts afterwards must not collide (PostgreSQL
    # sequences moved past them).
    with Session(engine) as s, s.begin():
        user = user_for_token(s, "a-real-user-token")
        turn = log_turn(s, Turn(user.id, [{"role": "user", "content": "hi"}], "hello", None))
        add_feedback(s, user.id, turn.bot_message_id, "like")
    assert user.id > max(truth.user_type)
    assert turn.bot_message_id > max(truth.bot_quality)
    with Session(engine) as s:
        bot = s.get(Message, max(truth.bot_quality))
        assert isinstance(bot.context, list) and bot.context[-1]["role"] == "user"
        assert isinstance(bot.generation, dict) and bot.model_version_id is not None


def test_simulate_into_migrates_reports_progress_and_saves_the_truth(tmp_path):
    seen: list[int] = []
    truth = simulate_into(
        str(tmp_path / "new.db"), 10, 300, seed=2, truth=tmp_path / "t.json", progress=seen.append
    )
    assert seen == sorted(seen) and seen[-1] == truth.counts["messages"]
    assert Population.load(tmp_path / "t.json").bot_category == truth.bot_category


def _human_ids(engine) -> list[int]:
    with Session(engine) as s:
        return list(s.scalars(select(Message.id).where(Message.sender == "human")))


def _dump(engine) -> dict[str, list[tuple]]:
    with engine.connect() as conn:
        return {t: list(conn.execute(text(f"SELECT * FROM {t} ORDER BY id"))) for t in TABLES}


def test_a_seeded_run_is_reproducible(tmp_path):
    runs = []
    for name, seed in (("a", 11), ("b", 11), ("c", 12)):
        engine = _store(tmp_path / f"{name}.db")
        truth = simulate_deployment(engine, users=20, messages=600, seed=seed)
        runs.append((_dump(engine), truth))
        engine.dispose()
    (first, truth_a), (second, truth_b), (other, _) = runs
    assert first == second
    assert truth_a.bot_category == truth_b.bot_category
    assert truth_a.user_type == truth_b.user_type
    assert first["messages"] != other["messages"]


def test_trolls_write_more_inappropriate_messages_than_helpers(simulated):
    engine, truth = simulated
    inappropriate_texts = set(INAPPROPRIATE_MESSAGES) | set(ADVERSARIAL_MESSAGES)
    query = (
        select(User.id, Message.text)
        .join(Conversation, Conversation.user_id == User.id)
        .join(Message, Message.conversation_id == Conversation.id)
        .where(Message.sender == "human", Conversation.mode == "chat")
    )
    seen, bad = Counter(), Counter()
    with Session(engine) as s:
        for user_id, text_ in s.execute(query):
            group = "helper" if truth.user_type[user_id] == "helper" else "troll"
            seen[group] += 1
            bad[group] += text_ in inappropriate_texts
    helper_rate, troll_rate = bad["helper"] / seen["helper"], bad["troll"] / seen["troll"]
    assert 0.02 < helper_rate < 0.09  # SPEC §1: 4.8% in standard conversations
    assert 0.17 < troll_rate < 0.35  # 23% in adversarial ones (masters a little more)


def _latest_thumbs(engine) -> list[tuple[int, int, str]]:
    """(user, message, kind) of each user's latest like / dislike per message, from the store."""
    latest = latest_feedback()
    query = select(latest.c.user_id, latest.c.message_id, latest.c.kind).where(
        latest.c.kind.in_(("like", "dislike"))
    )
    with Session(engine) as s:
        return list(s.execute(query))


def test_trolls_give_contrary_feedback_and_helpers_do_not(simulated):
    engine, truth = simulated
    given, contrary = Counter(), Counter()
    for user_id, message_id, kind in _latest_thumbs(engine):
        user_type = truth.user_type[user_id]
        given[user_type] += 1
        good = truth.bot_quality[message_id] == "good"
        contrary[user_type] += (kind == "like") != good
    rate = {t: contrary[t] / given[t] for t in given}
    assert rate["helper"] < 0.1
    for flipper in ("flipper", "master"):
        assert rate[flipper] > 0.5
    assert rate["always_dislike"] > 0.5  # most replies are good
    with Session(engine) as s:
        kinds = Counter(
            (truth.user_type[u], k)
            for u, k in s.execute(text("SELECT user_id, kind FROM feedback"))
        )
    assert kinds[("always_like", "dislike")] == kinds[("always_dislike", "like")] == 0


def test_red_team_labels_are_right_from_helpers_and_wrong_from_trolls(simulated):
    engine, truth = simulated
    query = (
        select(User.id, SafetyLabel.message_id, SafetyLabel.label, SafetyLabel.labeler)
        .join(Message, Message.id == SafetyLabel.message_id)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .join(User, User.id == Conversation.user_id)
        .where(SafetyLabel.labeler_kind == "user")
    )
    pseudonyms = {}
    wrong, total = Counter(), Counter()
    with Session(engine) as s:
        pseudonyms = dict(s.execute(select(User.id, User.pseudonym)).all())
        for user_id, message_id, label, labeler in s.execute(query):
            assert labeler == pseudonyms[user_id]
            group = "helper" if truth.user_type[user_id] == "helper" else "troll"
            total[group] += 1
            wrong[group] += (label == "unsafe") != (truth.bot_quality[message_id] == "unsafe")
    assert wrong["helper"] / total["helper"] < 0.1
    assert wrong["troll"] / total["troll"] > 0.25


def test_deleted_users_and_users_without_consent_are_there(simulated):
    engine, _ = simulated
    with Session(engine) as s:
        users = s.scalars(select(User)).all()
    deleted = [u for u in users if u.deletion_requested_at is not None]
    assert deleted and all(not u.consent_training and not u.consent_publication for u in deleted)
    assert any(u.consent_training is None for u in users)
    assert any(u.consent_training is False and u.deletion_requested_at is None for u in users)
    assert sum(bool(u.consent_publication) for u in users) > len(users) / 5
    assert sum(bool(u.consent_training) for u in users) > len(users) / 2


def test_bot_messages_carry_context_model_version_and_settings_like_the_servers(simulated):
    engine, truth = simulated
    with Session(engine) as s:
        messages = s.scalars(select(Message).order_by(Message.conversation_id, Message.id)).all()
        null_contexts = s.scalar(
            text("SELECT count(*) FROM messages WHERE sender = 'human' AND context IS NULL")
        )
    by_conversation = defaultdict(list)
    for m in messages:
        by_conversation[m.conversation_id].append(m)
    assert null_contexts == len(messages) - len(truth.bot_quality)  # SQL NULL, not JSON null
    params = set(GenerationParams().as_dict())
    for conversation in by_conversation.values():
        # What the model saw: the earlier messages no regeneration replaced, one per position.
        main_line = [m for m in conversation if m.superseded_by_id is None]
        assert len({m.position for m in main_line}) == len(main_line)
        for m in conversation:
            before = [_item(o) for o in main_line if o.position < m.position]
            assert m.position == len(before)
            assert m.tail_hash == tail_hash([*before, _item(m)])
            if m.sender == "bot":
                assert m.context == before
                assert m.model_version_id in truth.model_versions.values()
                assert params | {"finish_reason", "safety_gate"} == set(m.generation)
                assert (m.generation["finish_reason"] == "content_filter") == m.safety_gated
            else:
                assert m.context is None and m.model_version_id is None


def _item(m: Message) -> dict[str, str]:
    return {"role": "user" if m.sender == "human" else "assistant", "content": m.text}


def test_regenerations_red_team_and_gate_rows_follow_the_servers_rules(simulated):
    engine, truth = simulated
    with Session(engine) as s:
        comparisons = s.scalars(select(Comparison)).all()
        bot = {m.id: m for m in s.scalars(select(Message).where(Message.sender == "bot"))}
        gated_feedback = s.execute(
            text(
                "SELECT f.kind, m.safety_gated FROM feedback f JOIN messages m ON m.id = f.message_id"
            )
        ).all()
        redteam_unlabelled = s.scalar(
            text(
                "SELECT count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id "
                "WHERE c.mode = 'redteam' AND m.sender = 'bot' AND NOT EXISTS (SELECT 1 FROM "
                "safety_labels l WHERE l.message_id = m.id AND l.labeler_kind = 'user')"
            )
        )
        classifier_labels = s.scalar(
            text("SELECT count(*) FROM safety_labels WHERE labeler_kind = 'classifier'")
        )
    regenerated = [c for c in comparisons if c.source == "regenerate"]
    assert regenerated and any(c.source == "compare" for c in comparisons)
    for c in regenerated:
        old, new = (bot[r["message_id"]] for r in c.responses)
        assert old.id < new.id and old.position == new.position and old.context == c.context
        winner = c.choice if c.outcome == "choice" else 1
        loser = (old, new)[1 - winner]
        assert loser.superseded_by_id == (old, new)[winner].id
        assert truth.comparison_quality[c.id] == [
            truth.bot_quality[old.id],
            truth.bot_quality[new.id],
        ]
    for kind, gated in gated_feedback:
        assert kind.startswith("sensitive_") == bool(gated)
    assert redteam_unlabelled == 0
    assert classifier_labels > 0


def test_the_truth_saves_and_loads_as_json_and_parquet(simulated, tmp_path):
    _, truth = simulated
    for name in ("truth.json", "truth.parquet"):
        loaded = Population.load(truth.save(tmp_path / name))
        assert loaded.user_type == truth.user_type
        assert loaded.bot_quality == truth.bot_quality
        assert loaded.bot_category == truth.bot_category
        assert loaded.inappropriate == truth.inappropriate
        assert loaded.comparison_quality == truth.comparison_quality
        assert loaded.counts == truth.counts and loaded.seed == truth.seed


def test_bb3x_rates_give_the_published_thumbs_rates(tmp_path):
    engine = _store(tmp_path / "bb3x.db")
    config = DeploymentConfig(rates=FeedbackRates.bb3x())
    truth = simulate_deployment(engine, users=200, messages=16000, seed=5, config=config)
    thumbs = Counter(kind for _, _, kind in _latest_thumbs(engine))
    bot_messages = len(truth.bot_quality)
    assert 0.015 < thumbs["like"] / bot_messages < 0.04  # SPEC §1: 2.12% -> 3.47%
    assert 0.008 < thumbs["dislike"] / bot_messages < 0.025  # 1.63% -> 1.40%
    engine.dispose()


def test_bad_arguments_are_refused_naming_the_field(tmp_path):
    engine = _store(tmp_path / "x.db")
    for kwargs, field in (
        ({"users": 0, "messages": 10}, "users"),
        ({"users": 10, "messages": 5}, "messages"),
        ({"users": 10, "messages": 100, "troll_share": 1.5}, "troll_share"),
        (
            {"users": 10, "messages": 100, "config": DeploymentConfig(troll_types=("ogre",))},
            "troll_types",
        ),
    ):
        with pytest.raises(ConfigError) as info:
            simulate_deployment(engine, seed=0, **kwargs)
        assert info.value.field == field
    with Session(engine) as s:
        assert table_counts(s)["users"] == 0


DIASAFETY = SHARED / "data" / "diasafety" / "train.json"


@pytest.mark.skipif(not DIASAFETY.exists(), reason=f"no DiaSafety file at {DIASAFETY}")
def test_texts_can_come_from_diasafety(tmp_path):
    engine = _store(tmp_path / "d.db")
    simulate_deployment(engine, users=20, messages=600, seed=1, texts_from=DIASAFETY)
    import json

    responses = {row["response"].strip() for row in json.loads(DIASAFETY.read_text())}
    with Session(engine) as s:
        texts = s.scalars(select(Message.text).where(Message.sender == "bot")).all()
    assert sum(t in responses for t in texts) > len(texts) / 10
    engine.dispose()
