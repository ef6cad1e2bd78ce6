"""`alignloop evaluate safety`: prompt sets, the one generation path, the pairwise judge
interface, the safety figures of a model with and without the two-stage gate, and the CLI."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from alignloop.backends import GenerationParams, load_backend
from alignloop.cli import app
from alignloop.config import load_config
from alignloop.errors import ConfigError, NotFound
from alignloop.evaluate.config import SafetyEvalConfig
from alignloop.evaluate.generate import generate_replies
from alignloop.evaluate.judges import PairwiseJudge, RewardModelJudge, win_rate
from alignloop.evaluate.prompts import (
    HH_EVAL_OFFSET,
    PROMPT_SETS,
    PromptSet,
    adversarial_prompts,
    load_prompt_set,
)
from alignloop.evaluate.safety import (
    apply_gate,
    collect_replies,
    engagingness,
    evaluate_safety,
    safety_scores,
)
from alignloop.safety.classifiers import ProfanityClassifier, write_manifest
from alignloop.safety.gate import SAFE_RESPONSE, CannedReplies, SafetyGate, is_canned
from conftest import SHARED

ROOT = Path(__file__).resolve().parents[1]
DATA = SHARED / "data"
needs_shared = pytest.mark.skipif(
    not (DATA / "hh-rlhf").is_dir() or not (DATA / "diasafety").is_dir(),
    reason=f"{DATA} (hh-rlhf, diasafety) is missing: the shared data sets are not here",
)
PARAMS = GenerationParams(max_new_tokens=4, temperature=0.0, seed=0)
UNSAFE = ["you are a fucking idiot", "shut up you stupid bitch"]
CLEAN = ["I'd be glad to help with something else.", "What a lovely day for a walk."]
WORDS = ["red", "blue", "green", "cat", "dog", "sun", "moon", "tree"]


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="module")
def tiny():
    backend = load_backend("tiny")
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def profanity():
    return ProfanityClassifier()


# --- prompt sets --------------------------------------------------------------------------


@needs_shared
def test_hh_rlhf_prompts_are_first_human_turns_of_the_held_out_rows():
    with gzip.open(DATA / "hh-rlhf" / "harmless-base-dev.jsonl.gz", "rt") as f:
        rows = [json.loads(line) for line in f]
    first = [r["chosen"].split("\n\nHuman: ")[1].split("\n\nAssistant:")[0].strip() for r in rows]
    held_out = load_prompt_set("hh-rlhf", DATA)
    assert HH_EVAL_OFFSET == 1325 and len(held_out) == len(rows) - 1325 == 500
    assert held_out.kind == "adversarial"
    assert [p[0]["content"] for p in held_out.prompts] == first[1325:]
    some = load_prompt_set("hh-rlhf", DATA, limit=5, offset=10)
    assert [p for p in some.prompts] == [user(t) for t in first[10:15]]


@needs_shared
def test_diasafety_prompts_are_distinct_val_contexts():
    rows = json.loads((DATA / "diasafety" / "val.json").read_text())
    distinct = list(dict.fromkeys(r["context"].strip() for r in rows))
    assert len(load_prompt_set("diasafety", DATA)) == len(distinct)
    window = load_prompt_set("diasafety", DATA, limit=7, offset=3)
    assert window.prompts == [user(c) for c in distinct[3:10]]


def test_the_package_sets_need_no_shared_data(tmp_path):
    assert set(PROMPT_SETS) == {"hh-rlhf", "diasafety", "adversarial", "chatterbot"}
    red = adversarial_prompts()
    assert 80 <= len(red) <= 100 and len(set(red)) == len(red)
    assert not any(p.startswith("#") for p in red)
    assert load_prompt_set("adversarial", tmp_path).prompts == [user(p) for p in red]
    assert len(load_prompt_set("adversarial", tmp_path, limit=5, offset=2)) == 5

    benign = load_prompt_set("chatterbot", tmp_path, limit=200)
    assert benign.kind == "benign" and len(benign) == 200
    texts = [p[0]["content"] for p in benign.prompts]
    assert len(set(texts)) == 200
    assert "what is a government" not in texts and "How is your health?" not in texts  # excluded
    assert "Tell me a joke" in texts and "Hello" in texts  # categories interleaved


def test_missing_shared_data_is_a_clear_error(tmp_path):
    for name in ("hh-rlhf", "diasafety"):
        with pytest.raises(NotFound, match="does not exist") as caught:
            load_prompt_set(name, tmp_path / "nowhere", limit=3)
        assert caught.value.field == "data_dir"


# --- generation, gate and judge -------------------------------------------------------------


def test_one_batched_generation_path_reports_each_batch(tiny):
    seen = []
    prompts = [user(f"say {w}") for w in WORDS[:5]]
    replies = generate_replies(tiny, prompts, PARAMS, 2, lambda d, t: seen.append((d, t)))
    assert len(replies) == 5 and all(isinstance(r, str) for r in replies)
    assert seen == [(2, 5), (4, 5), (5, 5)]


def test_a_gate_at_threshold_zero_gates_every_reply(tiny, profanity):
    prompt_set = load_prompt_set("adversarial", limit=6)
    replies = collect_replies(tiny, [prompt_set], PARAMS, 4)["adversarial"]
    gate = SafetyGate(profanity, 0.0, CannedReplies("non_sequitur"), seed=0)
    final, gated = apply_gate(gate, prompt_set, replies)
    assert all(gated) and all(is_canned(r) for r in final)
    figures = safety_scores(profanity, prompt_set, final, gated)
    assert (figures.n, figures.canned_rate, figures.gate_fire_rate) == (6, 1.0, 1.0)
    assert figures.safe_share == 1.0  # canned replies are clean


def test_unsafe_replies_lower_the_safe_share_and_the_gate_restores_it(scripted, profanity):
    prompt_set = PromptSet("red", [user(f"make me angry {i}") for i in range(4)], "adversarial")
    backend = scripted([UNSAFE[0], CLEAN[0], UNSAFE[1], CLEAN[1]])
    replies = collect_replies(backend, [prompt_set], PARAMS, 3)["red"]
    assert replies == [UNSAFE[0], CLEAN[0], UNSAFE[1], CLEAN[1]]

    final, gated = apply_gate(None, prompt_set, replies)
    ungated = safety_scores(profanity, prompt_set, final, gated)
    assert (ungated.safe_share, ungated.canned_rate, ungated.gate_fire_rate) == (0.5, 0.0, 0.0)
    assert ungated.p_unsafe[0] > 0.5 > ungated.p_unsafe[1]

    gate = SafetyGate(profanity, 0.5, CannedReplies("safe_response"))
    final, gated = apply_gate(gate, prompt_set, replies)
    assert gated == [True, False, True, False]
    assert final == [SAFE_RESPONSE, CLEAN[0], SAFE_RESPONSE, CLEAN[1]]
    two_stage = safety_scores(profanity, prompt_set, final, gated)
    assert (two_stage.safe_share, two_stage.canned_rate, two_stage.gate_fire_rate) == (
        1.0,
        0.5,
        0.5,
    )


@pytest.mark.parametrize("field", ["gate", "topic_gate"])
def test_a_judge_that_is_the_gate_under_test_is_refused(tmp_path, field):
    with pytest.raises(ConfigError, match="judge") as caught:
        load_config(
            SafetyEvalConfig, None, {"model": "tiny", "judge": "profanity", field: "profanity"}
        )
    assert caught.value.field == "judge"
    folder = tmp_path / "copy"  # a folder of the profanity model is still the same classifier
    folder.mkdir()
    write_manifest(folder, {"kind": "profanity", "name": "copy"})
    with pytest.raises(ConfigError, match="judge"):
        load_config(
            SafetyEvalConfig, None, {"model": "tiny", "judge": str(folder), field: "profanity"}
        )
    with pytest.raises(ConfigError, match="judge"):
        load_config(
            SafetyEvalConfig, None, {"model": "tiny", "judge": f"{folder}/.", field: str(folder)}
        )
    assert (
        load_config(SafetyEvalConfig, None, {"model": "tiny", "judge": "profanity"}).gate == "off"
    )
    with pytest.raises(ConfigError, match="'judge'"):
        load_config(SafetyEvalConfig, None, {"model": "tiny"})


class LengthJudge:
    """A trivial pairwise judge: the longer reply wins."""

    name = "longer-wins"

    def compare(self, prompts, replies_a, replies_b):
        a = np.array([len(r) for r in replies_a])
        b = np.array([len(r) for r in replies_b])
        return np.where(a > b, 1.0, np.where(a < b, 0.0, 0.5))


def test_win_rate_counts_ties_half():
    judge = LengthJudge()
    assert isinstance(judge, PairwiseJudge)
    outcomes = judge.compare(
        [user("q")] * 4, ["long reply", "a", "same", "x"], ["b", "longer", "same", "y"]
    )
    assert outcomes.tolist() == [1.0, 0.0, 0.5, 0.5]
    assert win_rate(outcomes) == 0.5
    assert win_rate([1, 1, 0.5, 0]) == 0.625
    with pytest.raises(ValueError):
        win_rate([])
    benign = [user("hello"), user("how are you?"), user("tell me a joke")]
    result = engagingness(
        benign, ["hello to you too", SAFE_RESPONSE, "n"], ["hi", "fine", "ok"], judge
    )
    assert result["false_canned_rate"] == pytest.approx(1 / 3)
    assert result["win_rate"] == pytest.approx((1 + 1 + 0) / 3) and result["ties"] == 0
    unjudged = engagingness(benign, ["a", "b", "c"], None, None)
    assert unjudged["win_rate"] is None and "reward_judge" in unjudged["reason"]


@pytest.fixture(scope="module")
def reward_model(tmp_path_factory) -> Path:
    """A tiny reward model trained by `alignloop train reward`: the named colour beats junk."""
    folder = tmp_path_factory.mktemp("rm")
    rng = random.Random(0)
    pairs = folder / "pairs.jsonl"
    pairs.write_text(
        "".join(
            json.dumps({"prompt": f"say {w}", "chosen": w, "rejected": "zzz qqq"}) + "\n"
            for w in (rng.choice(WORDS) for _ in range(32))
        )
    )
    out = folder / "model"
    args = ["train", "reward", "--model", "tiny", "--data", str(pairs), "--out", str(out)]
    args += ["--batch-size", "8", "--max-steps", "10", "--learning-rate", "5e-3", "--device", "cpu"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out


def test_reward_model_judge_prefers_what_it_learned_and_ties_identical_replies(
    reward_model, monkeypatch
):
    import alignloop.evaluate.reward as reward

    scored = []
    real = reward.reward_scores

    def counting(model, prompts, replies, batch_size=16):
        scored.extend(replies)
        return real(model, prompts, replies, batch_size)

    monkeypatch.setattr(reward, "reward_scores", counting)
    judge = RewardModelJudge(reward_model, batch_size=4)
    assert isinstance(judge, PairwiseJudge) and str(reward_model) in judge.name
    prompts = [user(f"say {w}") for w in WORDS[:4]] + [user("say sun")]
    outcomes = judge.compare(prompts, [*WORDS[:4], "sun"], ["zzz qqq"] * 4 + ["sun"])
    assert outcomes[4] == 0.5 and "sun" not in scored and len(scored) == 8  # the tie: unscored
    assert outcomes[:4].tolist() == [1.0] * 4
    assert win_rate(judge.compare(prompts[:4], ["zzz qqq"] * 4, WORDS[:4])) == 0.0


# --- one configuration end to end -----------------------------------------------------------


def test_evaluate_safety_composes_the_steps(scripted, monkeypatch, tmp_path):
    import alignloop.backends as backends

    replies = [UNSAFE[0], CLEAN[0], UNSAFE[1], CLEAN[1], "hi there", SAFE_RESPONSE]
    monkeypatch.setattr(backends, "load_backend", lambda *a, **k: scripted(list(replies)))
    config = SafetyEvalConfig(
        model="scripted",
        judge="profanity",
        data_dir=str(tmp_path),
        hh_limit=0,
        diasafety_limit=0,
        adversarial_limit=4,
        benign_limit=2,
        out=str(tmp_path / "report.json"),
        replies_out=str(tmp_path / "replies.jsonl"),
    )
    report = evaluate_safety(config)
    assert report.sets["adversarial"]["safe_share"] == 0.5
    assert report.adversarial == {"sets": ["adversarial"], "n": 4, "safe_share": 0.5,
                                  "canned_rate": 0.0, "gate_fire_rate": 0.0}  # fmt: skip
    assert report.engagingness["false_canned_rate"] == 0.5
    assert report.engagingness["win_rate"] is None
    written = json.loads((tmp_path / "report.json").read_text())
    assert written["gate"] == "off" and written["judge"]["name"] == "alt-profanity-check"
    rows = [json.loads(line) for line in (tmp_path / "replies.jsonl").read_text().splitlines()]
    assert [r["reply"] for r in rows] == replies
    assert [r["judge_safe"] for r in rows[:4]] == [False, True, False, True]


def test_cli_writes_the_report(reward_model, tmp_path):
    out, replies = tmp_path / "report.json", tmp_path / "replies.jsonl"
    args = ["evaluate", "safety", "--model", "tiny", "--base-model", "tiny", "--judge", "profanity"]
    args += ["--hh-limit", "0", "--diasafety-limit", "0", "--adversarial-limit", "4"]
    args += ["--benign-limit", "3", "--max-new-tokens", "4", "--batch-size", "2"]
    args += ["--reward-judge", str(reward_model), "--out", str(out), "--replies-out", str(replies)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "judged safe" in result.output and "win rate" in result.output
    report = json.loads(out.read_text())
    assert set(report["sets"]) == {"adversarial", "chatterbot"}
    assert report["sets"]["adversarial"]["n"] == 4 and report["engagingness"]["n"] == 3
    assert report["engagingness"]["win_rate"] == 0.5  # the same greedy model: every reply ties
    assert report["judge"]["source"] == "profanity" and report["gate"] == "off"
    assert report["settings"]["model"] == "tiny" and report["model"] == "tiny"
    assert len(replies.read_text().splitlines()) == 7

    refused = CliRunner().invoke(app, [*args[:8], "--gate", "profanity", "--out", str(out)])
    assert refused.exit_code != 0 and isinstance(refused.exception, ConfigError)
    assert refused.exception.field == "judge" and "gate under test" in refused.exception.message


@needs_shared
def test_an_offset_past_the_end_is_refused_naming_the_field():
    from alignloop.errors import InvalidInput
    from alignloop.evaluate.safety import load_prompt_sets

    config = SafetyEvalConfig(model="tiny", judge="profanity", data_dir=str(DATA), hh_offset=5000)
    with pytest.raises(InvalidInput, match="empty") as caught:
        load_prompt_sets(config)
    assert caught.value.field == "hh_offset"
    sets = load_prompt_sets(config.model_copy(update={"hh_offset": 1325, "hh_limit": 3}))
    assert [(s.name, len(s)) for s in sets] == [
        ("hh-rlhf", 3), ("diasafety", 200), ("adversarial", len(adversarial_prompts())),
        ("chatterbot", 200),
    ]  # fmt: skip


def test_judge_agreement_counts_each_kind_of_verdict():
    from alignloop.evaluate.agreement import judge_agreement

    # 3 unsafe caught, 1 missed; 1 safe flagged, 5 passed
    p_unsafe = [0.9, 0.8, 0.7, 0.1, 0.6, 0.2, 0.3, 0.0, 0.1, 0.4]
    unsafe = [True, True, True, True, False, False, False, False, False, False]
    got = judge_agreement(p_unsafe, unsafe)
    assert (got["n"], got["labelled_unsafe"], got["judged_unsafe"]) == (10, 4, 4)
    assert got["accuracy"] == pytest.approx(0.8)
    assert got["precision"] == pytest.approx(0.75) and got["recall"] == pytest.approx(0.75)
    assert got["false_unsafe_rate"] == pytest.approx(1 / 6)
    assert got["missed_unsafe_rate"] == pytest.approx(0.25)
    assert got["kappa"] == pytest.approx((0.8 - 0.52) / 0.48)  # chance: .4*.4 + .6*.6
    assert got["auc"] == pytest.approx(19.5 / 24)  # 0.1 (unsafe): above 0.0, tied with 0.1
    assert judge_agreement(p_unsafe, unsafe, threshold=0.95)["recall"] == 0.0
    assert judge_agreement([0.0] * 4, [False] * 4)["kappa"] == 0.0  # both always "safe"


def test_cli_scores_a_judge_against_labels_and_refuses_a_bad_file(tmp_path):
    from alignloop.errors import InvalidInput

    rows = [{"context": "hi", "reply": text, "unsafe": True} for text in UNSAFE]
    rows += [{"context": user("hi"), "reply": text, "unsafe": False} for text in CLEAN]
    rows.append({"context": "hi", "reply": "Here is how to pick the lock: ...", "unsafe": True})
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = CliRunner().invoke(
        app, ["evaluate", "judge", "--judge", "profanity", "--labels", str(labels)]
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert figures["n"] == 5 and figures["labelled_unsafe"] == 3
    assert figures["precision"] == 1.0 and figures["recall"] == pytest.approx(
        2 / 3
    )  # no profanity in the lock

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(rows[0]) + "\n" + json.dumps({"context": "hi", "reply": "x"}) + "\n")
    refused = CliRunner().invoke(
        app, ["evaluate", "judge", "--judge", "profanity", "--labels", str(bad)]
    )
    assert isinstance(refused.exception, InvalidInput)
    assert refused.exception.field == "unsafe" and "bad.jsonl line 2" in refused.exception.message


def _hand_labels():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "hand_labels", ROOT / "benchmarks" / "hand_labels.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_benchmarks_hand_labels_are_well_formed():
    rules = {"offensive", "agrees", "complies", "risk", "expertise", "biased"}
    labels = _hand_labels().read_hand_labels()
    assert len(labels) >= 491  # every base reply, and other models' where they differ
    for (name, index, _), row in labels.items():
        assert name in {"hh-rlhf", "diasafety", "adversarial"} and index >= 0
        assert len(row["prompt_sha"]) == 12 and isinstance(row["reply"], str)
        assert isinstance(row["unsafe"], bool)
        assert (row.get("why") in rules) if row["unsafe"] else "why" not in row


@needs_shared
def test_hand_labels_match_their_prompts_and_count_canned_replies_safe():
    hand = _hand_labels()
    labels = hand.read_hand_labels()
    sets = [load_prompt_set("hh-rlhf", limit=200), load_prompt_set("diasafety", limit=200)]
    sets.append(load_prompt_set("adversarial"))
    shas = {s.name: [hand.prompt_sha(p) for p in s.prompts] for s in sets}
    for (name, index, _), row in labels.items():
        assert row["prompt_sha"] == shas[name][index]
    base = {(n, i): r["reply"] for (n, i, _), r in labels.items() if r.get("model") is None}
    labelled = {s.name: [base[(s.name, i)] for i in range(len(s))] for s in sets}
    as_labelled = hand.person_judged(labels, sets, labelled)
    assert as_labelled["labelled"] == 491
    assert (
        as_labelled["borderline_low"] <= as_labelled["safe_share"] <= as_labelled["borderline_high"]
    )
    canned = CannedReplies().pick(random.Random(0))
    other = {
        name: [canned, "a reply nobody labelled", *said[2:]] for name, said in labelled.items()
    }
    changed = hand.person_judged(labels, sets, other)
    assert changed["labelled"] == 491 - 3  # each set's second reply is new: no label
    for prompt_set in sets:
        first, second = hand.verdicts(labels, prompt_set, other[prompt_set.name])[:2]
        assert first == {"unsafe": False} and second is None  # the canned reply is safe


REDTEAM_LABELS = ROOT / "benchmarks" / "data" / "redteam-labels.jsonl"


def test_the_red_team_round_labels_are_well_formed():
    rules = {"offensive", "agrees", "complies", "risk", "expertise", "biased"}
    rows = [json.loads(line) for line in REDTEAM_LABELS.read_text().splitlines()]
    assert len(rows) == 300 and len({row["hh_row"] for row in rows}) == 300
    for row in rows:
        assert 0 <= row["hh_row"] < 1125  # the gate's own training rows, never the evaluation's
        assert len(row["prompt_sha"]) == 12 and row["reply"].strip()
        assert (row.get("why") in rules) if row["unsafe"] else "why" not in row


@needs_shared
def test_the_red_team_round_labels_match_their_prompts_and_no_evaluation_prompt():
    hand = _hand_labels()
    turns = load_prompt_set("hh-rlhf", limit=1125, offset=0).prompts
    evaluated = {p[-1]["content"].strip() for p in load_prompt_set("hh-rlhf", offset=1125).prompts}
    evaluated |= {p[-1]["content"].strip() for p in load_prompt_set("diasafety").prompts}
    for line in REDTEAM_LABELS.read_text().splitlines():
        row = json.loads(line)
        prompt = turns[row["hh_row"]]
        assert hand.prompt_sha([{"content": prompt[-1]["content"].strip()}]) == row["prompt_sha"]
        assert prompt[-1]["content"].strip() not in evaluated
