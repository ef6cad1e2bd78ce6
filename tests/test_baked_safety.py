"""Baked-in safety data (SPEC.md §4): exactly the triggered targets become canned replies (by the
last context turn or by the target), everything else is left byte for byte, the mix is drawn by
seed, bad rows and options stop before anything is written, and the CLI's output is SFT data
the trainer reads. Real classifiers: alt-profanity-check, plus a keyword one for exact cases."""

from __future__ import annotations

import gzip
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from alignloop.config import load_config
from alignloop.errors import ConfigError, Conflict, InvalidInput, NotFound
from alignloop.safety.baked import (
    BakeConfig,
    bake_dialogues,
    build_baked_dataset,
    card_path,
    load_dialogues,
    parse_source,
)
from alignloop.safety.classifiers import SafetyClassifier, load_classifier
from alignloop.safety.gate import SAFE_RESPONSE, load_safe_topics
from alignloop.train.data import hh_dialogue, load_examples
from conftest import SHARED

ROOT = Path(__file__).resolve().parents[1]
HH = SHARED / "data" / "hh-rlhf" / "harmless-base-dev.jsonl.gz"
DIASAFETY_VAL = SHARED / "data" / "diasafety" / "val.json"
NON_SEQUITUR = re.compile(
    r"Hey, do you want to talk about something else\? How about we talk about (.+)\?"
)


class KeywordClassifier:
    """P(unsafe) = 1 when the utterance holds a keyword, else 0; records every batch."""

    name = "keyword"

    def __init__(self, *keywords: str):
        self.keywords = [k.lower() for k in keywords]
        self.batches: list[list[tuple]] = []

    def score(self, context, utterance: str) -> float:
        return float(any(k in utterance.lower() for k in self.keywords))

    def score_batch(self, pairs: Sequence[tuple]) -> np.ndarray:
        self.batches.append([(list(c), u) for c, u in pairs])
        return np.array([self.score(c, u) for c, u in pairs])


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def bot(text: str) -> dict:
    return {"role": "assistant", "content": text}


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def sft_file(path: Path, dialogues: list[list[dict]]) -> Path:
    return write_jsonl(path, [{"messages": d} for d in dialogues])


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is missing (../shared is not beside the repository)")
    return path


# Turn indices are message indices; comments say which turn fires and why.
DIALOGUES = [
    [  # only turn 4 (the 2nd assistant turn): its input fires
        {"role": "system", "content": "Be kind."},
        user("hi"),
        bot("hello there"),
        user("tell me something badword"),
        bot("sure, here you go"),
        user("thanks"),
        bot("you're welcome"),
    ],
    [user("hi"), bot("a badword reply"), user("ok"), bot("fine")],  # turn 1: its target fires
    [user("hi"), bot("hello"), user("how are you?"), bot("badword!")],  # only turn 3, by target
    [user("badword"), bot("badword too"), user("and now?"), bot("all good")],  # turn 1: both
    [user("a clean question"), bot("a clean answer")],  # nothing
    [user("badword at the end")],  # no assistant turn: nothing to replace (not via a file)
]
EXPECTED = {0: {4: "input"}, 1: {1: "target"}, 2: {3: "target"}, 3: {1: "both"}}


