"""ALMoST's reward-model-guided self-play on the tiny model: the best-scored candidate is kept
(a stub scorer and a real tiny reward model), dialogues alternate user and assistant, a rerun
skips finished dialogues, bad input names the field and writes nothing, and the CLI works."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from alignloop.errors import AlignloopError, ConfigError, InvalidInput
from alignloop.synth.rmsp import (
    Players,
    RlsfPromptsConfig,
    RmspConfig,
    best_candidate,
    clean_turn,
    dropped_path,
    load_queries,
    run_rmsp,
    write_rlsf_prompts,
)
from alignloop.synth.rmsp_cli import register_rmsp
from alignloop.train.data import load_examples

QUERIES = [
    "What is a good way to learn to cook simple meals at home?",
    "How do volcanoes form, and why do some of them erupt?",
    "Can you suggest a few ways to sleep better at night?",
    "What should I pack for a three day hiking trip?",
    "Why is the sky blue during the day and red at sunset?",
]
FAST = {"max_new_tokens": 6, "user_max_new_tokens": 5, "batch_size": 2, "candidates": 3}


def write_queries(path: Path, texts: list[str] = QUERIES) -> str:
    path.write_text("".join(json.dumps({"query": t}) + "\n" for t in texts))
    return str(path)


def rows_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


class RecordingScorer:
    """A deterministic stand-in for the reward model that remembers what it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[list, list[str]]] = []

    def __call__(self, prompts, replies):
        self.calls.append(([list(p) for p in prompts], list(replies)))
        return [zlib.crc32(r.encode()) / 2**32 for r in replies]

    def score(self, reply: str) -> float:
        return zlib.crc32(reply.encode()) / 2**32


def config(tmp_path: Path, **overrides) -> RmspConfig:
    if "queries" not in overrides:
        overrides["queries"] = write_queries(tmp_path / "queries.jsonl")
    values = {
        "reward_model": "no-reward-model",
        "out": str(tmp_path / "rmsp.jsonl"),
        "assistant_model": "tiny",
        "user_model": "tiny",
        **FAST,
    }
    return RmspConfig(**(values | overrides))


@pytest.fixture(scope="module")
def tiny_reward_model(tmp_path_factory) -> str:
    """A reward model on the tiny base, trained for two steps (scores differ per reply)."""
    from alignloop.train.config import RewardConfig
    from alignloop.train.run import train

    folder = tmp_path_factory.mktemp("rm")
    pairs = folder / "pairs.jsonl"
    pairs.write_text(
        "".join(
            json.dumps({"prompt": q, "chosen": "a helpful answer.", "rejected": "no"}) + "\n"
            for q in QUERIES
        )
    )
    out = folder / "model"
    train(
        "reward",
        RewardConfig(model="tiny", data=str(pairs), out=str(out), batch_size=4, max_steps=2),
    )
    return str(out)


# --- picking the best candidate ---------------------------------------------------------


def test_best_candidate_is_the_first_highest_score_among_the_scored():
    assert best_candidate([0.1, 0.7, 0.3]) == 1
    assert best_candidate([0.5, None, 0.9, 0.9]) == 2
    assert best_candidate([None, -1.0]) == 1
    assert best_candidate([None, None]) is None


def test_rmsp_keeps_the_candidate_the_scorer_ranks_highest(tmp_path, tiny_backend):
    scorer = RecordingScorer()
    settings = config(tmp_path, keep_candidates=True, turns=2)
    result = run_rmsp(settings, players=Players(tiny_backend, tiny_backend, scorer))
    assert result.written == len(QUERIES) and result.assistant_turns > len(QUERIES)
    for row in rows_of(Path(settings.out)):
        replies = [m["content"] for m in row["messages"] if m["role"] == "assistant"]
        for reply, turn in zip(replies, row["meta"]["turns"], strict=True):
            scores = [scorer.score(c) if c else None for c in turn["candidates"]]
            assert turn["candidate_scores"] == scores
            assert turn["score"] == max(s for s in scores if s is not None)
            assert reply == turn["candidates"][turn["chosen"]]
    assert result.mean_chosen_score >= result.mean_candidate_score


def test_the_scorer_sees_each_candidate_after_the_dialogue_so_far(tmp_path, tiny_backend):
    scorer = RecordingScorer()
    settings = config(tmp_path, turns=2, candidates=2)
    run_rmsp(settings, players=Players(tiny_backend, tiny_backend, scorer))
    dialogues = {
        row["messages"][0]["content"]: row["messages"] for row in rows_of(tmp_path / "rmsp.jsonl")
    }
    contexts = [prompt for prompts, _ in scorer.calls for prompt in prompts]
    for context in contexts:
        messages = dialogues[context[0]["content"]]
        assert context == messages[: len(context)]  # the whole dialogue before the reply
        assert context[-1]["role"] == "user"


