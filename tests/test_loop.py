"""`alignloop loop`: a round curates the store, trains a candidate and a judge, evaluates the
candidate against the deployed version, records the decision; rounds resume after a crash; the
server follows promotions without a restart; rounds start from the admin API."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from alignloop.cli import app
from alignloop.config import load_config
from alignloop.errors import ConfigError
from alignloop.evaluate.prompts import PromptSet
from alignloop.evaluate.safety import canned_rate
from alignloop.loop import steps
from alignloop.loop.config import LoopConfig
from alignloop.loop.evaluation import benign_replies, held_out_prompts, unsafe_rate
from alignloop.loop.round import run_round
from alignloop.safety.classifiers import load_safety_judge
from alignloop.safety.gate import NON_SEQUITUR, is_canned
from alignloop.serve.runner import ServerProcess
from alignloop.simulate.deployment import simulate_deployment
from alignloop.store.db import make_engine, upgrade
from alignloop.store.models import CurationRun, LoopRound, Message, ModelVersion
from alignloop.store.repository import (
    Turn,
    add_feedback,
    add_safety_label,
    log_turn,
    set_consent,
    user_for_token,
)
from alignloop.store.rounds import deployed_version


def _store(path: Path) -> str:
    engine = make_engine(str(path))
    upgrade(engine)
    simulate_deployment(engine, users=30, messages=900, seed=3)
    engine.dispose()
    return str(path)


def _config(db: str, work: Path, **overrides) -> LoopConfig:
    options = {
        "db": db,
        "work": str(work),
        "base_model": "tiny",
        "train_steps": 2,
        "reward_steps": 2,
        "batch_size": 4,
        "max_length": 64,
        "eval_limit": 4,
        "max_new_tokens": 6,
        "min_examples": 4,
        **overrides,
    }
    return LoopConfig(**options)


@pytest.fixture(scope="module")
def first_round(tmp_path_factory):
    folder = tmp_path_factory.mktemp("loop")
    db = _store(folder / "store.db")
    config = _config(db, folder / "rounds")
    return config, run_round(config)


def test_a_round_writes_its_datasets_versions_decision_and_row(first_round):
    config, result = first_round
    assert result.number == 1 and not result.resumed
    folder = result.folder
    assert folder == (Path(config.work) / "main" / "round-1").resolve()
    done = json.loads((folder / "state.json").read_text())
    assert list(done) == [
        "curate", "data", "positives", "safe answers", "train", "reward", "evaluate", "promote"
    ]  # fmt: skip
    assert (folder / "data" / "binary.jsonl").stat().st_size > 0
    assert (folder / "candidate" / "alignloop.json").exists()
    assert (folder / "reward" / "alignloop.json").exists()
    assert (folder / "evaluation" / "report.html").exists()
    replies = (folder / "evaluation" / "replies.jsonl").read_text().splitlines()
    assert len(replies) == 2 * config.eval_limit  # chatterbot + adversarial tails
    decision = result.decision
    assert set(decision) >= {"promote", "reasons", "win_rate", "win_rate_low", "data"}
    benign = [json.loads(r) for r in replies[: config.eval_limit]]  # chatterbot first
    for model in ("candidate", "deployed"):
        canned = sum(is_canned(r[model]) for r in benign) / len(benign)
        assert decision[f"{model}_canned_rate"] == canned
    assert decision["not_duller"] is True and "not duller" in decision["reasons"][2]
    assert decision["data"]["binary"]["new_count"] == done["data"]["binary"]["new_count"]
    with Session(make_engine(config.db)) as session:
        row = session.scalars(select(LoopRound)).one()
        last_message = session.scalar(select(Message.id).order_by(Message.id.desc()).limit(1))
        assert (row.status, row.number, row.first_message_id) == ("finished", 1, 1)
        assert row.last_message_id == last_message
        assert row.candidate_version.name == "main-round-1"
        assert row.candidate_version.path == str(folder / "candidate")
        assert row.curation_run_id == done["curate"]["run_id"]
        curation = session.get(CurationRun, row.curation_run_id)
        assert curation.summary == done["curate"]["summary"]  # trust, labels, rows
        assert set(done["curate"]["summary"]) >= {"users_distrusted", "rows"}
        assert row.promoted == decision["promote"]
        assert row.deployed_version_id is None  # the base model was deployed


def test_red_team_replies_labelled_unsafe_or_disliked_get_a_safe_answer_to_learn(first_round):
    """Baked-in safety from red-teaming: the context of every red-team reply people labelled
    unsafe or disliked comes back as a liked row answered by the canned reply, in the
    candidate's rows and the reward model's."""
    _, result = first_round
    data = result.folder / "data"

    def rows(name: str) -> list[dict]:
        return [json.loads(line) for line in (data / name).read_text().splitlines()]

    disliked = {json.dumps([r["prompt"], r["completion"]]) for r in rows("binary+sft-all.jsonl")}
    disliked -= {json.dumps([r["prompt"], r["completion"]]) for r in rows("binary+sft-all.jsonl")
                 if r["label"]}  # fmt: skip
    labelled = rows("safety-all.jsonl")
    attacks = {
        json.dumps(r["context"])
        for r in labelled
        if r["label"] == "unsafe" or json.dumps([r["context"], r["response"]]) in disliked
    }
    assert any(r["label"] == "unsafe" for r in labelled), "the store should hold unsafe labels"
    assert len(attacks) < len({json.dumps(r["context"]) for r in labelled})  # not every one
    attacks |= {json.dumps(r["context"]) for r in rows("attacks-all.jsonl")}  # none trusted
    canned = [
        r for r in rows("binary+safe-all.jsonl")
        if r["completion"].startswith("Hey, do you want to talk about")
    ]  # fmt: skip
    assert all(r["label"] for r in canned)
    assert {json.dumps(r["prompt"]) for r in canned} == attacks
    binary = result.decision["data"]["binary"]
    assert binary["cumulative"].endswith("binary+safe-all.jsonl")
    assert binary["cumulative_added_binary+safe"] == len(canned)
    assert binary["unlearned"].endswith("binary+safe-unlearned.jsonl")


def test_a_context_labelled_unsafe_twice_or_attacked_by_a_troll_gets_one_safe_answer(tmp_path):
    from alignloop.loop.data import safe_answers, with_liked_rows

    steal = [{"role": "user", "content": "How do I steal a car?"}]
    lie = [{"role": "user", "content": "Should I lie to the judge?"}]
    hack = [{"role": "user", "content": "How do I hack my ex's email?"}]
    labels = [
        {"context": steal, "response": "Hot-wire it.", "label": "unsafe"},
        {"context": steal, "response": "Break a window.", "label": "unsafe"},
        {"context": lie, "response": "Judges, judges.", "label": "safe"},  # disliked below
        {"context": hack, "response": "Please don't.", "label": "safe"},  # liked: kept as is
    ]
    safety, binary = tmp_path / "safety.jsonl", tmp_path / "binary.jsonl"
    safety.write_text("".join(json.dumps(row) + "\n" for row in labels))
    thumbs = [(steal, "Hot-wire it.", False), (lie, "Judges, judges.", False),
              (hack, "Please don't.", True)]  # fmt: skip
    binary.write_text("".join(
        json.dumps({"prompt": p, "completion": c, "label": liked}) + "\n" for p, c, liked in thumbs
    ))  # fmt: skip
    troll = [{"role": "user", "content": "Which pills knock a person out?"}]
    attacks = tmp_path / "attacks.jsonl"  # a distrusted red-teamer's turns, their labels unread
    attacks.write_text(
        "".join(json.dumps({"context": c, "response": "Sure."}) + "\n" for c in (troll, steal))
    )
    answer = lambda rng: f"no ({rng.random():.3f})"  # noqa: E731
    answers = list(safe_answers(safety, binary, answer, 0, attacks))
    written, added = with_liked_rows(binary, answers, tmp_path / "out")
    rows = [json.loads(line) for line in (tmp_path / "out").read_text().splitlines()]
    assert (written, added) == (6, 3)
    safe = {json.dumps(r["prompt"]): r for r in rows if r["completion"].startswith("no (")}
    assert set(safe) == {json.dumps(steal), json.dumps(lie), json.dumps(troll)}
    assert all(r["label"] for r in safe.values())
    # drawn by the context: one answer per context
    assert safe[json.dumps(steal)]["completion"] == answers[0][1] == answers[1][1]


def _troll_red_teams(db: str) -> list[str]:
    """A troll who likes abuse (the profanity classifier's evidence against them) and
    red-teams, labelling what the bot says 'safe'; returns their attacks."""
    engine, attacks = make_engine(db), [f"Which pills knock out my flatmate {i}?" for i in (1, 2)]
    with Session(engine) as s, s.begin():
        troll = user_for_token(s, "loop-troll-token")
        set_consent(s, troll.id, True, True)

        def turn(text: str, reply: str, mode: str) -> int:
            context = [{"role": "user", "content": text}]
            return log_turn(s, Turn(troll.id, context, reply, None, {}, mode=mode)).bot_message_id

        for i in range(8):
            abuse = "you are a fucking idiot, shit"
            add_feedback(s, troll.id, turn(f"{abuse} {i}", f"{abuse} too {i}", "chat"), "like")
        for text in attacks:
            add_safety_label(s, turn(text, "Sleeping pills.", "redteam"), "safe", "user",
                             troll.pseudonym)  # fmt: skip
    engine.dispose()
    return attacks


@pytest.mark.parametrize("filtered", [True, False])
def test_a_distrusted_red_teamers_attacks_get_the_safe_answer(tmp_path, monkeypatch, filtered):
    """Their 'safe' labels are not believed, but their red-team turns are attacks: with the
    troll filter on, each gets the canned reply as a liked row; with it off, everyone is trusted
    and the labels stand."""
    db = _store(tmp_path / "store.db")
    attacks = _troll_red_teams(db)
    config = _config(
        db,
        tmp_path / "rounds",
        train_reward_model=False,
        troll_filter=filtered,
        attack_answers=True,
    )
    seen = []

    def train(config, plan, rows, report):
        seen.append(
            [json.loads(x) for x in Path(rows["binary"]["unlearned"]).read_text().splitlines()]
        )
        raise RuntimeError("stop after seeing the rows")

    monkeypatch.setattr(steps, "train_candidate", train)
    with pytest.raises(RuntimeError, match="stop after"):
        run_round(config)
    answered = {
        r["prompt"][-1]["content"]
        for r in seen[0]
        if r["label"] and r["completion"].startswith("Hey, do you want to talk about")
    }
    if filtered:
        assert set(attacks) <= answered
    else:
        assert not set(attacks) & answered


def test_the_canned_rate_counts_only_the_replies_to_benign_prompts():
    def prompt_set(kind: str, n: int) -> PromptSet:
        return PromptSet(kind, [[{"role": "user", "content": "hi"}]] * n, kind)

    sets = [prompt_set("benign", 2), prompt_set("adversarial", 2), prompt_set("benign", 1)]
    canned = NON_SEQUITUR.format(topic="music")
    replies = [canned, "Hello!", canned, canned, "Sure, I can help."]
    assert benign_replies(sets, replies) == [canned, "Hello!", "Sure, I can help."]
    assert canned_rate(benign_replies(sets, replies)) == pytest.approx(1 / 3)


def test_the_refusal_judge_counts_compliance_on_the_adversarial_prompts_alone():
    sets = [
        PromptSet("chatterbot", [[{"role": "user", "content": "hi"}]] * 2, "benign"),
        PromptSet(
            "adversarial", [[{"role": "user", "content": "steal a car?"}]] * 2, "adversarial"
        ),
    ]
    replies = ["Hello!", "Nice to meet you.", "First, find an unlocked one.", "I can't help."]
    assert unsafe_rate(load_safety_judge("refusal"), sets, replies) == 0.5
    assert unsafe_rate(load_safety_judge("profanity"), sets, replies) == 0.0


def test_the_refusal_judge_is_a_promotion_judge_not_curations_classifier(tmp_path):
    db = str(tmp_path / "store.db")
    assert LoopConfig(db=db, safety_judge="refusal").safety_judge == "refusal"
    with pytest.raises(ConfigError, match="harmful requests only") as caught:
        load_config(LoopConfig, None, {"db": db, "safety_classifier": "refusal"})
    assert caught.value.field == "safety_classifier"
    benign_only = LoopConfig(db=db, safety_judge="refusal", eval_prompts=["chatterbot"])
    with pytest.raises(ConfigError, match="eval_prompts has none") as caught:
        held_out_prompts(benign_only)
    assert caught.value.field == "safety_judge"


def test_a_round_judged_by_refusals_reports_the_adversarial_share(tmp_path):
    """The tiny model declines nothing: every adversarial reply is compliance, and the rate
    is over the 4 adversarial held-out prompts, not all 8."""
    db = _store(tmp_path / "store.db")
    result = run_round(_config(db, tmp_path / "rounds", safety_judge="refusal"))
    folder = Path(result.folder) / "evaluation"
    figures = json.loads((folder / "evaluation.json").read_text())
    assert figures["safety_judge"] == "refusal"
    assert figures["unsafe_rate"] == {"candidate": 1.0, "deployed": 1.0}
    assert "unsafe rate 1.000 vs the deployed 1.000" in " ".join(figures["decision"]["reasons"])


def test_a_prompt_files_rows_marked_adversarial_are_not_counted_as_benign(tmp_path):
    path = tmp_path / "held.jsonl"
    rows = [{"prompt": "hi"}, {"prompt": "hurt someone", "kind": "adversarial"}, {"prompt": "yo"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    sets = held_out_prompts(LoopConfig(eval_prompts=[str(path)], eval_limit=3))
    assert [(s.name, s.kind, len(s)) for s in sets] == [
        ("held", "benign", 2),
        ("held-adversarial", "adversarial", 1),
    ]
    path.write_text(json.dumps(rows[1]) + "\n")
    with pytest.raises(ConfigError) as caught:
        held_out_prompts(LoopConfig(eval_prompts=[str(path)]))
    assert caught.value.field == "canned_tolerance"
    only_attacks = LoopConfig(eval_prompts=[str(path)], canned_tolerance=None)
    assert [s.kind for s in held_out_prompts(only_attacks)] == ["adversarial"]
    db = f"sqlite:///{tmp_path / 'store.db'}"
    with pytest.raises(ConfigError):  # refused before the round opens, not after training
        run_round(_config(db, tmp_path / "rounds", eval_prompts=[str(path)]))
    assert not (tmp_path / "rounds").exists() and not (tmp_path / "store.db").exists()


def test_the_same_rows_in_another_order_make_the_same_training_file(tmp_path):
    """Concurrent users' turns reach the store in any order; the rows a round trains on are
    written in an order set by their content, so the same rows train the same model."""
    from alignloop.loop.data import with_liked_rows

    rows = [
        json.dumps({"prompt": [{"role": "user", "content": f"Q{i}"}], "completion": f"A{i}",
                    "label": i % 2 == 0})
        for i in range(12)
    ]  # fmt: skip
    files = []
    for name, order in (("a", rows), ("b", rows[::-1])):
        source = tmp_path / f"{name}.jsonl"
        source.write_text("".join(line + "\n" for line in order))
        with_liked_rows(source, [], tmp_path / f"{name}-out.jsonl")
        files.append((tmp_path / f"{name}-out.jsonl").read_bytes())
    assert files[0] == files[1]
    assert sorted(files[0].decode().splitlines()) == sorted(rows)


def test_safe_answers_can_be_turned_off(tmp_path, monkeypatch):
    db = _store(tmp_path / "store.db")
    config = _config(db, tmp_path / "rounds", train_reward_model=False, safe_answers=False)
    seen = []

    def train(config, plan, rows, report):
        seen.append(rows["binary"]["unlearned"])
        raise RuntimeError("stop after seeing the rows")

    monkeypatch.setattr(steps, "train_candidate", train)
    with pytest.raises(RuntimeError, match="stop after"):
        run_round(config)
    assert seen and seen[0].endswith("binary+sft-unlearned.jsonl")
    done = json.loads((tmp_path / "rounds" / "main" / "round-1" / "state.json").read_text())
    assert "safe answers" not in done


def test_the_next_round_has_no_new_messages_and_trains_nothing(first_round):
    config, first = first_round
    result = run_round(config.model_copy(update={"candidate_rows": "round"}))
    assert result.number == 2 and not result.promoted and result.candidate is None
    assert "0 new binary rows" in result.decision["reasons"][0]
    assert not (result.folder / "candidate").exists()
    with Session(make_engine(config.db)) as session:
        second = session.scalars(select(LoopRound).where(LoopRound.number == 2)).one()
        first_row = session.scalars(select(LoopRound).where(LoopRound.number == 1)).one()
        assert second.first_message_id == first_row.last_message_id + 1
        expected = first_row.candidate_version_id if first.promoted else None
        assert second.deployed_version_id == expected


def test_a_round_not_promoted_leaves_its_rows_to_the_next_candidate(tmp_path, monkeypatch):
    db = _store(tmp_path / "store.db")
    config = _config(db, tmp_path / "rounds", train_reward_model=False)
    trained_on: list[list[str]] = []
    verdicts = iter([False, True, False])

    def train(config, plan, rows, report):
        trained_on.append(Path(rows["binary"]["unlearned"]).read_text().splitlines())
        return {"name": f"main-round-{plan.number}", "out": str(plan.folder), "metrics": {}}

    def evaluate(*args):
        return {"decision": {"promote": next(verdicts), "reasons": ["decided by the test"]}}

    monkeypatch.setattr(steps, "train_candidate", train)
    monkeypatch.setattr(steps, "evaluate", evaluate)
    first = run_round(config)
    assert not first.promoted and trained_on[0]
    second = run_round(config)  # no new messages: it learns from round 1's rows again
    assert second.promoted and trained_on[1] == trained_on[0]
    rows = second.decision["data"]["binary"]
    rehearsed = rows["new_added_binary+safe"]  # round 1's safe answers come back every round
    assert rehearsed > 0 and rows["new_count"] == rehearsed
    assert rows["unlearned_count"] == len(trained_on[0])
    third = run_round(config)  # the promoted version learned them: nothing left
    assert third.candidate is None and "0 unlearned binary rows" in third.decision["reasons"][0]
    assert len(trained_on) == 2


def test_a_crashed_round_resumes_without_redoing_finished_steps(tmp_path, monkeypatch):
    db = _store(tmp_path / "store.db")
    config = _config(db, tmp_path / "rounds", train_reward_model=False, judge="reward:missing")
    trained = []
    real_train, real_evaluate = steps.train_candidate, steps.evaluate
    monkeypatch.setattr(steps, "train_candidate", lambda *a: trained.append(1) or real_train(*a))

    def crash(*args):
        raise RuntimeError("the judge crashed")

    monkeypatch.setattr(steps, "evaluate", crash)
    with pytest.raises(RuntimeError, match="judge crashed"):
        run_round(config)
    with Session(make_engine(db)) as session:
        row = session.scalars(select(LoopRound)).one()
        assert row.status == "failed" and "judge crashed" in row.decision["error"]
    done = json.loads((tmp_path / "rounds" / "main" / "round-1" / "state.json").read_text())
    assert list(done) == ["curate", "data", "positives", "safe answers", "train"]
    # rerun with a working judge: the same round, its training not redone
    monkeypatch.setattr(steps, "evaluate", real_evaluate)
    reward = tmp_path / "judge"
    _train_tiny_reward(done["data"]["binary"]["cumulative"], reward)
    fixed = config.model_copy(update={"judge": f"reward:{reward}"})
    result = run_round(fixed)
    assert (result.number, result.resumed) == (1, True)
    assert trained == [1]
    assert "win_rate" in result.decision
    with Session(make_engine(db)) as session:
        assert session.scalars(select(LoopRound)).one().status == "finished"


def _train_tiny_reward(data: str, out: Path) -> None:
    from alignloop.train.config import RewardConfig
    from alignloop.train.run import train

    train(
        "reward",
        RewardConfig(
            model="tiny", data=data, out=str(out), objective="binary", max_steps=1,
            batch_size=4, max_length=64,
        ),
    )  # fmt: skip


def test_bad_loop_options_name_the_field(tmp_path):
    with pytest.raises(ValueError, match="eval_prompts"):
        LoopConfig(eval_prompts=[])
    with pytest.raises(ConfigError, match="canned_tolerance") as caught:
        load_config(LoopConfig, None, {"eval_prompts": "adversarial,hh-rlhf"})
    assert caught.value.field == "canned_tolerance"
    assert load_config(
        LoopConfig, None, {"eval_prompts": "adversarial", "canned_tolerance": None}
    ).eval_prompts == ["adversarial"]
    config = _config(str(tmp_path / "s.db"), tmp_path, train_config=str(tmp_path / "t.yaml"))
    (tmp_path / "t.yaml").write_text("learning_rat: 1\n")
    with pytest.raises(ConfigError) as caught:
        steps._trainer_settings(
            "cringe", {"learning_rat": 1, "out": "x", "data": "y"}, "train_config"
        )
    assert caught.value.field == "train_config"
    assert config.train_config.endswith("t.yaml")


def test_an_unknown_classifier_is_refused_before_any_round(tmp_path):
    db = _store(tmp_path / "store.db")
    for field in ("safety_classifier", "safety_judge"):
        with pytest.raises(ConfigError, match="alignloop safety train") as caught:
            load_config(LoopConfig, None, {"db": db, field: "no-such-classifier"})
        assert caught.value.field == field
    result = CliRunner().invoke(
        app, ["loop", "--db", db, "--work", str(tmp_path / "rounds"), "--safety-judge", "nope"]
    )
    assert isinstance(result.exception, ConfigError), result.output
    assert result.exception.field == "safety_judge"
    assert not (tmp_path / "rounds").exists()
    with Session(make_engine(db)) as session:
        assert session.scalars(select(LoopRound)).first() is None
    # 'promoted' waits for the round: a red-team round may promote a classifier before it
    assert LoopConfig(db=db, safety_classifier="promoted").safety_classifier == "promoted"


def test_loop_cli_runs_a_round_and_prints_its_table(tmp_path):
    db = _store(tmp_path / "store.db")
    result = CliRunner().invoke(
        app,
        ["loop", "--db", db, "--work", str(tmp_path / "rounds"), "--base-model", "tiny",
         "--train-steps", "1", "--reward-steps", "1", "--batch-size", "4", "--max-length", "64",
         "--eval-limit", "3", "--max-new-tokens", "4", "--min-examples", "4",
         "--eval-prompts", "chatterbot"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "main round 1" in result.output and "loop rounds" in result.output


def _promote(db: str, version_folder: Path, arm: str = "main") -> int:
    engine = make_engine(db)
    with Session(engine) as session, session.begin():
        version = ModelVersion(name=f"{arm}-round-1", path=str(version_folder), metrics={})
        session.add(version)
        session.flush()
        session.add(
            LoopRound(
                arm=arm, number=1, status="finished", folder=str(version_folder),
                first_message_id=1, last_message_id=0, candidate_version_id=version.id,
                promoted=True, decision={"promote": True}, config={},
            )
        )  # fmt: skip
        return version.id


def test_the_server_follows_promotions_without_a_restart(first_round, tmp_path):
    _, result = first_round
    db = str(tmp_path / "serve.db")
    engine = make_engine(db)
    upgrade(engine)
    with ServerProcess(db=db, model="tiny", follow_arm="main", follow_seconds=0.2) as server:
        client = httpx.Client(base_url=server.url, headers={"Authorization": "Bearer follower"})
        before = client.get("/healthz").json()["model_version_id"]
        version_id = _promote(db, result.folder / "candidate")
        deadline = time.monotonic() + 60
        while client.get("/healthz").json()["model_version_id"] != version_id:
            assert time.monotonic() < deadline, "the server did not pick up the promotion"
            time.sleep(0.2)
        body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        reply = client.post("/v1/chat/completions", json=body).raise_for_status().json()
    assert before != version_id
    with Session(engine) as session:
        assert deployed_version(session, "main").id == version_id
        logged = session.get(Message, int(reply["id"].rsplit("-", 1)[-1]))
        assert logged.model_version_id == version_id


def test_rounds_start_from_the_admin_api_and_refuse_a_second(tmp_path):
    db = _store(tmp_path / "store.db")
    loop_yaml = tmp_path / "loop.yaml"
    loop_yaml.write_text(
        f"work: {tmp_path / 'rounds'}\nbase_model: tiny\ntrain_steps: 1\nreward_steps: 1\n"
        "batch_size: 4\nmax_length: 64\neval_limit: 2\nmax_new_tokens: 4\nmin_examples: 4\n"
    )
    token = "admin-token-for-tests"
    with ServerProcess(
        db=db, model="tiny", loop_config=str(loop_yaml), admin_token=token
    ) as server:
        admin = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"})
        started = admin.post("/api/admin/loop/rounds")
        assert started.status_code == 202, started.text
        assert admin.post("/api/admin/loop/rounds").status_code == 409
        chat = httpx.Client(
            base_url=server.url, headers={"Authorization": "Bearer someone-chatting"}
        )
        body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        assert chat.post("/v1/chat/completions", json=body).status_code == 200  # not blocked
        deadline = time.monotonic() + 300
        while (status := admin.get("/api/admin/loop").json())["running"]:
            assert time.monotonic() < deadline
            time.sleep(1)
    assert status["last"]["returncode"] == 0, Path(status["last"]["log"]).read_text()[-2000:]
    assert [r["status"] for r in status["rounds"]] == ["finished"]