def test_replaces_exactly_the_triggered_targets_and_scores_in_chunks():
    classifier = KeywordClassifier("badword")
    assert isinstance(classifier, SafetyClassifier)
    result = bake_dialogues(
        DIALOGUES, classifier, canned="safe_response", mix=(), chunk_size=4, seed=1
    )
    assert len(result.rows) == len(DIALOGUES)
    for d, (row, original) in enumerate(zip(result.rows, DIALOGUES, strict=True)):
        assert (row["origin"], row["index"]) == ("data", d)
        fired = {r["turn"]: r["by"] for r in row["replaced"]}
        assert fired == EXPECTED.get(d, {}), d
        assert [m["role"] for m in row["messages"]] == [m["role"] for m in original]
        for k, (new, old) in enumerate(zip(row["messages"], original, strict=True)):
            assert new["content"] == (SAFE_RESPONSE if k in fired else old["content"]), (d, k)
    counts = result.counts()
    assert counts["dialogues"] == 6
    assert counts["assistant_turns"] == 3 + 2 + 2 + 2 + 1 + 0
    assert counts["replaced_turns"] == 4
    assert (counts["replaced_by_input"], counts["replaced_by_target"]) == (2, 3)
    assert counts["replaced_by_both"] == 1 and counts["changed_dialogues"] == 4
    # every assistant turn and the turn before it, each message once, in chunks of 4
    scored = [pair for batch in classifier.batches for pair in batch]
    assert counts["scored_utterances"] == len(scored) == 6 + 4 + 4 + 4 + 2
    assert [len(b) for b in classifier.batches] == [4, 4, 4, 4, 4]
    needed = [(0, range(1, 7)), (1, range(4)), (2, range(4)), (3, range(4)), (4, range(2))]
    expected = [(DIALOGUES[d][:j], DIALOGUES[d][j]["content"]) for d, js in needed for j in js]
    assert scored == expected  # each message judged after exactly the messages before it
    # the input of turn 4 of dialogue 0 is judged after the three messages before it
    assert (DIALOGUES[0][:3], "tell me something badword") in scored
    # the original dialogues are untouched
    assert DIALOGUES[2][3]["content"] == "badword!"


def test_first_canned_turn_ends_the_dialogue():
    result = bake_dialogues(DIALOGUES, KeywordClassifier("badword"), canned_turns="first")
    for d, (row, original) in enumerate(zip(result.rows, DIALOGUES, strict=True)):
        first = min(EXPECTED.get(d, {len(original)}))  # the first replaced turn, if any
        assert len(row["messages"]) == min(first + 1, len(original)), d
        assert row["messages"][:first] == original[:first], d
        assert [r["turn"] for r in row["replaced"]] == ([first] if d in EXPECTED else [])
    assert NON_SEQUITUR.fullmatch(result.rows[0]["messages"][4]["content"])
    counts = result.counts()
    assert counts["replaced_turns"] == counts["changed_dialogues"] == 4
    # dialogue 0 loses 1 assistant turn after turn 4, dialogues 1 and 3 one after turn 1
    assert counts["cut_turns"] == 3 and counts["assistant_turns"] == 2 + 1 + 2 + 1 + 1
    with pytest.raises(InvalidInput) as caught:
        bake_dialogues(DIALOGUES, KeywordClassifier("badword"), canned_turns="last")
    assert caught.value.field == "canned_turns"


@pytest.fixture(scope="module")
def profanity() -> SafetyClassifier:
    return load_classifier("profanity")


PROFANE_DIALOGUES = [
    [user("Good morning, how are you?"), bot("I am doing well, thanks for asking.")],
    [  # only the 2nd assistant turn is triggered (by its target)
        user("Can you recommend a book?"),
        bot("Try a good mystery novel."),
        user("What do you think of my neighbour?"),
        bot("Your neighbour is a fucking idiot."),
        user("Okay, let us talk about the weather."),
        bot("It is sunny and warm today."),
    ],
    [  # the input fires: the reply after it is replaced, the profane user turn stays
        user("Shut up you stupid bitch."),
        bot("I am sorry you feel that way."),
        user("Tell me about pancakes."),
        bot("Pancakes are made from flour, eggs and milk."),
    ],
]