def test_a_real_tiny_reward_model_picks_the_best(tmp_path, tiny_reward_model):
    from alignloop.evaluate.reward import reward_scores

    settings = config(tmp_path, reward_model=tiny_reward_model, keep_candidates=True, turns=1)
    result = run_rmsp(settings)
    assert result.written == len(QUERIES)
    for row in rows_of(Path(settings.out)):
        turn = row["meta"]["turns"][0]
        texts = [c for c in turn["candidates"] if c]
        expected = reward_scores(tiny_reward_model, [row["messages"][:1]] * len(texts), texts)
        scored = [s for s in turn["candidate_scores"] if s is not None]
        assert scored == pytest.approx(list(expected), abs=1e-5)
        assert turn["score"] == max(scored)
        assert row["messages"][1]["content"] == turn["candidates"][turn["chosen"]]
        assert row["meta"]["reward_model"] == tiny_reward_model


# --- dialogue structure -----------------------------------------------------------------


def test_dialogues_alternate_roles_with_n_candidates_scored_per_turn(tmp_path, tiny_backend):
    scorer = RecordingScorer()
    settings = config(tmp_path, turns=3, candidates=4)
    run_rmsp(settings, players=Players(tiny_backend, tiny_backend, scorer))
    rows = rows_of(Path(settings.out))
    ids = {q.text: q.id for q in load_queries(settings.queries)}
    assert [row["messages"][0]["content"] for row in rows] == QUERIES
    for row in rows:
        roles = [m["role"] for m in row["messages"]]
        assert roles == ["user", "assistant"] * (len(roles) // 2)
        assert len(row["meta"]["turns"]) == roles.count("assistant") <= 3
        for turn in row["meta"]["turns"]:
            assert len(turn["candidate_scores"]) == 4
        assert row["meta"]["query_id"] == ids[row["messages"][0]["content"]]
    assert len(load_examples(settings.out, "sft")) == len(QUERIES)  # ready for train sft


class ScriptedUser:
    """A user model whose turns are given (to test cleaning and the end of a dialogue)."""

    model_name = "scripted-user"

    def __init__(self, turns: list[str]):
        self.turns = turns
        self.seen: list[list[dict]] = []

    def generate(self, prompts, params):
        from alignloop.backends.base import Completion

        self.seen.extend(prompts)
        return [[Completion(self.turns.pop(0), "stop")] for _ in prompts]

    def stream(self, prompt, params):  # pragma: no cover - not used by RMSP
        raise NotImplementedError

    def close(self) -> None:
        pass


def test_user_turns_are_cleaned_and_an_empty_one_ends_the_dialogue(tmp_path, tiny_backend):
    user = ScriptedUser(["User: And why is that?\nAssistant: Because I say so.", "  Human:  "])
    settings = config(tmp_path, queries=write_queries(tmp_path / "one.jsonl", QUERIES[:1]))
    settings.turns = 3
    result = run_rmsp(settings, players=Players(tiny_backend, user, RecordingScorer()))
    (row,) = rows_of(Path(settings.out))
    assert [m["role"] for m in row["messages"]] == ["user", "assistant", "user", "assistant"]
    assert row["messages"][2]["content"] == "And why is that?"
    assert row["meta"]["ended"] == "empty_user_turn" and result.ended == {"empty_user_turn": 1}
    first_view = user.seen[0]  # the user model saw the dialogue with the roles swapped
    assert first_view[0]["role"] == "system"
    assert [m["role"] for m in first_view[1:]] == ["assistant", "user"]


class ScriptedAssistant(ScriptedUser):
    """An assistant whose candidates are given per call (every candidate the same)."""

    def generate(self, prompts, params):
        from alignloop.backends.base import Completion

        text = self.turns.pop(0)
        return [[Completion(text, "stop") for _ in range(params.n)] for _ in prompts]


def test_a_turn_without_any_candidate_ends_the_dialogue_after_the_last_reply(tmp_path):
    assistant = ScriptedAssistant(["Plants like light.", "  "])
    user = ScriptedUser(["Which light?"])
    settings = config(tmp_path, queries=write_queries(tmp_path / "one.jsonl", QUERIES[:1]))
    run_rmsp(settings, players=Players(assistant, user, RecordingScorer()))
    (row,) = rows_of(Path(settings.out))
    assert row["meta"]["ended"] == "no_candidate" and len(row["meta"]["turns"]) == 1
    assert [m["content"] for m in row["messages"]] == [QUERIES[0], "Plants like light."]


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("User: What about dogs?", "What about dogs?"),
        ("  human:what about dogs?\n\nAssistant: Dogs are great.", "what about dogs?"),
        ('"Tell me more."', "Tell me more."),
        ("Sure thing.\nUser: and then?", "Sure thing."),
        ("Assistant:", ""),
        ("<|im_start|>user\nHi there<|im_end|>", "Hi there"),
        ("I asked the AI: is it real?", "I asked the AI: is it real?"),
    ],
)
def test_clean_turn(raw, clean):
    assert clean_turn(raw) == clean


