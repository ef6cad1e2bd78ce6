"""ALMoST synthetic feedback: filters on hand-made cases, the rubric's rules of thumb, each step
on the tiny model and on scripted backends, resuming after a crash, and the CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from alignloop.backends.base import Completion, GenerationParams
from alignloop.errors import ConfigError, InvalidInput
from alignloop.synth.comparisons import build_comparisons
from alignloop.synth.config import (
    SynthComparisonsConfig,
    SynthQueriesConfig,
    SynthResponsesConfig,
    SynthRunConfig,
)
from alignloop.synth.filters import (
    QueryFilter,
    ResponseRules,
    RougeL,
    choose_pairs,
    extract_query,
    keeps_pair,
    response_drop_reason,
    rouge_l_upper_bound,
)
from alignloop.synth.queries import generate_queries
from alignloop.synth.responses import generate_responses, responses_path
from alignloop.synth.rubric import load_rubric
from alignloop.train.data import load_examples

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# ---------------------------------------------------------------- helpers


def write_rubric(folder: Path, configurations: list[dict], ranking: list[str], **extra) -> Path:
    path = folder / "rubric.yaml"
    path.write_text(yaml.safe_dump({"configurations": configurations, "ranking": ranking, **extra}))
    return path


def cfg(name: str, model: str = "tiny", demos: str = "short", shots: int = 1, **extra) -> dict:
    return {"name": name, "model": model, "demonstrations": demos, "shots": shots, **extra}


def write_queries(path: Path, texts: list[str]) -> Path:
    rows = [{"id": f"q{i}", "query": text} for i, text in enumerate(texts)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class KeyedBackend:
    """Answers from a function of (model, prompt messages, sample); counts the prompts."""

    def __init__(self, model: str, reply, calls: list):
        self.model_name, self.reply, self.calls = model, reply, calls

    def generate(self, prompts, params: GenerationParams):
        self.calls.append((self.model_name, len(prompts)))
        return [
            [Completion(self.reply(self.model_name, p, k), "stop") for k in range(params.n)]
            for p in prompts
        ]

    def close(self) -> None:
        pass


def keyed_factory(reply, calls: list | None = None):
    calls = [] if calls is None else calls
    return lambda model, device: KeyedBackend(model, reply, calls)


class CrashAfter:
    """Wraps a backend factory; the `limit`+1-th generate call raises (a crash mid-run)."""

    def __init__(self, factory, limit: int):
        self.factory, self.limit, self.calls, self.prompts = factory, limit, 0, 0

    def __call__(self, model, device):
        inner, outer = self.factory(model, device), self

        class Wrapped:
            model_name = inner.model_name

            def generate(self, prompts, params):
                if outer.calls >= outer.limit:
                    raise RuntimeError("simulated crash")
                outer.calls += 1
                outer.prompts += len(prompts)
                return inner.generate(prompts, params)

            def close(self):
                inner.close()

        return Wrapped()


class Unclosable:
    """The session's tiny backend, which the steps' `close()` must leave open for others."""

    def __init__(self, backend):
        self.backend, self.model_name = backend, backend.model_name

    def generate(self, prompts, params):
        return self.backend.generate(prompts, params)

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def tiny_factory(tiny_backend):
    """The tiny model loaded once for the module, whatever model a step asks for."""
    return lambda model, device: Unclosable(tiny_backend)


# ---------------------------------------------------------------- ROUGE-L and query filters


def test_rouge_l_matches_hand_computations():
    rouge = RougeL()
    # tokens: the cat sat on the mat / the cat lay on the mat: LCS "the cat on the mat" = 5
    assert rouge.f("the cat sat on the mat", "the cat lay on the mat") == pytest.approx(10 / 12)
    # a b c d vs d c b a: LCS 1 -> F = 2*1/(4+4)
    assert rouge.f("a b c d", "d c b a") == pytest.approx(0.25)
    # case and punctuation are ignored: identical token lists
    assert rouge.f("How do I cook rice?", "how do i COOK rice") == pytest.approx(1.0)
    assert rouge.f("completely different", "nothing shared here") == 0.0
    # LCS 3 of lengths 3 and 5 ("how do I" / "how can you do it I"): the, order matters
    assert rouge.f("how do i", "how can you do i") == pytest.approx(2 * 3 / 8)


def test_rouge_upper_bound_is_never_below_rouge():
    from collections import Counter

    rouge = RougeL()
    pairs = [("a b c d", "d c b a"), ("x y z", "x z y q"), ("one two", "three four")]
    for a, b in pairs:
        bound = rouge_l_upper_bound(
            Counter(rouge.tokenizer.tokenize(a)), Counter(rouge.tokenizer.tokenize(b))
        )
        assert bound >= rouge.f(a, b) - 1e-12


def query_filter(**overrides) -> QueryFilter:
    options = {
        "min_chars": 30,
        "max_chars": 250,
        "final_punctuation": ".?!",
        "rouge_threshold": 0.5,
    }
    return QueryFilter(**{**options, **overrides})


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("Too short a question?", "too_short"),
        ("Why " + "very " * 60 + "long?", "too_long"),
        ("How do I plan a trip to the mountains in May", "no_final_punctuation"),
        ("How do I plan a trip to the mountains in May:", "no_final_punctuation"),
        ('What does the phrase "break a leg" really mean?"', None),
        ("What does the word serendipity really mean to you?)", None),
        ("Tell me how to plan a trip to the mountains in May.", None),
        ("Tell me how to plan a trip to the mountains in May!", None),
    ],
)
def test_query_filter_reasons(text, reason):
    assert query_filter().drop_reason(text) == reason


def test_query_filter_drops_duplicates_and_similar_queries_and_counts_them():
    f = query_filter()
    f.add_reference("How can I get better at waking up early in the morning?")
    assert f.offer("What is the best way to learn to play chess as an adult?")
    assert not f.offer("what is the best   way to learn to play CHESS as an adult?")  # same text
    assert not f.offer("What is the best way to learn to play the piano as an adult?")  # similar
    assert not f.offer("How can I get better at waking up early in the evening?")  # seed-like
    assert f.offer("Which vegetables grow well on a sunny balcony in summer?")
    assert f.kept == [
        "What is the best way to learn to play chess as an adult?",
        "Which vegetables grow well on a sunny balcony in summer?",
    ]
    assert f.dropped == {"duplicate": 1, "too_similar": 2}


def test_rouge_threshold_is_inclusive():
    # tokens a b c d vs a b x y: LCS 2, F = 4/8 = 0.5 exactly -> dropped at threshold 0.5
    f = query_filter(min_chars=0)
    f.add_reference("alpha beta gamma delta.")
    assert f.drop_reason("alpha beta xenon yotta.") == "too_similar"
    assert (
        query_filter(min_chars=0, rouge_threshold=0.51).drop_reason("alpha beta xenon yotta.")
        is None
    )


@pytest.mark.parametrize(
    ("generated", "query"),
    [
        ("11. How do I bake sourdough bread at home?", "How do I bake sourdough bread at home?"),
        (
            "Sure! Here is a new question:\n\nHow do I fix a squeaky door?",
            "How do I fix a squeaky door?",
        ),
        ('"What is the tallest mountain in Africa?"', "What is the tallest mountain in Africa?"),
        ("New question: Why is the ocean salty?", "Why is the ocean salty?"),
        (
            "- Can you suggest a board game for two?\n- another",
            "Can you suggest a board game for two?",
        ),
        ("\n\n", ""),
    ],
)
def test_extract_query(generated, query):
    assert extract_query(generated) == query


# ---------------------------------------------------------------- response and pair filters

RULES = ResponseRules(
    min_chars=50,
    unknown_phrases=("i don't know", "i'm not sure"),
    role_markers=("Human:", "User:", "Assistant:"),
)
LONG = "This answer is long enough to pass the length filter of fifty characters"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("   ", "empty"),
        (LONG + ". Human: and then?", "role_marker"),
        (LONG + ".\nUser: thanks.", "role_marker"),
        ("Honestly, I don\u2019t know the answer to that one, sorry about it.", "does_not_know"),
        ("I'M NOT SURE, but it might be something like this, or not at all.", "does_not_know"),
        ("Short but fine.", "too_short"),
        (LONG + ", right?", "ends_with_question_or_colon"),
        (LONG + ", as follows:", "ends_with_question_or_colon"),
        (LONG + ", and then", "no_final_period_or_exclamation"),
        (LONG + " ```", "no_final_period_or_exclamation"),
        (LONG + ".", None),
        (LONG + "!  \n", None),
        (LONG + ' and "so on."', None),
    ],
)
def test_response_filter_reasons(text, reason):
    assert response_drop_reason(text, RULES) == reason


def test_length_pair_filter_on_hand_cases():
    # lengths 100, 60, 20: mean 60, population std sqrt(((40)^2+0+(40)^2)/3) = 32.66
    # mean - std/2 = 43.67: only a better response shorter than 43.67 and than the worse drops
    assert keeps_pair(100, 60, 60, 32.66, 0.5)
    assert keeps_pair(60, 100, 60, 32.66, 0.5)  # shorter than worse, but not short enough
    assert not keeps_pair(20, 60, 60, 32.66, 0.5)
    assert keeps_pair(20, 10, 60, 32.66, 0.5)  # short, but longer than the worse one


def test_choose_pairs_one_per_better_config_with_and_without_the_length_filter():
    ranked = ["a" * 20, "b" * 100, "c" * 60]  # best first; mean 60, std 32.66, cut 43.67
    with_filter = choose_pairs(ranked, True, 0.5)
    # best (20) is shorter than both worse ones and below the cut: both its pairs drop
    assert with_filter.pairs == [(1, 2)]
    assert (with_filter.considered, with_filter.dropped_by_length) == (3, 2)
    assert with_filter.dropped_one_per_better == 0
    without = choose_pairs(ranked, False, 0.5)
    assert without.pairs == [(0, 1), (1, 2)]
    assert (without.considered, without.dropped_by_length, without.dropped_one_per_better) == (
        3,
        0,
        1,
    )
    assert choose_pairs(["only one"], True, 0.5).pairs == []


# ---------------------------------------------------------------- rubric


def test_packaged_rubric_loads_ranked_best_first():
    rubric = load_rubric(None)
    assert [c.name for c in rubric.configurations] == ["A", "B", "C", "D", "E"]
    assert set(rubric.demonstrations) == {"short", "long"}
    assert rubric.demonstrations["long"].quality > rubric.demonstrations["short"].quality
    messages = rubric.prompt(rubric.configurations[3], "How do I boil an egg?")  # D: 1 shot
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[-1]["content"] == "How do I boil an egg?"
    configs_copy = Path(__file__).resolve().parents[1] / "configs" / "synth-rubric.yaml"
    assert load_rubric(str(configs_copy)).declared == rubric.declared


@pytest.mark.parametrize(
    ("configurations", "ranking", "message"),
    [
        ([cfg("A"), cfg("B")], ["A", "C"], "unknown configuration.*'C'"),
        ([cfg("A"), cfg("B")], ["A"], "missing: B"),
        ([cfg("A"), cfg("A")], ["A"], "unique"),
        ([cfg("A", shots=1), cfg("B", shots=3)], ["A", "B"], "puts 'A' above 'B'.*more shots"),
        (
            [cfg("small", model="tiny:layers=1"), cfg("big", model="tiny")],
            ["small", "big"],
            "puts 'small' above 'big'.*bigger model",
        ),
        (
            [cfg("l8", model="m:layers=8"), cfg("l12", model="m:layers=12")],
            ["l8", "l12"],
            "bigger model",
        ),
        (
            [cfg("p", model="x", size=1), cfg("q", model="y", size=7)],
            ["p", "q"],
            "bigger model",
        ),
        (
            [cfg("worse", demos="short"), cfg("better", demos="long")],
            ["worse", "better"],
            "better demonstrations",
        ),
        ([cfg("A", shots=9), cfg("B")], ["A", "B"], "asks 9 shots.*has 6 dialogues"),
        ([cfg("A", demos="fancy"), cfg("B")], ["A", "B"], "demonstration set 'fancy'"),
        ([cfg("A", tempo=1), cfg("B")], ["A", "B"], "unknown field"),
    ],
)
def test_bad_rubrics_name_the_configurations(tmp_path, configurations, ranking, message):
    path = write_rubric(tmp_path, configurations, ranking)
    with pytest.raises(ConfigError, match=message):
        load_rubric(str(path))


@pytest.mark.parametrize(
    ("configurations", "ranking"),
    [
        # two factors differ: no rule applies, any order is allowed
        ([cfg("A", shots=1, demos="long"), cfg("B", shots=3)], ["A", "B"]),
        # models of unknown relative size
        ([cfg("A", model="x"), cfg("B", model="y")], ["A", "B"]),
        # only the sampling differs
        ([cfg("A", temperature=0.5), cfg("B")], ["B", "A"]),
        ([cfg("big", model="tiny"), cfg("small", model="tiny:layers=1")], ["big", "small"]),
    ],
)
def test_rubrics_that_follow_or_escape_the_rules_load(tmp_path, configurations, ranking):
    load_rubric(str(write_rubric(tmp_path, configurations, ranking)))


def test_rubric_takes_a_demonstration_set_of_its_own(tmp_path):
    (tmp_path / "mine.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "mine",
                "quality": 5,
                "preamble": "Be kind.",
                "dialogues": [
                    [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello."}]
                ],
            }
        )
    )
    path = write_rubric(
        tmp_path,
        [cfg("A", demos="mine"), cfg("B", demos="long")],
        ["B", "A"],
        demonstrations={"mine": "mine.yaml"},
    )
    with pytest.raises(ConfigError, match="puts 'B' above 'A'"):
        load_rubric(str(path))  # quality 5 beats long's 2
    path = write_rubric(
        tmp_path,
        [cfg("A", demos="mine"), cfg("B", demos="long")],
        ["A", "B"],
        demonstrations={"mine": "mine.yaml"},
    )
    rubric = load_rubric(str(path))
    assert rubric.prompt(rubric.configurations[0], "q?")[0] == {
        "role": "system",
        "content": "Be kind.",
    }


# ---------------------------------------------------------------- smaller models by layers


def test_layer_truncated_model_is_built_once(tmp_path, monkeypatch):
    from alignloop.backends import load_backend
    from alignloop.backends.models import resolve_model, truncation_of

    monkeypatch.setenv("ALIGNLOOP_HOME", str(tmp_path / "home"))
    assert truncation_of("smollm2:layers=16") == ("smollm2", 16)
    assert truncation_of("smollm2") == ("smollm2", None)
    resolved = resolve_model("tiny:layers=1")
    assert resolved.name == "tiny-llama-random-layers1"
    config = json.loads((Path(resolved.path) / "config.json").read_text())
    assert config["num_hidden_layers"] == 1
    stamp = (Path(resolved.path) / "config.json").stat().st_mtime_ns
    assert resolve_model("tiny:layers=1").path == resolved.path
    assert (Path(resolved.path) / "config.json").stat().st_mtime_ns == stamp
    backend = load_backend("tiny:layers=1")
    out = backend.generate(
        [[{"role": "user", "content": "hi"}]], GenerationParams(max_new_tokens=3)
    )
    assert len(out[0]) == 1
    with pytest.raises(ConfigError, match="has 2 decoder layers"):
        resolve_model("tiny:layers=5")
    leftovers = [p.name for p in (tmp_path / "home" / "models" / "truncated").iterdir()]
    assert leftovers == [Path(resolved.path).name]  # the failed build left nothing behind


# ---------------------------------------------------------------- step 1: queries


def queries_settings(out: Path, **overrides) -> SynthQueriesConfig:
    options = {
        "out": str(out),
        "query_model": "tiny",
        "num_queries": 50,
        "max_candidates": 12,
        "batch_size": 4,
        "query_max_new_tokens": 12,
    }
    return SynthQueriesConfig(**{**options, **overrides})


def test_queries_on_the_tiny_model(tmp_path, tiny_factory):
    result = generate_queries(queries_settings(tmp_path, keep_seeds=True), None, tiny_factory)
    summary = result.summary
    assert summary["candidates"] == 12
    assert summary["kept"] + sum(summary["dropped"].values()) == 12
    rows = read_jsonl(tmp_path / "queries.jsonl")
    seeds = [r for r in rows if r["source"] == "seed"]
    assert len(seeds) >= 100 and seeds[0]["id"] == "s0001"
    assert len(rows) == len(seeds) + summary["kept"]
    assert len(read_jsonl(tmp_path / "queries-candidates.jsonl")) == 3  # 12 / batch 4
    odd = generate_queries(queries_settings(tmp_path / "odd", max_candidates=6), None, tiny_factory)
    assert odd.summary["candidates"] == 6  # 2 batches of 4, the last 2 unused
    assert json.loads((tmp_path / "queries-summary.json").read_text()) == summary


def test_query_prompt_shows_the_examples_as_a_dialogue():
    from alignloop.synth.queries import batch_prompts, query_prompt

    settings = SynthQueriesConfig(query_shots=2)
    messages = query_prompt(settings, ["First seed question?", "Second seed question?"])
    assert [m["role"] for m in messages] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert messages[2]["content"] == "First seed question?"
    assert messages[-1]["content"] == settings.query_instruction
    seeds = [f"Seed question number {i}?" for i in range(30)]
    batch = batch_prompts(SynthQueriesConfig(batch_size=3), seeds, 0)
    assert len(batch) == 3 and batch == batch_prompts(SynthQueriesConfig(batch_size=3), seeds, 0)
    shown = [m["content"] for m in batch[0] if m["role"] == "assistant"]
    assert len(shown) == 10 and len(set(shown)) == 10 and set(shown) <= set(seeds)
    assert batch != batch_prompts(SynthQueriesConfig(batch_size=3), seeds, 1)
    no_system = query_prompt(SynthQueriesConfig(query_system=""), ["Only one?"])
    assert no_system[0]["role"] == "user"


GOOD = [
    "How can I keep my houseplants alive while I am traveling?",
    "What is a good routine for learning to juggle three balls?",
    "Which snacks are easy to pack for a long car journey?",
    "Write a limerick about a cat who loves to ride trains.",
]


def scripted_queries(model, messages, k):
    """A batch-independent reply: one of GOOD, a bad one, or a near copy of a good one."""
    number = sum(ord(ch) for m in messages for ch in m["content"]) % 7
    return [
        f"11. {GOOD[0]}",
        "Sure, here is one:\n" + GOOD[1],
        "too short?",
        GOOD[0].replace("alive", "healthy"),
        f'"{GOOD[2]}"',
        GOOD[3],
        "An unfinished question that goes on and on without",
    ][number]


def test_queries_filter_and_ids_on_scripted_replies(tmp_path):
    calls: list = []
    settings = queries_settings(tmp_path, max_candidates=40, batch_size=8, num_queries=3)
    result = generate_queries(settings, None, keyed_factory(scripted_queries, calls))
    kept = [r["query"] for r in result.queries]
    assert len(kept) == 3 and set(kept) <= set(GOOD)
    assert [r["id"] for r in result.queries] == ["q00001", "q00002", "q00003"]
    assert all(r["source"] == "generated" for r in result.queries)
    assert result.summary["kept"] == 3
    assert result.summary["candidates"] == result.summary["kept"] + sum(
        result.summary["dropped"].values()
    )


def test_queries_resume_after_a_crash(tmp_path):
    settings = queries_settings(tmp_path / "a", max_candidates=24, batch_size=4, num_queries=100)
    crashing = CrashAfter(keyed_factory(scripted_queries), limit=2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        generate_queries(settings, None, crashing)
    assert not (tmp_path / "a" / "queries.jsonl").exists()
    resumed = CrashAfter(keyed_factory(scripted_queries), limit=100)
    result = generate_queries(settings, None, resumed)
    assert (resumed.calls, result.generated_batches) == (4, 4)  # 6 batches, 2 were done
    fresh = queries_settings(tmp_path / "b", max_candidates=24, batch_size=4, num_queries=100)
    assert generate_queries(fresh, None, keyed_factory(scripted_queries)).queries == result.queries
    again = CrashAfter(keyed_factory(scripted_queries), limit=0)
    assert generate_queries(settings, None, again).queries == result.queries  # all cached
    with pytest.raises(ConfigError, match=r"other settings.*temperature"):
        generate_queries(settings.model_copy(update={"query_temperature": 0.7}), None, again)


def test_queries_bad_input_writes_nothing(tmp_path):
    with pytest.raises(InvalidInput, match=r"does not exist.*--seeds"):
        generate_queries(queries_settings(tmp_path / "o", seeds=str(tmp_path / "none.txt")))
    few = tmp_path / "few.txt"
    few.write_text("# only comments\n\nOne seed question that is long enough?\n")
    with pytest.raises(ConfigError, match=r"holds 1 seed queries.*query_shots"):
        generate_queries(queries_settings(tmp_path / "o", seeds=str(few)))
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    with pytest.raises(InvalidInput, match="holds no queries"):
        generate_queries(queries_settings(tmp_path / "o", seeds=str(empty)))
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- step 2: responses


QUERIES = [
    "How do I make a simple tomato sauce from fresh tomatoes?",
    "What are some good ways to save money on groceries each month?",
    "Why is the sky blue during the day and red at sunset?",
    "How can I encourage my teenager to read more books?",
    "What should I pack for a week-long hiking trip in the mountains?",
]


def tiny_rubric(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return write_rubric(
        folder,
        [
            cfg("three", shots=3, max_new_tokens=8),
            cfg("one", shots=1, max_new_tokens=8),
            cfg("other", model="tiny-b", shots=0, max_new_tokens=8),
        ],
        ["three", "one", "other"],
    )


def responses_settings(out: Path, queries: Path, rubric: Path, **overrides) -> SynthResponsesConfig:
    options = {"out": str(out), "queries": str(queries), "rubric": str(rubric), "batch_size": 2}
    return SynthResponsesConfig(**{**options, **overrides})


def loads_per_model(factory):
    loads: list[str] = []

    def make(model, device):
        loads.append(model)
        return factory(model, device)

    return make, loads


def test_responses_on_the_tiny_model(tmp_path, tiny_factory):
    queries = write_queries(tmp_path / "queries.jsonl", QUERIES)
    settings = responses_settings(
        tmp_path / "out", queries, tiny_rubric(tmp_path), responses_per_config=2
    )
    make, loads = loads_per_model(tiny_factory)
    result = generate_responses(settings, None, make)
    assert loads == ["tiny", "tiny-b"]  # each model loaded once, for all its configurations
    assert result.generated == {"three": 5, "one": 5, "other": 5}
    rows = read_jsonl(responses_path(tmp_path / "out", "three"))
    assert [r["query_id"] for r in rows] == ["q0", "q1", "q2", "q3", "q4"]
    assert all(len(r["responses"]) == 2 and r["config"] == "three" for r in rows)
    assert rows[0]["query"] == QUERIES[0]
    fingerprint = json.loads((tmp_path / "out" / "responses" / "three.config.json").read_text())
    assert (fingerprint["shots"], fingerprint["max_new_tokens"], fingerprint["temperature"]) == (
        3,
        8,
        1.0,
    )
    again = generate_responses(settings, None, make)
    assert again.generated == {"three": 0, "one": 0, "other": 0} and loads == ["tiny", "tiny-b"]


def log_texts(out: Path) -> dict[str, str]:
    return {name: responses_path(out, name).read_text() for name in ("three", "one", "other")}


def test_responses_resume_after_a_crash_without_regenerating(tmp_path, tiny_factory):
    queries = write_queries(tmp_path / "queries.jsonl", QUERIES)
    rubric = tiny_rubric(tmp_path)
    reference = responses_settings(tmp_path / "ref", queries, rubric)
    generate_responses(reference, None, tiny_factory)

    settings = responses_settings(tmp_path / "out", queries, rubric)
    crashing = CrashAfter(tiny_factory, limit=4)  # 3 batches of "three", 1 of "one"
    with pytest.raises(RuntimeError, match="simulated crash"):
        generate_responses(settings, None, crashing)
    assert len(read_jsonl(responses_path(tmp_path / "out", "one"))) == 2
    resumed = CrashAfter(tiny_factory, limit=100)
    result = generate_responses(settings, None, resumed)
    assert result.reused == {"three": 5, "one": 2, "other": 0}
    assert resumed.prompts == 3 + 5  # nothing finished was generated again
    assert log_texts(tmp_path / "out") == log_texts(tmp_path / "ref")

    # a crash in the middle of a write: the torn last line is dropped and regenerated alone
    path = responses_path(tmp_path / "out", "other")
    text = path.read_text()
    path.write_text(text[: len(text) - 25])
    assert len(read_jsonl_lenient(path)) == 4
    resumed = CrashAfter(tiny_factory, limit=100)
    generate_responses(settings, None, resumed)
    assert resumed.prompts == 1
    assert log_texts(tmp_path / "out") == log_texts(tmp_path / "ref")


def read_jsonl_lenient(path: Path) -> list[dict]:
    return [
        json.loads(line)
        for line in path.read_text().splitlines(keepends=True)
        if line.endswith("\n")
    ]


def test_responses_refuse_rows_of_other_settings_or_queries(tmp_path, tiny_factory):
    queries = write_queries(tmp_path / "queries.jsonl", QUERIES)
    settings = responses_settings(tmp_path / "out", queries, tiny_rubric(tmp_path), max_queries=2)
    generate_responses(settings, None, tiny_factory)
    with pytest.raises(ConfigError, match=r"other settings.*top_p"):
        generate_responses(settings.model_copy(update={"response_top_p": 0.5}), None, tiny_factory)
    changed = settings.model_copy(update={"response_top_p": 0.5})
    for name in ("three", "one", "other"):  # deleting the logs (not their .config.json) is enough
        responses_path(tmp_path / "out", name).unlink()
    assert generate_responses(changed, None, tiny_factory).generated["one"] == 2
    stored = json.loads((tmp_path / "out" / "responses" / "one.config.json").read_text())
    assert stored["top_p"] == 0.5
    write_queries(queries, ["A different first question, long enough to pass?", *QUERIES[1:]])
    with pytest.raises(InvalidInput, match="query 'q0' was answered as"):
        generate_responses(changed, None, tiny_factory)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "holds no queries"),
        ('{"id": "a", "query": "fine?"}\n{"id": "b", "query": 3}\n', "line 2: field 'query'"),
        ('{"id": "a", "query": "fine?"}\nnot json\n', "line 2: not valid JSON"),
        ('{"id": "a", "query": "x?"}\n{"id": "a", "query": "y?"}\n', "line 2: id 'a' already used"),
        ("[1, 2]\n", "line 1: must be a JSON object"),
    ],
)
def test_responses_bad_query_files_write_nothing(tmp_path, tiny_factory, content, message):
    queries = tmp_path / "queries.jsonl"
    queries.write_text(content)
    settings = responses_settings(tmp_path / "out", queries, tiny_rubric(tmp_path))
    with pytest.raises(InvalidInput, match=message):
        generate_responses(settings, None, tiny_factory)
    assert not (tmp_path / "out").exists()


def test_responses_bad_rubric_writes_nothing(tmp_path, tiny_factory):
    queries = write_queries(tmp_path / "queries.jsonl", QUERIES)
    rubric = write_rubric(tmp_path, [cfg("A"), cfg("B", shots=2)], ["A", "B", "Z"])
    with pytest.raises(ConfigError, match=r"unknown configuration.*'Z'"):
        generate_responses(
            responses_settings(tmp_path / "out", queries, rubric), None, tiny_factory
        )
    with pytest.raises(InvalidInput, match="does not exist"):
        generate_responses(
            responses_settings(tmp_path / "out", tmp_path / "none.jsonl", tiny_rubric(tmp_path)),
            None,
            tiny_factory,
        )
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- step 3: comparisons

SENTENCE = "This is a helpful and complete answer to the question that was asked."


def scripted_answers(model, messages, k):
    """Per model and query: good answers of different lengths, and some that the filter drops."""
    index = QUERIES.index(messages[-1]["content"])
    table = {
        # q0, q4: all survive; q1: m-c drops; q2: only m-a survives; q3: m-a drops
        "m-a": [SENTENCE * 2, SENTENCE * 2, SENTENCE, "Sure.", SENTENCE],
        "m-b": [
            SENTENCE * 3,
            SENTENCE,
            "I don't know, sorry, really no idea about it.",
            SENTENCE * 4,
            SENTENCE,
        ],
        "m-c": [
            SENTENCE,
            "Human: " + SENTENCE,
            "What exactly do you mean by that, and when would it apply?",
            SENTENCE * 5,
            SENTENCE,
        ],
    }
    return table[model][index] if k == 0 else "too short."


def comparison_setup(tmp_path: Path, responses_per_config: int = 1) -> SynthComparisonsConfig:
    queries = write_queries(tmp_path / "queries.jsonl", QUERIES)
    rubric = write_rubric(
        tmp_path,
        [cfg("C", model="m-c"), cfg("A", model="m-a"), cfg("B", model="m-b")],
        ["A", "B", "C"],
    )
    settings = responses_settings(
        tmp_path / "out", queries, rubric, responses_per_config=responses_per_config
    )
    generate_responses(settings, None, keyed_factory(scripted_answers))
    return SynthComparisonsConfig(
        out=str(tmp_path / "out"), queries=str(queries), rubric=str(rubric)
    )


def test_comparisons_pairs_rankings_and_summary(tmp_path):
    result = build_comparisons(comparison_setup(tmp_path, responses_per_config=2))
    out = tmp_path / "out"
    summary = json.loads((out / "summary.json").read_text())
    responses = summary["responses"]
    assert responses["total"] == 30  # 5 queries x 3 configurations x 2 samples
    assert responses["dropped"]["too_short"] == 15 + 1  # every second sample, and "Sure."
    assert responses["dropped"]["does_not_know"] == 1
    assert responses["dropped"]["role_marker"] == 1
    assert responses["dropped"]["ends_with_question_or_colon"] == 1
    assert responses["kept"] == 30 - 19
    assert responses["per_config"]["A"]["dropped"]["too_short"] == 6

    rankings = read_jsonl(out / "rankings.jsonl")
    assert [r["query_id"] for r in rankings] == ["q0", "q1", "q3", "q4"]
    q0 = rankings[0]
    assert q0["configs"] == ["C", "A", "B"]  # declaration order
    assert [q0["configs"][i] for i in q0["ranking"]] == ["A", "B", "C"]  # best first
    assert q0["responses"][1] == SENTENCE * 2

    pairs = read_jsonl(out / "pairs.jsonl")
    by_query = {}
    for p in pairs:
        by_query.setdefault(p["query_id"], []).append((p["chosen_config"], p["rejected_config"]))
    # q0 lengths A 2s, B 3s, C 1s: mean 2s, std 0.82s: A < B but 2s > mean - 0.41s: kept
    assert by_query["q0"] == [("A", "B"), ("B", "C")]
    assert by_query["q1"] == [("A", "B")]
    assert "q2" not in by_query  # one survivor
    # q3: B (4s) and C (5s) only (A's "Sure." dropped): mean 4.5s, std 0.5s, cut 4.25s:
    # B is shorter than C and than the cut, so the pair drops
    assert "q3" not in by_query
    assert by_query["q4"] == [("A", "B"), ("B", "C")]
    nofilter = read_jsonl(out / "pairs-nofilter.jsonl")
    assert len(nofilter) == len(pairs) + 1
    assert summary["pairs"] == {
        "considered": 3 + 1 + 1 + 3,
        "dropped_by_length": 1,
        "dropped_one_per_better": 2,
        "written": 5,
        "length_filter": True,
    }
    assert summary["pairs_nofilter"]["dropped_by_length"] == 0
    assert summary["pairs_nofilter"]["written"] == 6
    assert result.summary == summary

    # the trainer reads both formats as they are
    assert len(load_examples(out / "pairs.jsonl", "pairs")) == 5
    examples = load_examples(out / "rankings.jsonl", "rankings")
    assert examples[0].responses == [SENTENCE * 2, SENTENCE * 3, SENTENCE]


def test_comparisons_need_every_configuration(tmp_path):
    settings = comparison_setup(tmp_path)
    out = tmp_path / "out"
    before = {p.name for p in out.iterdir()}
    path = responses_path(out, "B")
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:2]))
    with pytest.raises(InvalidInput, match=r"query 'q2' has no responses from configuration.*B"):
        build_comparisons(settings)
    path.write_text("".join(lines[:2]) + lines[2][:10])
    with pytest.raises(InvalidInput, match="cut short"):
        build_comparisons(settings)
    path.unlink()
    with pytest.raises(InvalidInput, match="configuration 'B' has no responses"):
        build_comparisons(settings)
    assert {p.name for p in out.iterdir()} == before  # nothing written


def test_comparisons_take_only_the_queries_responses_answered(tmp_path):
    """One configuration answered more queries than the others (a larger --max-queries
    earlier): with max_queries the comparisons use the first queries only."""
    settings = comparison_setup(tmp_path)
    path = responses_path(tmp_path / "out", "B")
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:2]))  # B answered q0 and q1 only
    result = build_comparisons(settings.model_copy(update={"max_queries": 2}))
    rankings = read_jsonl(tmp_path / "out" / "rankings.jsonl")
    assert [r["query_id"] for r in rankings] == ["q0", "q1"]
    assert result.summary["responses"]["total"] == 2 * 3


def test_comparisons_on_tiny_model_responses(tmp_path, tiny_factory):
    queries = write_queries(tmp_path / "queries.jsonl", QUERIES)
    rubric = tiny_rubric(tmp_path)
    generate_responses(responses_settings(tmp_path / "out", queries, rubric), None, tiny_factory)
    result = build_comparisons(
        SynthComparisonsConfig(out=str(tmp_path / "out"), queries=str(queries), rubric=str(rubric))
    )
    assert result.summary["responses"]["total"] == 15
    assert (
        sum(result.summary["responses"]["dropped"].values()) + result.summary["responses"]["kept"]
        == 15
    )
    assert all(path.exists() for path in result.files.values())


# ---------------------------------------------------------------- run and CLI


def test_run_chains_the_steps(tmp_path):
    from alignloop.synth.pipeline import run_synth

    rubric = write_rubric(tmp_path, [cfg("A", model="m-a"), cfg("B", model="m-b")], ["A", "B"])

    def reply(model, messages, k):
        if model == "m-q":  # the query prompt
            return scripted_queries(model, messages, k)
        return SENTENCE * (2 if model == "m-a" else 1)

    settings = SynthRunConfig(
        out=str(tmp_path / "out"),
        rubric=str(rubric),
        query_model="m-q",
        num_queries=2,
        max_candidates=16,
        batch_size=4,
    )
    result = run_synth(settings, None, keyed_factory(reply))
    assert result.queries is not None and len(result.queries.queries) == 2
    assert read_jsonl(tmp_path / "out" / "pairs.jsonl")[0]["chosen"] == SENTENCE * 2
    assert result.comparisons.summary["queries"]["kept"] == 2


def test_cli_synth_run_and_a_clear_error(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from alignloop.cli import app

    rubric = write_rubric(
        tmp_path,
        [cfg("A", shots=1, max_new_tokens=6), cfg("B", shots=0, max_new_tokens=6)],
        ["A", "B"],
    )
    args = [
        "synth",
        "run",
        "--out",
        str(tmp_path / "out"),
        "--rubric",
        str(rubric),
        "--query-model",
        "tiny",
        "--num-queries",
        "2",
        "--max-candidates",
        "4",
        "--batch-size",
        "4",
        "--query-max-new-tokens",
        "8",
        "--keep-seeds",
        "--max-queries",
        "3",
        "--role-markers",
        "Human:,User:",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "pairs.jsonl" in result.output and "rankings.jsonl" in result.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["responses"]["total"] == 6 and summary["queries"]["candidates"] == 4

    bad = write_rubric(tmp_path, [cfg("A"), cfg("B")], ["A", "Q"])
    result = CliRunner().invoke(
        app, ["synth", "responses", "--out", str(tmp_path / "o2"), "--rubric", str(bad)]
    )
    assert isinstance(result.exception, ConfigError) and "'Q'" in result.exception.message
    assert not (tmp_path / "o2").exists()


@pytest.mark.slow
def test_smollm2_answers_and_its_truncated_sibling_builds(tmp_path):
    queries = write_queries(tmp_path / "queries.jsonl", QUERIES[:2])
    rubric = write_rubric(
        tmp_path,
        [
            cfg("full", model="smollm2", demos="long", shots=1, max_new_tokens=48),
            cfg("cut", model="smollm2:layers=24", demos="long", shots=1, max_new_tokens=48),
        ],
        ["full", "cut"],
    )
    result = generate_responses(responses_settings(tmp_path / "out", queries, rubric))
    assert result.generated == {"full": 2, "cut": 2}
    rows = read_jsonl(responses_path(tmp_path / "out", "full"))
    assert all(r["responses"][0].strip() for r in rows)
    build_comparisons(
        SynthComparisonsConfig(out=str(tmp_path / "out"), queries=str(queries), rubric=str(rubric))
    )