@pytest.mark.parametrize("style", ["non_sequitur", "safe_response"])
def test_real_profanity_classifier_bakes_a_file_in_both_styles(tmp_path, profanity, style):
    data = sft_file(tmp_path / "data.jsonl", PROFANE_DIALOGUES)
    config = BakeConfig(
        data=str(data), out=str(tmp_path / "baked.jsonl"), canned_reply=style, seed=3
    )
    result = build_baked_dataset(config)
    rows = [json.loads(line) for line in (tmp_path / "baked.jsonl").read_text().splitlines()]
    assert rows == result.rows
    assert [[r["turn"] for r in row["replaced"]] for row in rows] == [[], [3], [1]]
    assert [[r["by"] for r in row["replaced"]] for row in rows] == [[], ["target"], ["input"]]
    for row, original in zip(rows, PROFANE_DIALOGUES, strict=True):
        turns = {r["turn"] for r in row["replaced"]}
        for k, (new, old) in enumerate(zip(row["messages"], original, strict=True)):
            if k not in turns:
                assert new == old  # byte-identical text, same role
            elif style == "safe_response":
                assert new == bot(SAFE_RESPONSE)
            else:
                topic = NON_SEQUITUR.fullmatch(new["content"])
                assert topic and topic.group(1) in load_safe_topics()
    card = json.loads(card_path(tmp_path / "baked.jsonl").read_text())
    assert card["counts"] == result.counts()
    assert card["counts"]["replaced_turns"] == 2
    assert (card["classifier"], card["threshold"], card["canned_reply"], card["seed"]) == (
        "alt-profanity-check",
        0.5,
        style,
        3,
    )
    assert card["sources"] == {"data": str(data), "mix_data": None}


def test_mixing_counts_and_determinism_by_seed(tmp_path, profanity):
    data = [
        [user(f"question {i}"), bot("you fucking idiot" if i % 2 else "fine")] for i in range(10)
    ]
    mix = [[user(f"mix {i}"), bot(f"shit answer {i}")] for i in range(7)]  # stays unmodified

    def bake(weight: float, seed: int = 0):
        return bake_dialogues(data, profanity, mix=mix, mix_weight=weight, seed=seed)

    half = bake(0.5)
    assert (half.counts()["mixed_rows"], half.counts()["mix_available"]) == (5, 7)
    assert half.counts()["replaced_turns"] == 5 and len(half.rows) == 15
    mixed = [row for row in half.rows if row["origin"] == "mix"]
    assert half.rows[:10] == [r for r in half.rows if r["origin"] == "data"]
    assert len({row["index"] for row in mixed}) == 5  # without replacement
    for row in mixed:
        assert row["messages"] == mix[row["index"]]  # unmodified, profanity and all
    assert bake(2.0).mixed_rows == 7  # capped at what there is
    assert bake(0).mixed_rows == 0
    assert bake(0.25).mixed_rows == 3  # 2.5 rounds half up

    assert bake(0.5).rows == half.rows  # same seed, same rows
    others = [bake(0.5, seed) for seed in (1, 2, 3)]
    topics = {tuple(r["messages"][1]["content"] for r in o.rows[:10]) for o in [half, *others]}
    samples = {tuple(r["index"] for r in o.rows[10:]) for o in [half, *others]}
    assert len(topics) > 1 and len(samples) > 1  # the seed picks topics and the sample

    mix_file = sft_file(tmp_path / "mix.jsonl", mix)
    data_file = sft_file(tmp_path / "data.jsonl", data)
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    for out in (first, second):  # the written files too, byte for byte
        build_baked_dataset(
            BakeConfig(data=str(data_file), mix_data=str(mix_file), mix_weight=0.5, out=str(out))
        )
    assert first.read_bytes() == second.read_bytes()
    card = json.loads(card_path(first).read_text())
    assert card["counts"]["mixed_rows"] == 5 and card["rows"] == 15