def test_a_turn_cut_off_by_the_token_limit_ends_at_its_last_full_sentence():
    assert clean_turn("Water them weekly. Give them light! Also the", cut_off=True) == (
        "Water them weekly. Give them light!"
    )
    assert clean_turn('He said "go." Then we', cut_off=True) == 'He said "go."'
    assert clean_turn("no sentence end at all", cut_off=True) == "no sentence end at all"
    assert clean_turn("Water them weekly. Also the") == "Water them weekly. Also the"


# --- resuming ----------------------------------------------------------------------------


def test_a_rerun_skips_finished_dialogues(tmp_path, tiny_backend):
    scorer = RecordingScorer()
    players = Players(tiny_backend, tiny_backend, scorer)
    first = run_rmsp(config(tmp_path, limit=2), players=players)
    assert (first.written, first.skipped) == (2, 0)
    out = tmp_path / "rmsp.jsonl"
    before = out.read_text()
    with open(out, "a") as f:
        f.write('{"messages": [{"role": "user", "content": "cut sh')  # a crash mid-write
    second = run_rmsp(config(tmp_path), players=players)
    assert (second.written, second.skipped) == (3, 2)
    rows = rows_of(out)
    assert out.read_text().startswith(before)  # finished dialogues are kept as they were
    assert [row["messages"][0]["content"] for row in rows] == QUERIES
    calls = len(scorer.calls)
    third = run_rmsp(config(tmp_path), players=players)
    assert (third.written, third.skipped, len(scorer.calls)) == (0, 5, calls)


def test_a_rerun_plays_what_an_uninterrupted_run_would(tmp_path, tiny_backend):
    players = Players(tiny_backend, tiny_backend, RecordingScorer())
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    whole.mkdir(), parts.mkdir()
    run_rmsp(config(whole), players=players)
    run_rmsp(config(parts, limit=2), players=players)
    run_rmsp(config(parts), players=players)
    assert rows_of(whole / "rmsp.jsonl") == rows_of(parts / "rmsp.jsonl")


def test_dialogues_without_an_assistant_turn_are_noted_and_skipped(tmp_path, scripted):
    empty = scripted([""])  # every candidate is empty: nothing to keep
    players = Players(empty, empty, RecordingScorer())
    result = run_rmsp(config(tmp_path, limit=2), players=players)
    assert (result.written, result.dropped) == (0, 2)
    assert not (tmp_path / "rmsp.jsonl").exists()
    noted = rows_of(dropped_path(tmp_path / "rmsp.jsonl"))
    assert {row["ended"] for row in noted} == {"no_candidate"}
    assert run_rmsp(config(tmp_path, limit=2), players=players).skipped == 2


# --- bad input ---------------------------------------------------------------------------


def test_a_missing_reward_model_folder_names_the_field_and_writes_nothing(tmp_path):
    with pytest.raises(ConfigError, match="alignloop train reward") as err:
        run_rmsp(config(tmp_path))
    assert err.value.field == "reward_model"
    (tmp_path / "plain").mkdir()
    with pytest.raises(ConfigError, match="is not a reward model"):
        run_rmsp(config(tmp_path, reward_model=str(tmp_path / "plain")))
    assert not (tmp_path / "rmsp.jsonl").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "holds no queries"),
        ("\n\n", "holds no queries"),
        (
            '{"query": "fine"}\n{"text": "no query"}\n{oops\n',
            r"line 2: needs 'query'.*line 3: is not",
        ),
        ('{"query": "  "}\n', "line 1: needs 'query'"),
        ('{"id": 1, "query": "a"}\n{"id": 1, "query": "b"}\n', "line 2: id '1' is already used"),
        ("[1, 2]\n", "line 1: must be an object"),
    ],
)
def test_bad_queries_files_name_the_line_and_write_nothing(tmp_path, content, message):
    queries = tmp_path / "queries.jsonl"
    queries.write_text(content)
    with pytest.raises(InvalidInput, match=message) as err:
        run_rmsp(config(tmp_path, queries=str(queries)), scorer=RecordingScorer())
    assert err.value.field == "queries"
    assert not (tmp_path / "rmsp.jsonl").exists()


