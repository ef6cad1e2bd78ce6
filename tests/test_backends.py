"""Generation backends: the local transformers one on the tiny model, the OpenAI-compatible one
against a real alignloop server, and stop-string handling."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from alignloop.backends.base import GenerationParams, StopStringBuffer, truncate_at_stop
from alignloop.backends.batching import MicroBatcher, ModelThread
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


def test_concurrent_calls_share_a_batch_and_keep_their_own_seeds(tiny_backend):
    prompts = [[{"role": "user", "content": f"tell me about {w}"}] for w in "abcdefgh"]
    sampled = [GenerationParams(max_new_tokens=12, temperature=1.0, seed=i) for i in range(8)]
    alone = [
        tiny_backend.generate([p], s)[0][0].text for p, s in zip(prompts, sampled, strict=True)
    ]
    greedy_alone = [tiny_backend.generate([p], GREEDY)[0][0].text for p in prompts]
    before = len(tiny_backend.batcher.batches)
    with ThreadPoolExecutor(16) as pool:
        busy = threading.Event()
        tiny_backend.batcher.thread.submit(busy.wait)  # the model is busy: the calls queue
        together = [
            pool.submit(tiny_backend.generate, [p], s)
            for p, s in zip(prompts, sampled, strict=False)
        ]
        greedy = [pool.submit(tiny_backend.generate, [p], GREEDY) for p in prompts]
        time.sleep(0.3)
        busy.set()
        together, greedy = [f.result() for f in together], [f.result() for f in greedy]
    assert [c[0][0].text for c in together] == alone  # a seeded call draws the same reply
    assert [c[0][0].text for c in greedy] == greedy_alone
    runs = tiny_backend.batcher.batches[before:]
    assert runs == [8, 8]  # the calls that waited ran as one batch per setting
    assert len(set(alone)) > 1  # different seeds, different replies


def test_calls_with_other_settings_are_not_batched_together():
    release, batch_sizes = threading.Event(), []

    def run(calls, params):
        release.wait()
        batch_sizes.append(len(calls))
        return [[[params.max_new_tokens]] for _ in calls]

    batcher = MicroBatcher(run, 8, ModelThread())
    with ThreadPoolExecutor(5) as pool:
        first = pool.submit(batcher.generate, [[]], GenerationParams(max_new_tokens=1))
        time.sleep(0.2)  # the first call holds the model; the rest queue behind it
        lengths_and_seeds = ((2, 1), (3, 2), (2, 3), (3, 4))
        futures = [
            pool.submit(batcher.generate, [[]], GenerationParams(max_new_tokens=n, seed=s))
            for n, s in lengths_and_seeds
        ]
        time.sleep(0.2)
        release.set()
        assert first.result() == [[1]]
        assert [f.result() for f in futures] == [[[2]], [[3]], [[2]], [[3]]]
    assert batch_sizes == [1, 2, 2]  # lengths 2 and 3 each in their own batch, seeds aside


def test_a_failed_batch_raises_in_every_caller_and_the_next_batch_runs():
    calls_seen = []

    def run(calls, params):
        calls_seen.append(len(calls))
        if params.max_new_tokens == 13:
            raise RuntimeError("out of memory")
        return [[["ok"]] for _ in calls]

    batcher = MicroBatcher(run, 8, ModelThread())
    with pytest.raises(RuntimeError, match="out of memory"):
        batcher.generate([[]], GenerationParams(max_new_tokens=13))
    assert batcher.generate([[]], GenerationParams(max_new_tokens=5)) == [["ok"]]


def test_the_model_thread_is_one_thread_that_exits_when_idle():
    worker = ModelThread(idle_seconds=0.2)
    names = {worker.run(lambda: threading.get_ident()) for _ in range(5)}
    assert len(names) == 1  # one OS thread does all the work
    with pytest.raises(ValueError, match="bad"):
        worker.run(lambda: (_ for _ in ()).throw(ValueError("bad")))
    time.sleep(0.6)
    assert worker._thread is None  # gone once idle, so it holds no OpenMP team
    assert worker.run(lambda: 1 + 1) == 2  # and started again on demand


def test_row_sampler_keeps_to_the_nucleus():
    from alignloop.backends.transformers_backend import RowSampler, top_p_filtered

    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    assert torch.allclose(top_p_filtered(probs, 0.75), torch.tensor([[0.625, 0.375, 0, 0]]))
    logits = probs.log().repeat(200, 1)
    nucleus = GenerationParams(temperature=1.0, top_p=0.75, top_k=0)
    picks = RowSampler(list(range(200)), nucleus, "cpu")(None, logits).argmax(dim=1)
    assert set(picks.tolist()) == {0, 1}  # the two tokens of the 0.75 nucleus, both drawn
    top_1 = GenerationParams(temperature=1.0, top_p=1.0, top_k=1)
    picks = RowSampler(list(range(200)), top_1, "cpu")(None, logits).argmax(dim=1)
    assert set(picks.tolist()) == {0}


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