@pytest.mark.parametrize(
    ("bad_row", "reason"),
    [
        ({"messages": [user("hi"), user("anyone?")]}, "messages has no assistant turn"),
        ({"messages": [user("hi"), {"role": "bot", "content": "hey"}]}, "messages[1] must be"),
        ({"messages": [user("hi"), {"role": "assistant", "content": 7}]}, "messages[1] must be"),
        ({"messages": "hi"}, "messages must be a non-empty list"),
        ("{not json", "row is not valid JSON"),
    ],
)
def test_bad_rows_are_named_and_nothing_is_written(tmp_path, bad_row, reason):
    good = {"messages": [user("hi"), bot("hello")]}
    data = write_jsonl(tmp_path / "data.jsonl", [good, bad_row, good])
    out = tmp_path / "out" / "baked.jsonl"
    with pytest.raises(InvalidInput) as err:
        build_baked_dataset(BakeConfig(data=str(data), out=str(out)))
    assert err.value.field == "data"
    assert f"row 2: {reason}" in err.value.message
    assert "skip_bad_rows" in err.value.message
    assert not out.exists() and not card_path(out).exists() and not out.parent.exists()
    # the same bad row in the mix is named under mix_data
    with pytest.raises(InvalidInput) as err:
        build_baked_dataset(
            BakeConfig(
                data=str(sft_file(tmp_path / "ok.jsonl", [good["messages"]])),
                mix_data=str(data),
                out=str(out),
            )
        )
    assert err.value.field == "mix_data" and f"row 2: {reason}" in err.value.message
    assert not out.parent.exists()
    # skip_bad_rows leaves the row out
    result = build_baked_dataset(BakeConfig(data=str(data), out=str(out), skip_bad_rows=True))
    assert result.dialogues == 2 and out.exists()


def test_option_errors_name_the_field_and_the_fix(tmp_path, monkeypatch):
    data = sft_file(tmp_path / "data.jsonl", [[user("hi"), bot("hello")]])
    with pytest.raises(NotFound) as err:
        build_baked_dataset(
            BakeConfig(data=str(tmp_path / "nope.jsonl"), out=str(tmp_path / "o.jsonl"))
        )
    assert err.value.field == "data" and "does not exist" in err.value.message
    with pytest.raises(NotFound) as err:
        build_baked_dataset(
            BakeConfig(
                data=str(data), mix_data="hh-rlhf:missing.jsonl.gz", out=str(tmp_path / "o.jsonl")
            )
        )
    assert err.value.field == "mix_data"
    with pytest.raises(ConfigError, match=r"option 'data': .*unknown source 'hh'.*hh-rlhf:PATH"):
        load_config(BakeConfig, None, {"data": "hh:x.jsonl", "out": "o.jsonl"})
    with pytest.raises(ValidationError, match="unknown source 'chatbot'"):
        BakeConfig(data=str(data), mix_data="chatbot:english", out="o.jsonl")
    with pytest.raises(ConfigError, match=r"option 'out': .*\.jsonl"):
        load_config(BakeConfig, None, {"data": str(data), "out": "o.parquet"})
    with pytest.raises(ConfigError, match="'mix_weight'"):
        load_config(BakeConfig, None, {"data": str(data), "out": "o.jsonl", "mix_weight": -1})
    with pytest.raises(ConfigError, match="'threshold'"):
        load_config(BakeConfig, None, {"data": str(data), "out": "o.jsonl", "threshold": 1.5})
    with pytest.raises(NotFound) as err:  # a classifier that is not there
        build_baked_dataset(
            BakeConfig(data=str(data), classifier=str(tmp_path), out=str(tmp_path / "o.jsonl"))
        )
    assert err.value.field == "classifier" and not (tmp_path / "o.jsonl").exists()
    existing = tmp_path / "exists.jsonl"
    existing.write_text("keep me\n")
    with pytest.raises(Conflict) as err:
        build_baked_dataset(BakeConfig(data=str(data), out=str(existing)))
    assert err.value.field == "out" and "choose a new out path" in err.value.message
    assert existing.read_text() == "keep me\n" and not card_path(existing).exists()
    # spellings: a plain path and sft:PATH are SFT files; a file whose name has a colon too
    assert parse_source("a/b.jsonl") == ("sft", "a/b.jsonl")
    assert parse_source("sft:a.jsonl") == ("sft", "a.jsonl")
    assert parse_source("chatterbot") == ("chatterbot", "")
    monkeypatch.chdir(tmp_path)
    sft_file(tmp_path / "odd:name.jsonl", [[user("hi"), bot("hello")]])
    assert parse_source("odd:name.jsonl") == ("sft", "odd:name.jsonl")
    with pytest.raises(ConfigError, match="unknown source 'odder'"):
        parse_source("odder:name.jsonl")  # no such file: read as a source name