def test_a_json_queries_file_must_hold_a_list(tmp_path):
    path = tmp_path / "queries.json"
    path.write_text('{"query": "not in a list"}')
    with pytest.raises(InvalidInput, match="must hold a list") as err:
        load_queries(path)
    assert err.value.field == "queries"


def test_queries_come_as_text_lines_or_rows_with_ids(tmp_path):
    lines = tmp_path / "queries.txt"
    lines.write_text("first query\n\nsecond query\nfirst query\n")
    assert [q.text for q in load_queries(lines)] == ["first query", "second query"]
    rows = tmp_path / "queries.jsonl"
    rows.write_text('{"id": 7, "prompt": "seven"}\n{"query": "eight", "id": "x8"}\n')
    assert [(q.id, q.text) for q in load_queries(rows)] == [("7", "seven"), ("x8", "eight")]
    assert len(load_queries(rows, limit=1)) == 1
    with pytest.raises(InvalidInput, match="does not exist"):
        load_queries(tmp_path / "missing.jsonl")


def test_an_out_file_of_another_kind_is_not_appended_to(tmp_path):
    out = tmp_path / "rmsp.jsonl"
    out.write_text('{"prompt": "not an rmsp row"}\n')
    with pytest.raises(InvalidInput, match="line 1 is not an RMSP row") as err:
        run_rmsp(config(tmp_path), scorer=RecordingScorer())
    assert err.value.field == "out"
    with pytest.raises(ConfigError, match=r"must be a \.jsonl file"):
        run_rmsp(config(tmp_path, out=str(tmp_path)), scorer=RecordingScorer())


def test_bad_options_are_refused_by_the_config():
    with pytest.raises(ValueError, match="candidates"):
        RmspConfig(queries="q.jsonl", reward_model="rm", candidates=0)


# --- RLSF prompts and the CLI ------------------------------------------------------------


def test_rlsf_prompts_leave_out_queries_rmsp_and_evaluation_used(tmp_path, tiny_backend):
    run_rmsp(
        config(tmp_path, limit=2), players=Players(tiny_backend, tiny_backend, RecordingScorer())
    )
    held_out = tmp_path / "eval.txt"
    held_out.write_text(QUERIES[4] + "\n")
    settings = RlsfPromptsConfig(
        queries=str(tmp_path / "queries.jsonl"),
        exclude=f"{tmp_path / 'rmsp.jsonl'},{held_out}",
        out=str(tmp_path / "rlsf.jsonl"),
    )
    assert write_rlsf_prompts(settings) == 2
    prompts = load_examples(settings.out, "prompts")
    assert [p.prompt[0]["content"] for p in prompts] == QUERIES[2:4]
    settings.exclude = str(tmp_path / "queries.jsonl")
    with pytest.raises(InvalidInput, match="every query"):
        write_rlsf_prompts(settings)


def test_cli_plays_dialogues_and_writes_rlsf_prompts(tmp_path, tiny_reward_model):
    app = typer.Typer()
    register_rmsp(app)
    queries = write_queries(tmp_path / "queries.jsonl")
    out = tmp_path / "rmsp.jsonl"
    args = ["rmsp", "--queries", queries, "--reward-model", tiny_reward_model, "--out", str(out)]
    args += ["--assistant-model", "tiny", "--user-model", "tiny", "--turns", "2", "--limit", "3"]
    args += ["--max-new-tokens", "6", "--user-max-new-tokens", "4", "--candidates", "2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "3 dialogues appended" in result.output
    assert len(rows_of(out)) == 3
    again = CliRunner().invoke(app, args)
    assert "0 dialogues appended" in again.output and "3 finished before" in again.output
    prompts = tmp_path / "rlsf.jsonl"
    result = CliRunner().invoke(
        app, ["rlsf-prompts", "--queries", queries, "--exclude", str(out), "--out", str(prompts)]
    )
    assert result.exit_code == 0, result.output
    assert len(rows_of(prompts)) == 2


def test_cli_reports_bad_input_as_an_alignloop_error(tmp_path):
    app = typer.Typer()
    register_rmsp(app)
    result = CliRunner().invoke(
        app, ["rmsp", "--queries", str(tmp_path / "none.jsonl"), "--reward-model", "rm"]
    )
    assert isinstance(result.exception, AlignloopError)
    assert result.exception.field == "queries"
