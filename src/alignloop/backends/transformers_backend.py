"""Local generation with Hugging Face transformers: batched, left-padded, KV-cached, streamed.

Concurrent `generate` calls (a server's requests) are micro-batched (batching.py). Sampling
draws every row from its own random generator (`RowSampler`), seeded from its call's seed, so
a seeded call gets the same reply alone or in a batch.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import replace

import torch
from transformers import (
    LogitsProcessor,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
    TextIteratorStreamer,
)

from alignloop.backends.base import (
    ChatMessage,
    Completion,
    GenerationParams,
    StopStringBuffer,
    TextStream,
    truncate_at_stop,
)
from alignloop.backends.batching import Call, MicroBatcher
from alignloop.backends.models import ResolvedModel, load_causal_lm, load_tokenizer

SEED_STRIDE = 1_000_003  # row i of a call seeded s samples from seed s * SEED_STRIDE + i


class _Cancelled(StoppingCriteria):
    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs) -> torch.Tensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool)


class RowSampler(LogitsProcessor):
    """Temperature, top-k and top-p sampling (in that order, as transformers does) with one
    random generator per row: it draws each row's next token and leaves it the only finite
    logit, so greedy decoding then takes it."""

    def __init__(self, seeds: Sequence[int], params: GenerationParams, device: str):
        self.generators = [torch.Generator(device).manual_seed(s) for s in seeds]
        self.temperature, self.top_k, self.top_p = params.temperature, params.top_k, params.top_p

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        scores = scores.float() / self.temperature
        if 0 < self.top_k < scores.shape[-1]:
            kth = scores.topk(self.top_k, dim=-1).values[:, -1:]
            scores = scores.masked_fill(scores < kth, float("-inf"))
        probs = torch.softmax(scores, dim=-1)
        if self.top_p < 1.0:
            probs = top_p_filtered(probs, self.top_p)
        chosen = torch.stack(
            [
                torch.multinomial(row, 1, generator=g)[0]
                for row, g in zip(probs, self.generators, strict=True)
            ]
        )
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, chosen[:, None], 0.0)


def top_p_filtered(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """The smallest set of most likely tokens whose mass reaches `top_p` (at least one),
    renormalised; the rest get 0."""
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
    sorted_probs = sorted_probs.masked_fill(mass_before >= top_p, 0.0)
    kept = torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
    return kept / kept.sum(dim=-1, keepdim=True)


def row_seeds(calls: Sequence[Call], n: int) -> list[int]:
    """One seed per generated row (calls' prompts x n samples, in order): derived from the
    call's seed, or drawn at random for a call without one."""
    seeds = []
    for prompts, seed in calls:
        base = random.getrandbits(62) if seed is None else seed
        seeds += [(base * SEED_STRIDE + i) % 2**63 for i in range(len(prompts) * n)]
    return seeds


class TransformersBackend:
    """One model in memory; generation is serialized by a lock (the model is not re-entrant),
    and concurrent `generate` calls with the same settings share a batch."""

    def __init__(self, model: ResolvedModel, device: str = "cpu", max_batch_size: int = 16):
        self._attach(
            model,
            load_causal_lm(model.path).to(device).eval(),
            load_tokenizer(model.path),
            device,
            max_batch_size,
        )

    @classmethod
    def for_model(cls, lm, tokenizer, name: str, max_batch_size: int = 64) -> TransformersBackend:
        """A backend around a model already in memory (PPO's policy while it trains)."""
        backend = cls.__new__(cls)
        device = str(next(lm.parameters()).device)
        backend._attach(ResolvedModel(name, name, name), lm, tokenizer, device, max_batch_size)
        return backend

    def _attach(self, resolved, lm, tokenizer, device, max_batch_size) -> None:
        self.model_name = resolved.name
        self.resolved = resolved
        self.device = device
        self.max_batch_size = max_batch_size
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "left"
        self.model = lm
        self._lock = threading.Lock()
        self.batcher = MicroBatcher(self._generate_calls, max_batch_size)

    def render(self, messages: list[ChatMessage]) -> str:
        """The prompt text the model sees: its chat template with the assistant turn opened."""
        return self.tokenizer.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=True
        )

    def generate(
        self, prompts: Sequence[list[ChatMessage]], params: GenerationParams
    ) -> list[list[Completion]]:
        return self.batcher.generate(prompts, params)

    def _generate_calls(
        self, calls: list[Call], params: GenerationParams
    ) -> list[list[list[Completion]]]:
        """The batcher's runner: all calls' prompts in batches of `max_batch_size` rows, each
        row sampled with its call's seed; the completions handed back per call."""
        completions: list[Completion] = []
        for inputs, output in self._batches(calls, params):
            completions += self._completions(output, inputs, params)
        out, rows = [], iter(completions)
        for call_prompts, _ in calls:
            out.append([[next(rows) for _ in range(params.n)] for _ in call_prompts])
        return out

    def stream(self, prompt: list[ChatMessage], params: GenerationParams) -> TextStream:
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        cancel = threading.Event()
        inputs = self._encode([prompt])
        result = TextStream(iter(()), prompt_tokens=int(inputs["input_ids"].shape[1]))
        result._cancel.append(cancel.set)
        params = replace(params, n=1)
        seeds = row_seeds([([prompt], params.seed)], 1)

        def work() -> None:
            try:
                output = self._run_generate(inputs, params, seeds, streamer, cancel)
                completion = self._completions(output, inputs, params)[0]
                result.completion_tokens = completion.completion_tokens
                result.finish_reason = completion.finish_reason
            finally:
                streamer.end()

        running = self.batcher.thread.submit(work)
        result.deltas = self._stop_filtered(streamer, params.stop, result, cancel, running)
        return result

    def close(self) -> None:
        self.model = None

    def _stop_filtered(
        self,
        streamer: TextIteratorStreamer,
        stops: Sequence[str],
        result: TextStream,
        cancel: threading.Event,
        running: Future,
    ) -> Iterator[str]:
        buffer = StopStringBuffer(stops)
        try:
            for piece in streamer:
                if text := buffer.feed(piece):
                    yield text
                if buffer.stopped:
                    cancel.set()
                    break
            if tail := buffer.flush():
                yield tail
        finally:
            cancel.set()
            running.result()
            if buffer.stopped:
                result.finish_reason = "stop"

    def _encode(self, prompts: Sequence[list[ChatMessage]]) -> dict[str, torch.Tensor]:
        texts = [self.render(p) for p in prompts]
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        return {k: v.to(self.device) for k, v in enc.items()}

    def generate_tokens(
        self, prompts: Sequence[list[ChatMessage]], params: GenerationParams
    ) -> list[tuple[list[int], list[int]]]:
        """(prompt ids, reply ids up to and including the end-of-turn token) per prompt and
        sample, batched with the KV cache: what PPO's rollouts learn from."""
        out = []
        for inputs, output in self._batches([(prompts, params.seed)], params):
            width, eos_ids = inputs["input_ids"].shape[1], self._eos_ids()
            for row, tokens in enumerate(output.tolist()):
                mask = inputs["attention_mask"][row].tolist()
                prompt = [t for t, m in zip(tokens[:width], mask, strict=True) if m]
                reply = tokens[width:]
                end = next((i for i, t in enumerate(reply) if t in eos_ids), None)
                out.append((prompt, reply if end is None else reply[: end + 1]))
        return out

    def _batches(self, calls: Sequence[Call], params: GenerationParams):
        """(inputs, output ids) per batch of `max_batch_size` rows: the calls' prompts, each
        repeated `params.n` times, every row sampled with its own seed (`row_seeds`)."""
        rows = [p for call_prompts, _ in calls for p in call_prompts for _ in range(params.n)]
        seeds = row_seeds(calls, params.n)
        for start in range(0, len(rows), self.max_batch_size):
            end = start + self.max_batch_size
            inputs = self._encode(rows[start:end])
            yield inputs, self._run_generate(inputs, params, seeds[start:end])

    def _run_generate(
        self, inputs, params: GenerationParams, seeds: Sequence[int], streamer=None, cancel=None
    ):
        """One batch, one row per input row: greedy, or sampled by `RowSampler` with `seeds`."""
        sampler = (
            LogitsProcessorList([RowSampler(seeds, params, self.device)])
            if params.temperature > 0
            else None
        )
        criteria = StoppingCriteriaList([_Cancelled(cancel)]) if cancel else None
        with self._lock, torch.inference_mode():
            return self.model.generate(
                **inputs,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                logits_processor=sampler,
                max_new_tokens=params.max_new_tokens,
                pad_token_id=self.tokenizer.pad_token_id,
                stop_strings=list(params.stop) or None,
                tokenizer=self.tokenizer if params.stop else None,
                streamer=streamer,
                stopping_criteria=criteria,
                use_cache=True,
            )

    def _completions(self, output, inputs, params: GenerationParams) -> list[Completion]:
        """One completion per row of the batch (rows are prompts repeated `params.n` times)."""
        prompt_len = inputs["input_ids"].shape[1]
        prompt_tokens = inputs["attention_mask"].sum(dim=1).tolist()
        new_tokens = output[:, prompt_len:]
        eos_ids = self._eos_ids()
        results: list[Completion] = []
        for row, tokens in enumerate(new_tokens.tolist()):
            end = next((i for i, t in enumerate(tokens) if t in eos_ids), None)
            kept = tokens if end is None else tokens[:end]
            text = self.tokenizer.decode(kept, skip_special_tokens=True)
            text, hit_stop = truncate_at_stop(text, params.stop)
            finish = "stop" if end is not None or hit_stop else "length"
            results.append(Completion(text, finish, prompt_tokens[row], len(kept)))
        return results

    def _eos_ids(self) -> set[int]:
        ids = self.model.generation_config.eos_token_id
        ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
        ids.add(self.tokenizer.eos_token_id)
        ids.add(self.tokenizer.pad_token_id)
        return {i for i in ids if i is not None}