def alignloop(*args):
    from alignloop.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_bakes_a_file_the_sft_trainer_loads(tmp_path):
    data = sft_file(tmp_path / "data.jsonl", PROFANE_DIALOGUES)
    mix = sft_file(tmp_path / "mix.jsonl", [[user(f"hi {i}"), bot(f"hello {i}")] for i in range(5)])
    out = tmp_path / "baked" / "train.jsonl"
    run = alignloop(
        "safety", "bake", "--data", data, "--mix-data", mix, "--mix-weight", "1",
        "--canned-reply", "safe_response", "--out", out,
    )  # fmt: skip
    assert run.exit_code == 0, run.output
    assert "replaced_turns: 2" in run.output and "mixed_rows: 3" in run.output
    examples = load_examples(out, "sft")
    assert len(examples) == 6
    assert examples[1].messages[3] == bot(SAFE_RESPONSE)
    assert examples[2].messages[0] == PROFANE_DIALOGUES[2][0]  # the input itself is kept
    assert json.loads(card_path(out).read_text())["counts"]["rows"] == 6
    run = alignloop("safety", "bake", "--data", data, "--out", out)  # out exists now
    assert isinstance(run.exception, Conflict)
    first = tmp_path / "first.jsonl"
    run = alignloop("safety", "bake", "--data", data, "--canned-turns", "first", "--out", first)
    assert run.exit_code == 0, run.output
    card = json.loads(card_path(first).read_text())
    assert card["canned_turns"] == "first" and card["counts"]["cut_turns"] == 2
    assert [len(e.messages) for e in load_examples(first, "sft")] == [2, 4, 2]
    run = alignloop("safety", "bake", "--data", data, "--canned-turns", "some", "--out", first)
    assert isinstance(run.exception, ConfigError) and run.exception.field == "canned_turns"
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"messages": [user("only a question")]}])
    run = alignloop("safety", "bake", "--data", bad, "--out", tmp_path / "x.jsonl")
    assert isinstance(run.exception, InvalidInput) and "row 1" in run.exception.message
    assert not (tmp_path / "x.jsonl").exists()


# --- real data sources ----------------------------------------------------------------------


def test_hh_rlhf_chosen_dialogues_baked_with_profanity(tmp_path, profanity):
    need(HH)
    with pytest.raises(InvalidInput, match=r"row 68: chosen has an empty last Assistant turn"):
        load_dialogues(f"hh-rlhf:{HH}", limit=100)
    dialogues = load_dialogues(f"hh-rlhf:{HH}", limit=300, skip_bad=True)
    assert len(dialogues) == 300
    with gzip.open(HH, "rt") as f:
        first = json.loads(f.readline())
    assert dialogues[0] == hh_dialogue(first["chosen"], "chosen")  # the chosen dialogue
    result = bake_dialogues(dialogues, profanity, seed=0)
    counts = result.counts()
    assert counts["assistant_turns"] == sum(m["role"] == "assistant" for d in dialogues for m in d)
    assert 0 < counts["replaced_turns"] < counts["assistant_turns"]
    assert counts["replaced_by_input"] > 0 and counts["replaced_by_target"] > 0
    for row, original in zip(result.rows, dialogues, strict=True):
        turns = {r["turn"] for r in row["replaced"]}
        for k, (new, old) in enumerate(zip(row["messages"], original, strict=True)):
            assert (new == old) != (k in turns)
            if k in turns:
                assert NON_SEQUITUR.fullmatch(new["content"])
                r = next(r for r in row["replaced"] if r["turn"] == k)
                assert max(r["p_input"] or 0, r["p_target"]) >= 0.5
                assert math.isclose(r["p_target"], profanity.score([], old["content"]))


