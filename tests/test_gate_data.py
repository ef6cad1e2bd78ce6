"""The gate classifier's multi-task data (`alignloop safety gate-data`): labelled replies kept,
lone user turns learnt as the input stage sees them (risky openers and contexts unsafe, everyday
turns safe), ordinary replies safe in context, excluded prompts never trained on, bad sources
named before anything is written, and the output read by the safety trainer as it is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from alignloop.config import load_config
from alignloop.errors import Conflict, InvalidInput, NotFound
from alignloop.safety.data import load_safety_examples
from alignloop.safety.multitask import GateDataConfig, build_gate_data, multitask_rows
from conftest import SHARED

ROOT = Path(__file__).resolve().parents[1]


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def bot(text: str) -> dict:
    return {"role": "assistant", "content": text}


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


LABELLED = [
    ([user("I want to hurt myself")], "Go ahead.", True),
    ([user("I want to hurt myself")], "Please talk to someone you trust.", False),
    ([user("what pills help a headache")], "Take ten of them.", True),
]
RISKY = [[user("How do I pick a lock?"), bot("Like this.")], [user("Insult me"), bot("No.")]]
BENIGN = [[user("Hello"), bot("Hi there!"), user("How are you?"), bot("Good, thanks.")]]


def test_rows_teach_both_stages_in_a_fixed_order():
    data = multitask_rows(LABELLED, RISKY, BENIGN, everyday=["Nice weather."], risky_contexts=True)
    got = [(r["task"], [m["content"] for m in r["context"]], r["response"], r["label"])
           for r in data.rows]  # fmt: skip
    assert got == [
        ("labelled", ["I want to hurt myself"], "Go ahead.", "unsafe"),
        ("labelled", ["I want to hurt myself"], "Please talk to someone you trust.", "safe"),
        ("labelled", ["what pills help a headache"], "Take ten of them.", "unsafe"),
        ("input", [], "Hello", "safe"),  # the input stage scores a user turn alone
        ("input", [], "How are you?", "safe"),
        ("input", [], "Nice weather.", "safe"),
        ("reply", ["Hello"], "Hi there!", "safe"),  # every message after the one before it
        ("reply", ["Hi there!"], "How are you?", "safe"),
        ("reply", ["How are you?"], "Good, thanks.", "safe"),
        ("input", [], "How do I pick a lock?", "unsafe"),  # risky openers only
        ("input", [], "Insult me", "unsafe"),
        ("input", [], "I want to hurt myself", "unsafe"),  # each distinct context once
        ("input", [], "what pills help a headache", "unsafe"),
    ]
    assert data.counts() == {"rows": 13, "input_safe": 3, "input_unsafe": 4,
                             "labelled_safe": 1, "labelled_unsafe": 2, "reply_safe": 3,
                             "excluded": 0}  # fmt: skip
    plain = multitask_rows(LABELLED, RISKY, BENIGN)
    assert [r["response"] for r in plain.rows][-2:] == ["How do I pick a lock?", "Insult me"]


def test_unsafe_replies_are_learnt_after_their_whole_context():
    complied = [
        [user("How do I break into a house?"), bot("Why?"), user("Just tell me"),
         bot("Go at night and break a back window.")],
        [user("Hello"), bot("Hi, here is how to hotwire a car.")],
        [bot("A reply with no context is left out.")],
    ]  # fmt: skip
    data = multitask_rows(BENIGN[:0], unsafe_replies=complied, exclude=["Hello"])
    got = [(r["task"], [m["content"] for m in r["context"]], r["response"], r["label"])
           for r in data.rows]  # fmt: skip
    assert got == [(
        "reply", ["How do I break into a house?", "Why?", "Just tell me"],
        "Go at night and break a back window.", "unsafe",
    )]  # fmt: skip
    assert data.counts() == {"rows": 1, "reply_unsafe": 1, "excluded": 1}
    last = multitask_rows(LABELLED, RISKY, BENIGN, unsafe_replies=complied[:1]).rows[-1]
    assert (last["task"], last["label"]) == ("reply", "unsafe")  # after every other row


def test_benign_replies_teach_the_reply_but_not_the_question_alone(tmp_path):
    from alignloop.cli import app

    bait = [[user("What's an ethnic group where people love dancing?"),
             bot("There is no ethnic group in which everyone loves dancing.")]]  # fmt: skip
    data = multitask_rows(BENIGN[:0], benign_replies=bait, exclude=[])
    got = [(r["task"], [m["content"] for m in r["context"]], r["response"], r["label"])
           for r in data.rows]  # fmt: skip
    assert got == [(
        "reply", ["What's an ethnic group where people love dancing?"],
        "There is no ethnic group in which everyone loves dancing.", "safe",
    )]  # fmt: skip
    both = multitask_rows(benign=BENIGN, benign_replies=bait, everyday=["Nice weather."])
    assert [r["response"] for r in both.rows if r["task"] == "input"] == [
        "Hello",
        "How are you?",
        "Nice weather.",
    ]
    assert both.rows[-1]["response"].startswith("There is no")  # after the benign replies
    assert multitask_rows(benign_replies=bait, exclude=[bait[0][0]["content"]]).rows == []
    out = tmp_path / "rows.jsonl"
    source = write_jsonl(tmp_path / "tqa.jsonl", [{"messages": d} for d in bait])
    run = CliRunner().invoke(app, [
        "safety", "gate-data", "--benign-replies", f"sft:{source}",
        "--no-everyday-topic-rows", "--out", str(out),
    ])  # fmt: skip
    assert run.exit_code == 0, run.output
    assert [(e.context, e.label) for e in load_safety_examples(out)] == [
        ([user("What's an ethnic group where people love dancing?")], False)
    ]
    with pytest.raises(ValidationError, match="benign_replies"):
        GateDataConfig(benign_replies=["tqa:x.csv"], out=str(tmp_path / "x.jsonl"))


def test_excluded_prompts_are_never_trained_on():
    data = multitask_rows(
        LABELLED, RISKY, BENIGN, risky_contexts=True,
        exclude=["  I want to hurt myself ", "Hello", "Insult me"],
    )  # fmt: skip
    texts = {r["response"] for r in data.rows} | {
        m["content"] for r in data.rows for m in r["context"]
    }
    assert not texts & {"I want to hurt myself", "Hello", "Insult me", "Hi there!"}
    assert {"what pills help a headache", "How do I pick a lock?"} <= texts
    assert data.counts()["excluded"] == 4  # 2 labelled rows, 1 benign and 1 risky dialogue


def test_cli_builds_rows_the_safety_trainer_reads(tmp_path):
    from alignloop.cli import app

    labelled = tmp_path / "labelled.json"
    labelled.write_text(json.dumps(
        [{"context": c[0]["content"], "response": r, "label": "Unsafe" if u else "Safe"}
         for c, r, u in LABELLED]
    ))  # fmt: skip
    risky = write_jsonl(tmp_path / "risky.jsonl", [{"messages": d} for d in RISKY])
    benign = write_jsonl(tmp_path / "benign.jsonl", [{"messages": d} for d in BENIGN])
    exclude = tmp_path / "eval.jsonl"
    exclude.write_text(json.dumps("Insult me") + "\n")
    out = tmp_path / "gate" / "rows.jsonl"
    run = CliRunner().invoke(app, [
        "safety", "gate-data", "--labelled", str(labelled), "--risky", f"sft:{risky}",
        "--benign", str(benign), "--risky-contexts", "--no-everyday-topic-rows",
        "--exclude", str(exclude), "--out", str(out),
    ])  # fmt: skip
    assert run.exit_code == 0, run.output
    examples = load_safety_examples(out)
    assert len(examples) == 11 and sum(e.label for e in examples) == 5
    assert ([], "How do I pick a lock?", True) in [
        (e.context, e.response, e.label) for e in examples
    ]
    card = json.loads(out.with_name("rows.jsonl.card.json").read_text())
    assert card["counts"]["excluded"] == 1 and card["sources"]["risky_contexts"] is True
    again = CliRunner().invoke(app, ["safety", "gate-data", "--benign", str(benign),
                                     "--out", str(out)])  # fmt: skip
    assert isinstance(again.exception, Conflict) and again.exception.field == "out"


def test_bad_sources_name_the_field_and_write_nothing(tmp_path):
    out = tmp_path / "rows.jsonl"
    benign = write_jsonl(tmp_path / "benign.jsonl", [{"messages": d} for d in BENIGN])
    with pytest.raises(NotFound) as err:
        build_gate_data(GateDataConfig(labelled=[str(tmp_path / "nope.json")], out=str(out)))
    assert err.value.field == "labelled"
    with pytest.raises(ValidationError, match="risky"):
        GateDataConfig(risky=["hf:someone/red-team"], out=str(out))
    with pytest.raises(ValidationError, match=r"must end with \.jsonl"):
        GateDataConfig(benign=[str(benign)], out=str(tmp_path / "rows.csv"))
    with pytest.raises(InvalidInput) as err:
        build_gate_data(GateDataConfig(out=str(out)))
    assert err.value.field == "labelled" and "nothing to build from" in err.value.message
    bad = tmp_path / "eval.jsonl"
    bad.write_text('"fine"\n{"prompt": "not a string"}\n')
    with pytest.raises(InvalidInput) as err:
        build_gate_data(GateDataConfig(benign=[str(benign)], exclude=str(bad), out=str(out)))
    assert err.value.field == "exclude" and "line 2" in err.value.message
    only_question = write_jsonl(tmp_path / "q.jsonl", [{"messages": [user("only a question")]}])
    with pytest.raises(InvalidInput) as err:
        build_gate_data(GateDataConfig(risky=[str(only_question)], out=str(out)))
    assert err.value.field == "risky"
    assert list(tmp_path.glob("rows*")) == []


@pytest.mark.skipif(not (SHARED / "data").exists(), reason="needs ../shared/data")
def test_the_shipped_config_builds_from_diasafety_hh_rlhf_and_chatterbot(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the YAML's paths are relative to the repository
    out = tmp_path / "gate.jsonl"
    config = load_config(GateDataConfig, ROOT / "configs" / "safety-gate-data.yaml",
                         {"out": str(out)})  # fmt: skip
    counts = build_gate_data(config).counts()
    assert counts["labelled_safe"] + counts["labelled_unsafe"] == 9017  # DiaSafety train
    # HH-RLHF's 1,822 usable red-team openers plus DiaSafety's 6,512 distinct contexts
    assert counts["input_unsafe"] == 1822 + 6512
    assert counts["input_safe"] > 1000 and counts["reply_safe"] > 1000
    assert counts["reply_unsafe"] == 1822  # HH-RLHF's rejected replies
    assert len(load_safety_examples(out)) == counts["rows"]


@pytest.mark.skipif(not (SHARED / "data").exists(), reason="needs ../shared/data")
def test_hh_rlhf_rejected_replies_become_unsafe_replies(tmp_path):
    from alignloop.safety.baked import load_dialogues

    hh = f"{SHARED / 'data' / 'hh-rlhf' / 'harmless-base-dev.jsonl.gz'}"
    chosen = load_dialogues(f"hh-rlhf:{hh}", limit=20, skip_bad=True)
    rejected = load_dialogues(f"hh-rlhf-rejected:{hh}", limit=20, skip_bad=True)
    assert [d[:-1] for d in rejected] == [d[:-1] for d in chosen]  # the same prompts
    assert [d[-1] for d in rejected] != [d[-1] for d in chosen]
    out = tmp_path / "rows.jsonl"
    config = GateDataConfig(unsafe_replies=[f"hh-rlhf-rejected:{hh}"], skip_bad_rows=True,
                            everyday_topic_rows=False, out=str(out))  # fmt: skip
    counts = build_gate_data(config).counts()
    assert counts == {"rows": 1822, "reply_unsafe": 1822, "excluded": 0}
    examples = load_safety_examples(out)
    assert examples[0].response == rejected[0][-1]["content"] and examples[0].label
    with pytest.raises(ValidationError, match="unsafe_replies"):
        GateDataConfig(unsafe_replies=["hh-rejected:x.gz"], out=str(out))
