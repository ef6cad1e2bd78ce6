"""Generation backends: the local transformers one on the tiny model, the OpenAI-compatible one
against a real alignloop server, and stop-string handling."""

from __future__ import annotations

import pytest

from alignloop.backends.base import GenerationParams, StopStringBuffer, truncate_at_stop
from alignloop.backends.models import resolve_model
from alignloop.backends.openai_backend import BackendError, OpenAICompatibleBackend
from alignloop.errors import ConfigError

SHORT = [{"role": "user", "content": "hi"}]
LONG = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "a considerably longer prompt than the other one"},
]
GREEDY = GenerationParams(max_new_tokens=12, temperature=0)


def test_prompt_uses_the_models_chat_template(tiny_backend):
    prompt = tiny_backend.render(LONG)
    assert prompt.startswith("<|im_start|>system\nYou are terse.<|im_end|>")
    assert prompt.endswith("<|im_start|>assistant\n")


def test_batched_left_padded_generation_matches_one_at_a_time(tiny_backend):
    batch = tiny_backend.generate([SHORT, LONG], GREEDY)
    alone = [tiny_backend.generate([p], GREEDY)[0][0].text for p in (SHORT, LONG)]
    assert [b[0].text for b in batch] == alone  # left padding changes nothing
    assert batch[0][0].completion_tokens == 12 and batch[0][0].finish_reason == "length"


def test_n_samples_per_prompt_and_seed_reproducibility(tiny_backend):
    params = GenerationParams(max_new_tokens=16, temperature=1.0, n=3, seed=7)
    first = tiny_backend.generate([SHORT, LONG], params)
    again = tiny_backend.generate([SHORT, LONG], params)
    assert [len(c) for c in first] == [3, 3]
    assert [[c.text for c in cs] for cs in first] == [[c.text for c in cs] for cs in again]
    assert len({c.text for c in first[0]}) > 1  # the samples differ from each other


def test_stream_yields_the_same_text_as_generate(tiny_backend):
    stream = tiny_backend.stream(LONG, GREEDY)
    pieces = list(stream)
    assert len(pieces) > 1
    assert "".join(pieces) == tiny_backend.generate([LONG], GREEDY)[0][0].text
    assert stream.finish_reason == "length" and stream.completion_tokens == 12


def test_stop_strings_cut_the_reply(tiny_backend):
    params = GenerationParams(max_new_tokens=40, temperature=1.0, seed=11)
    text = tiny_backend.generate([SHORT], params)[0][0].text
    stop = text[5:7]
    cut = tiny_backend.generate([SHORT], GenerationParams(**{**params.as_dict(), "stop": (stop,)}))
    assert cut[0][0].text == text[: text.find(stop)]
    assert cut[0][0].finish_reason == "stop"


def test_stop_buffer_never_emits_a_stop_string_split_across_deltas():
    buffer = StopStringBuffer(["END"])
    out = "".join(buffer.feed(d) for d in ["hello E", "N", "D and more"]) + buffer.flush()
    assert out == "hello " and buffer.stopped
    buffer = StopStringBuffer(["END"])
    out = "".join(buffer.feed(d) for d in ["hello E", "nd"]) + buffer.flush()
    assert out == "hello End"
    assert truncate_at_stop("a. b? c", [".", "?"]) == ("a", True)


def test_unknown_model_names_are_rejected_clearly():
    with pytest.raises(ConfigError, match="neither 'tiny', 'smollm2'"):
        resolve_model("no-such-model")


def test_openai_backend_against_a_real_server(server):
    backend = OpenAICompatibleBackend(server.url + "/v1", "tiny", api_key="backend-test-token")
    params = GenerationParams(max_new_tokens=6, temperature=0)
    replies = backend.generate([SHORT, LONG], params)
    assert [len(r) for r in replies] == [1, 1]
    assert replies[0][0].completion_tokens == 6
    stream = backend.stream(LONG, params)
    assert "".join(stream) == replies[1][0].text
    assert stream.finish_reason == "length"
    with pytest.raises(BackendError, match="422"):
        backend.generate([SHORT], GenerationParams(max_new_tokens=10**6))
    backend.close()


def test_openai_backend_reports_an_unreachable_server():
    backend = OpenAICompatibleBackend("http://127.0.0.1:9/v1", "m", timeout=2)
    with pytest.raises(BackendError, match="cannot reach"):
        backend.generate([SHORT], GREEDY)