def test_diasafety_rows_become_two_turn_dialogues(tmp_path, profanity):
    need(DIASAFETY_VAL)
    rows = json.loads(DIASAFETY_VAL.read_text())[:50]
    dialogues = load_dialogues(f"diasafety:{DIASAFETY_VAL}", limit=50)
    assert dialogues == [[user(r["context"]), bot(r["response"])] for r in rows]
    result = bake_dialogues(dialogues, profanity)
    assert result.counts()["assistant_turns"] == 50


def test_chatterbot_corpus_conversations(tmp_path):
    pytest.importorskip("chatterbot_corpus", reason="the chatterbot-corpus package is missing")
    greetings = load_dialogues("chatterbot:english/greetings")
    assert len(greetings) == 25
    assert greetings[0][:2] == [user("Hello"), bot("Hi")]
    assert all(
        m["role"] == ("user", "assistant")[i % 2] for d in greetings for i, m in enumerate(d)
    )
    assert len(load_dialogues("chatterbot", limit=40)) == 40
    assert len(load_dialogues("chatterbot:english")) > 2000
    with pytest.raises(NotFound, match=r"languages: .*english") as err:
        load_dialogues("chatterbot:klingon", option="mix_data")
    assert err.value.field == "mix_data"
    with pytest.raises(NotFound, match="greetings"):
        load_dialogues("chatterbot:english/nothing")


def test_the_mix_can_be_answered_in_the_models_own_voice(tmp_path, tiny_backend):
    """mix_replies model: each mix dialogue becomes its opening turn and the model's own
    greedy reply (the same as the model says when asked alone); both: the corpus rows too."""
    from alignloop.backends.base import GenerationParams
    from alignloop.evaluate.generate import generate_replies
    from alignloop.safety.baked import own_voice

    mix = [
        [user("What is a computer?"), bot("A machine."), user("And a mouse?"), bot("A pointer.")],
        [{"role": "system", "content": "Be brief."}, user("Hello"), bot("Hi there.")],
        [user("Tell me a joke"), bot("Knock knock.")],
    ]
    params = GenerationParams(max_new_tokens=8, temperature=1.0, seed=0)  # greedy: newlines
    own = own_voice(mix, tiny_backend, params)
    openings = [mix[0][:1], mix[1][:2], mix[2][:1]]
    said = generate_replies(tiny_backend, openings, params)
    assert own == [
        [*o, {"role": "assistant", "content": s}] for o, s in zip(openings, said, strict=True)
    ]
    assert all(reply for reply in said)  # the tiny model answers every opening

    data_file = sft_file(tmp_path / "data.jsonl", [[user("you fucking idiot"), bot("no u")]])
    mix_file = sft_file(tmp_path / "mix.jsonl", mix)
    counts, cards = {}, {}
    for style in ("corpus", "model", "both"):
        out = tmp_path / f"{style}.jsonl"
        config = BakeConfig(
            data=str(data_file), mix_data=str(mix_file), mix_weight=10, out=str(out),
            mix_replies=style, mix_model="tiny", mix_max_new_tokens=8, mix_temperature=1.0,
        )  # fmt: skip
        result = build_baked_dataset(config)
        counts[style] = result.mixed_rows
        cards[style] = json.loads(card_path(out).read_text())
        mixed = [row["messages"] for row in result.rows if row["origin"] == "mix"]
        if style == "model":
            assert mixed == own  # the model's replies, generated by the bake itself
    assert counts == {"corpus": 3, "model": 3, "both": 6}
    assert (cards["model"]["mix_replies"], cards["model"]["mix_model"]) == ("model", "tiny")
    assert cards["corpus"]["mix_model"] is None

    with pytest.raises(ValidationError, match="set mix_data too") as err:
        BakeConfig(data=str(data_file), out=str(tmp_path / "x.jsonl"), mix_replies="model")
    assert err.value.errors()[0]["loc"] == ("mix_replies",)
    assert not (tmp_path / "x.jsonl").exists()


