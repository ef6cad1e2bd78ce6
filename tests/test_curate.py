"""`alignloop curate`: a store written by the server's own repository functions goes through
the whole chain; the datasets hold what the labelling rule says, from consenting users only,
de-identified, with provenance, and the run, its trust scores and datasets are recorded."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from alignloop.curate.config import CurateConfig
from alignloop.curate.run import curate
from alignloop.errors import InvalidInput
from alignloop.store.db import make_engine, upgrade
from alignloop.store.models import CurationRun, Dataset, TrustScore, User
from alignloop.store.repository import (
    Turn,
    add_feedback,
    add_safety_label,
    create_comparison,
    log_turn,
    record_vote,
    request_deletion,
    set_consent,
    user_for_token,
)

UNSAFE = "you are a fucking idiot and I hate you, shit"
WORDS = [
    "tea",
    "rain",
    "maps",
    "music",
    "chess",
    "bread",
    "garden",
    "river",
    "lamp",
    "coat",
    "stone",
    "cloud",
]


def _chat(s, user, question, reply, mode="chat"):
    return log_turn(
        s, Turn(user.id, [{"role": "user", "content": question}], reply, None, {}, mode=mode)
    )


@pytest.fixture
def store(tmp_path):
    engine = make_engine(str(tmp_path / "s.db"))
    upgrade(engine)
    ids = {}
    with Session(engine) as s, s.begin():
        helper = user_for_token(s, "helper-token")
        troll = user_for_token(s, "troll-token")
        shy = user_for_token(s, "no-consent-token")
        gone = user_for_token(s, "gone-token")
        for user in (helper, troll, gone):
            set_consent(s, user.id, True, True)
        for i in range(8):
            good = _chat(s, helper, f"how do plants grow {i}?", f"With light and water, step {i}.")
            add_feedback(s, helper.id, good.bot_message_id, "like")
        _chat(s, helper, "what time is it?", "It is noon.")  # nobody rated it
        bad = _chat(s, helper, "mail me at jane.doe@example.com", "Bananas are blue.")
        add_feedback(s, helper.id, bad.bot_message_id, "dislike", "nonsensical", "Sure, noted.")
        ids["helper_bad"] = bad.bot_message_id
        for i in range(8):
            rude = _chat(s, troll, f"{UNSAFE} {i}", f"{UNSAFE} too {i}")
            add_feedback(s, troll.id, rude.bot_message_id, "like")
        ids["troll_rude"] = rude.bot_message_id
        shy_turn = _chat(s, shy, "a private question", "a private answer")
        add_feedback(s, shy.id, shy_turn.bot_message_id, "like")
        gone_turn = _chat(s, gone, "forget me", "will do")
        add_feedback(s, gone.id, gone_turn.bot_message_id, "like")
        request_deletion(s, gone.id)
        comparison = create_comparison(
            s,
            helper.id,
            [{"role": "user", "content": "pick one"}],
            [{"text": "a fine answer"}, {"text": "a worse answer"}, {"text": "the best"}],
            None,
        )
        record_vote(s, helper.id, comparison, "ranking", ranking=[2, 0, 1])
        red = _chat(s, helper, "say something mean", "You smell.", mode="redteam")
        add_safety_label(s, red.bot_message_id, "unsafe", "user", helper.pseudonym)
        attack = _chat(s, troll, "how do I hurt my cat?", "Step one: ...", mode="redteam")
        add_safety_label(s, attack.bot_message_id, "safe", "user", troll.pseudonym)
        ids |= {"helper": helper.id, "troll": troll.id, "shy": shy.id, "gone": gone.id}
    return engine, tmp_path / "s.db", ids


def _rows(out, kind):
    return [json.loads(x) for x in (out / f"{kind}.jsonl").read_text().splitlines()]


def test_curation_builds_each_dataset_from_trusted_consenting_users(store, tmp_path):
    _, db, ids = store
    result = curate(CurateConfig(db=str(db), out=str(tmp_path / "run")))
    out = result.out
    sft = _rows(out, "sft")
    replies = [r["messages"][-1]["content"] for r in sft]
    assert sum("With light and water" in r for r in replies) == 8
    assert "Sure, noted." in replies  # the helper's correction is a demonstration
    assert not any("too" in r for r in replies)  # the troll's liked rude replies are not
    binary = _rows(out, "binary")
    negatives = [r["completion"] for r in binary if not r["label"]]
    assert "Bananas are blue." in negatives and any(UNSAFE in n for n in negatives)
    pairs = _rows(out, "pairs")
    assert {"chosen": "Sure, noted.", "rejected": "Bananas are blue."}.items() <= pairs[-1].items()
    assert [p["chosen"] for p in pairs[:2]] == ["the best", "the best"]
    rankings = _rows(out, "rankings")
    assert rankings == [
        {
            "prompt": [{"role": "user", "content": "pick one"}],
            "responses": ["a fine answer", "a worse answer", "the best"],
            "ranking": [2, 0, 1],
        }
    ]
    safety = _rows(out, "safety")
    assert [(r["response"], r["label"]) for r in safety] == [("You smell.", "unsafe")]
    # the distrusted troll's red-team turn: its "safe" label is not believed, the attack is kept
    attacks = _rows(out, "attacks")
    assert attacks == [
        {
            "context": [{"role": "user", "content": "how do I hurt my cat?"}],
            "response": "Step one: ...",
        }
    ]
    # consent and deletion: no row comes from the user without consent or the deleted user
    for kind in ("sft", "binary", "pairs", "rankings", "safety", "attacks"):
        provenance = pd.read_parquet(out / f"{kind}.provenance.parquet")
        users = {u for row in provenance["user_ids"] for u in row}
        assert not users & {ids["shy"], ids["gone"]}, kind
        assert len(provenance) == len(_rows(out, kind))
    # de-identification: the e-mail in the helper's prompt is scrubbed in every dataset
    assert "jane.doe@example.com" not in (out / "binary.jsonl").read_text()
    assert "[EMAIL]" in (out / "binary.jsonl").read_text()


def test_a_correction_the_safety_classifier_flags_is_left_out(store, tmp_path):
    engine, db, _ = store
    with Session(engine) as s, s.begin():
        other = user_for_token(s, "another-helper-token")
        set_consent(s, other.id, True, True)
        for question, correction in (("capital of France?", "Paris."), ("6 x 7?", "42, idiot.")):
            turn = _chat(s, other, question, "I like turtles.")
            add_feedback(s, other.id, turn.bot_message_id, "dislike", "other", correction)
    # everyone trusted: only the classifier's reading of the correction can leave it out
    out = curate(CurateConfig(db=str(db), out=str(tmp_path / "run"), max_troll_score=1.0)).out
    replies = [r["messages"][-1]["content"] for r in _rows(out, "sft")]
    assert "Paris." in replies and "42, idiot." not in replies
    chosen = [r["chosen"] for r in _rows(out, "pairs")]
    assert "Paris." in chosen and "42, idiot." not in chosen


def test_the_run_its_trust_scores_and_datasets_are_recorded(store, tmp_path):
    engine, db, ids = store
    result = curate(CurateConfig(db=str(db), out=str(tmp_path / "run")))
    with Session(engine) as s:
        run = s.get(CurationRun, result.run_id)
        assert run.finished_at is not None and run.summary["users_distrusted"] >= 1
        scores = {
            t.user_id: t
            for t in s.scalars(select(TrustScore).where(TrustScore.run_id == result.run_id))
        }
        assert scores[ids["troll"]].troll_score > scores[ids["helper"]].troll_score
        assert ids["gone"] not in scores
        assert set(scores[ids["troll"]].components) >= {"classifier_agreement", "flagged_share"}
        datasets = s.scalars(select(Dataset).where(Dataset.run_id == result.run_id)).all()
        kinds = {"sft", "binary", "pairs", "rankings", "safety", "attacks"}
        assert {d.kind for d in datasets} == kinds
        assert all(len(d.sha256) == 64 for d in datasets)
        from alignloop.store.stats import top_troll_scores

        shown = top_troll_scores(s)  # what the admin page's table lists
        assert shown[0]["run_id"] == result.run_id and shown[0]["troll_score"] > 0.5
        assert "classifier_agreement" in shown[0]["signals"]


def test_users_without_consent_neither_get_nor_move_trust_scores(store, tmp_path):
    """An evaluator asking held-out prompts without consent (the demo's measuring user) must
    not shift the population means the consenting users are measured against."""
    engine, db, ids = store

    def scores(out: str) -> dict[int, float]:
        run_id = curate(CurateConfig(db=str(db), out=str(tmp_path / out))).run_id
        with Session(engine) as s:
            rows = s.scalars(select(TrustScore).where(TrustScore.run_id == run_id)).all()
            return {t.user_id: t.troll_score for t in rows}

    with Session(engine) as s, s.begin():
        edgy = user_for_token(s, "edgy-token")  # half harmless, half abuse
        set_consent(s, edgy.id, True, True)
        for i in range(6):
            _chat(s, edgy, f"{UNSAFE} {i}" if i % 2 else f"what is rain {i}?", "Hmm.")
    before = scores("before")
    with Session(engine) as s, s.begin():
        evaluator = user_for_token(s, "evaluator-token")
        set_consent(s, evaluator.id, False, False)
        for i in range(30):  # all harmless: were they counted, everyone else would look worse
            _chat(s, evaluator, f"how do plants grow {i}?", f"A calm answer {i}.")
    after = scores("after")
    assert ids["shy"] not in before and evaluator.id not in after
    assert after == before  # were they counted: the edgy user 0.72, then 0.90


def test_trust_scores_do_not_depend_on_the_order_users_arrived_in(tmp_path):
    """Concurrent users reach the store in a racing order, which numbers them; the same people
    doing the same things must get the same scores (the demo's two arms are such stores)."""
    raters = [f"rater-{i}" for i in range(9)]

    def scores(order: list[str], name: str) -> dict[str, float]:
        db = str(tmp_path / f"{name}.db")
        upgrade(make_engine(db))
        with Session(make_engine(db)) as s, s.begin():
            users = {token: user_for_token(s, token) for token in order}
            for token in raters:
                user, r = users[token], int(token.split("-")[1])
                set_consent(s, user.id, True, True)
                for i in range(6):
                    words = " ".join(WORDS[(r * 7 + i * 3 + j) % len(WORDS)] for j in range(4))
                    finished = (r + i) % 3 != 0
                    turn = _chat(
                        s, user, f"tell me about {words}", words + ("." if finished else "")
                    )
                    liked = finished != (r < 2)  # raters 0 and 1 flip
                    add_feedback(s, user.id, turn.bot_message_id, "like" if liked else "dislike")
            hashes = {users[t].id: t for t in order}
        run_id = curate(CurateConfig(db=db, out=str(tmp_path / name))).run_id
        with Session(make_engine(db)) as s:
            rows = s.scalars(select(TrustScore).where(TrustScore.run_id == run_id)).all()
            return {hashes[t.user_id]: round(t.troll_score, 9) for t in rows}

    forward, backward = scores(raters, "forward"), scores(raters[::-1], "backward")
    assert forward == backward and len(forward) == len(raters)
    assert min(forward["rater-0"], forward["rater-1"]) > max(forward[t] for t in raters[2:])


def test_a_used_out_folder_is_refused_and_the_store_untouched(store, tmp_path):
    engine, db, _ = store
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "old.jsonl").write_text("{}\n")
    with pytest.raises(InvalidInput, match="out"):
        curate(CurateConfig(db=str(db), out=str(tmp_path / "run")))
    with Session(engine) as s:
        assert s.scalar(select(CurationRun.id)) is None


def test_curate_cli_prints_a_summary_and_names_bad_options(store, tmp_path):
    _, db, _ = store
    argv = [sys.executable, "-m", "alignloop", "curate", "--db", str(db)]
    ok = subprocess.run(
        [*argv, "--out", str(tmp_path / "cli")], capture_output=True, text=True, timeout=300
    )
    assert ok.returncode == 0, ok.stderr
    assert "users distrusted" in ok.stdout and "sft" in ok.stdout
    bad = subprocess.run(
        [*argv, "--out", str(tmp_path / "bad"), "--kinds", "sft,goblins"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and "kinds" in bad.stderr
    assert not (tmp_path / "bad").exists()
    with Session(make_engine(str(db))) as s:
        assert s.scalar(select(User.id).where(User.pseudonym == "nobody")) is None


def test_a_store_without_the_schema_is_named_with_the_fix(tmp_path):
    with pytest.raises(InvalidInput, match="alignloop db upgrade"):
        curate(CurateConfig(db=str(tmp_path / "empty.db"), out=str(tmp_path / "run")))


def test_release_holds_only_publication_consenting_users_de_identified(store, tmp_path):
    from alignloop.curate.release import release

    engine, _, _ = store
    secret = tmp_path / "secret.txt"
    card = release(engine, tmp_path / "release", secret)
    lines = [
        json.loads(x)
        for x in (tmp_path / "release" / "conversations.jsonl").read_text().splitlines()
    ]
    text = (tmp_path / "release" / "conversations.jsonl").read_text()
    assert "a private question" not in text and "forget me" not in text  # no consent / deleted
    assert "jane.doe@example.com" not in text and "[EMAIL]" in text
    with Session(engine) as s:
        pseudonyms = set(s.scalars(select(User.pseudonym)))
    assert {r["user"] for r in lines}.isdisjoint(pseudonyms)
    assert len({r["user"] for r in lines}) == card["users"] == 2
    assert card["personal_data_replaced"]["EMAIL"] >= 1
    assert "consented to publication" in (tmp_path / "release" / "DATA_CARD.md").read_text()
    assert len(secret.read_text().strip()) >= 32
    again = release(engine, tmp_path / "release2")
    second = json.loads((tmp_path / "release2" / "conversations.jsonl").read_text().splitlines()[0])
    assert second["user"] != lines[0]["user"]  # a new secret per release
    assert again["conversations"] == card["conversations"]


def test_a_reward_model_judges_replies_against_tau_plus(store, tmp_path):
    from alignloop.train.config import RewardConfig
    from alignloop.train.run import train

    _, db, _ = store
    rows = [
        {"prompt": "q", "completion": "good answer", "label": True},
        {"prompt": "q", "completion": "bad answer", "label": False},
    ]
    data = tmp_path / "thumbs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rm = tmp_path / "rm"
    train(
        "reward",
        RewardConfig(
            model="tiny", data=str(data), out=str(rm), objective="binary", center=False,
            batch_size=2, max_steps=1, save_every=1000,
        ),
    )  # fmt: skip
    plain = curate(CurateConfig(db=str(db), out=str(tmp_path / "plain"), kinds=["binary"]))
    judged = curate(
        CurateConfig(
            db=str(db), out=str(tmp_path / "judged"), kinds=["binary"], reward_model=str(rm),
            tau_plus=0.0, tau_minus=1.0,
        )
    )  # fmt: skip
    assert "reward" in judged.seconds
    # with tau_plus = 0 every reply nobody flagged becomes positive, liked or not
    assert judged.summary["bot_replies_positive"] > plain.summary["bot_replies_positive"]
    reasons = pd.read_json(tmp_path / "judged" / "binary.jsonl", lines=True)
    assert len(reasons) > len(pd.read_json(tmp_path / "plain" / "binary.jsonl", lines=True))


def test_release_cli_writes_the_release_and_refuses_a_used_folder(store, tmp_path):
    _, db, _ = store
    argv = [sys.executable, "-m", "alignloop", "release", "--db", str(db)]
    ok = subprocess.run(
        [*argv, "--out", str(tmp_path / "pub")], capture_output=True, text=True, timeout=300
    )
    assert ok.returncode == 0, ok.stderr
    assert "released 2" in ok.stdout and "DATA_CARD.md" in {
        p.name for p in (tmp_path / "pub").iterdir()
    }
    again = subprocess.run(
        [*argv, "--out", str(tmp_path / "pub")], capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 2 and "not empty" in again.stderr


def test_simulate_then_curate_from_the_command_line(tmp_path):
    """The loop's first half with no server: simulated users, then curation of their store."""
    db, truth = str(tmp_path / "sim.db"), tmp_path / "truth.json"
    run = [sys.executable, "-m", "alignloop"]
    sim = subprocess.run(
        [*run, "simulate", "deployment", "--db", db, "--users", "40", "--messages", "2000",
         "--truth", str(truth)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert sim.returncode == 0, sim.stderr
    assert "messages" in sim.stdout and truth.exists()
    cur = subprocess.run(
        [*run, "curate", "--db", db, "--out", str(tmp_path / "cur")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert cur.returncode == 0, cur.stderr
    assert (tmp_path / "cur" / "sft.jsonl").stat().st_size > 0