def test_the_packages_everyday_prompts_join_the_mix_answered_by_the_model(tmp_path):
    """mix_everyday: every everyday prompt the package ships (device troubles and small talk
    among them) joins the mix as a one-turn dialogue with the model's own reply."""
    from alignloop.safety.baked import everyday_prompts

    prompts = everyday_prompts()
    assert len(prompts) == len(set(prompts)) > 500
    assert any("printer" in p for p in prompts) and any("laptop" in p for p in prompts)
    data_file = sft_file(tmp_path / "data.jsonl", [[user("you fucking idiot"), bot("no u")]])
    out = tmp_path / "baked.jsonl"
    config = BakeConfig(
        data=str(data_file), out=str(out), mix_everyday=True, mix_weight=10_000,
        mix_model="tiny", mix_max_new_tokens=4, mix_temperature=1.0,
    )  # fmt: skip
    result = build_baked_dataset(config)
    mixed = [row["messages"] for row in result.rows if row["origin"] == "mix"]
    assert [m[0]["content"] for m in mixed] == prompts  # each once, in order
    assert all(len(m) == 2 and m[1]["role"] == "assistant" and m[1]["content"] for m in mixed)
    card = json.loads(card_path(out).read_text())
    assert (card["mix_everyday"], card["mix_model"]) == (True, "tiny")
    assert card["counts"]["mixed_rows"] == len(mixed) == result.mix_available


def test_a_sample_of_the_everyday_prompts_joins_the_mix_drawn_by_seed(tmp_path):
    """mix_everyday_rows: that many everyday prompts, a seeded draw in the package's order,
    recorded in the card; without mix_everyday, or below 1, the option is refused by name and
    nothing is written."""
    from alignloop.safety.baked import everyday_prompts, everyday_sample

    data_file = sft_file(tmp_path / "data.jsonl", [[user("you fucking idiot"), bot("no u")]])
    mixed = {}
    for seed in (0, 1):
        out = tmp_path / f"baked-{seed}.jsonl"
        config = BakeConfig(
            data=str(data_file), out=str(out), mix_everyday=True, mix_everyday_rows=5,
            mix_weight=10_000, mix_model="tiny", mix_max_new_tokens=4, mix_temperature=1.0,
            seed=seed,
        )  # fmt: skip
        result = build_baked_dataset(config)
        mixed[seed] = [r["messages"][0]["content"] for r in result.rows if r["origin"] == "mix"]
        assert json.loads(card_path(out).read_text())["mix_everyday_rows"] == 5
    everyday = everyday_prompts()
    for seed, prompts in mixed.items():
        assert len(prompts) == 5 and prompts == everyday_sample(everyday_prompts(), 5, seed)
        assert prompts == [p for p in everyday if p in prompts]  # the package's order
    assert mixed[0] != mixed[1]

    for options, message in (({}, "set mix_everyday too"), ({"mix_everyday": True}, "greater")):
        with pytest.raises(ValidationError, match=message) as err:
            BakeConfig(
                data=str(data_file), out=str(tmp_path / "x.jsonl"),
                mix_everyday_rows=5 if not options else 0, **options,
            )  # fmt: skip
        assert err.value.errors()[0]["loc"] == ("mix_everyday_rows",)
    assert not (tmp_path / "x.jsonl").exists()
