"""Local generation with Hugging Face transformers: batched, left-padded, KV-cached, streamed."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace

import torch
from transformers import (
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
from alignloop.backends.models import ResolvedModel, load_causal_lm, load_tokenizer


class _Cancelled(StoppingCriteria):
    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs) -> torch.Tensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool)


class TransformersBackend:
    """One model in memory; generation is serialized by a lock (the model is not re-entrant)."""

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

    def render(self, messages: list[ChatMessage]) -> str:
        """The prompt text the model sees: its chat template with the assistant turn opened."""
        return self.tokenizer.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=True
        )

    def generate(
        self, prompts: Sequence[list[ChatMessage]], params: GenerationParams
    ) -> list[list[Completion]]:
        out: list[list[Completion]] = []
        for start in range(0, len(prompts), self.max_batch_size):
            out.extend(self._generate_batch(prompts[start : start + self.max_batch_size], params))
        return out

    def stream(self, prompt: list[ChatMessage], params: GenerationParams) -> TextStream:
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        cancel = threading.Event()
        inputs = self._encode([prompt])
        result = TextStream(iter(()), prompt_tokens=int(inputs["input_ids"].shape[1]))
        result._cancel.append(cancel.set)
        params = replace(params, n=1)

        def work() -> None:
            try:
                output = self._run_generate(inputs, params, streamer=streamer, cancel=cancel)
                completion = self._completions(output, inputs, params)[0][0]
                result.completion_tokens = completion.completion_tokens
                result.finish_reason = completion.finish_reason
            finally:
                streamer.end()

        thread = threading.Thread(target=work, name="alignloop-generate", daemon=True)
        thread.start()
        result.deltas = self._stop_filtered(streamer, params.stop, result, cancel, thread)
        return result

    def close(self) -> None:
        self.model = None

    def _stop_filtered(
        self,
        streamer: TextIteratorStreamer,
        stops: Sequence[str],
        result: TextStream,
        cancel: threading.Event,
        thread: threading.Thread,
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
            thread.join()
            if buffer.stopped:
                result.finish_reason = "stop"

    def _encode(self, prompts: Sequence[list[ChatMessage]]) -> dict[str, torch.Tensor]:
        texts = [self.render(p) for p in prompts]
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        return {k: v.to(self.device) for k, v in enc.items()}

    def _generate_batch(
        self, prompts: Sequence[list[ChatMessage]], params: GenerationParams
    ) -> list[list[Completion]]:
        inputs = self._encode(prompts)
        output = self._run_generate(inputs, params)
        return self._completions(output, inputs, params)

    def generate_tokens(
        self, prompts: Sequence[list[ChatMessage]], params: GenerationParams
    ) -> list[tuple[list[int], list[int]]]:
        """(prompt ids, reply ids up to and including the end-of-turn token) per prompt and
        sample, batched with the KV cache: what PPO's rollouts learn from."""
        out = []
        for start in range(0, len(prompts), self.max_batch_size):
            inputs = self._encode(prompts[start : start + self.max_batch_size])
            output = self._run_generate(inputs, params)
            width, eos_ids = inputs["input_ids"].shape[1], self._eos_ids()
            for row, tokens in enumerate(output.tolist()):
                prompt_row = row // params.n
                mask = inputs["attention_mask"][prompt_row].tolist()
                prompt = [t for t, m in zip(tokens[:width], mask, strict=True) if m]
                reply = tokens[width:]
                end = next((i for i, t in enumerate(reply) if t in eos_ids), None)
                out.append((prompt, reply if end is None else reply[: end + 1]))
        return out

    def _run_generate(self, inputs, params: GenerationParams, streamer=None, cancel=None):
        sampling = (
            {"do_sample": True, "temperature": params.temperature, "top_p": params.top_p}
            if params.temperature > 0
            else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        )
        criteria = StoppingCriteriaList([_Cancelled(cancel)]) if cancel else None
        with self._lock, torch.inference_mode():
            if params.seed is not None:
                torch.manual_seed(params.seed)
            return self.model.generate(
                **inputs,
                **sampling,
                max_new_tokens=params.max_new_tokens,
                num_return_sequences=params.n,
                pad_token_id=self.tokenizer.pad_token_id,
                stop_strings=list(params.stop) or None,
                tokenizer=self.tokenizer if params.stop else None,
                streamer=streamer,
                stopping_criteria=criteria,
                use_cache=True,
            )

    def _completions(self, output, inputs, params: GenerationParams) -> list[list[Completion]]:
        prompt_len = inputs["input_ids"].shape[1]
        prompt_tokens = inputs["attention_mask"].sum(dim=1).tolist()
        new_tokens = output[:, prompt_len:]
        eos_ids = self._eos_ids()
        results: list[list[Completion]] = [[] for _ in range(len(prompt_tokens))]
        for row, tokens in enumerate(new_tokens.tolist()):
            end = next((i for i, t in enumerate(tokens) if t in eos_ids), None)
            kept = tokens if end is None else tokens[:end]
            text = self.tokenizer.decode(kept, skip_special_tokens=True)
            text, hit_stop = truncate_at_stop(text, params.stop)
            finish = "stop" if end is not None or hit_stop else "length"
            results[row // params.n].append(
                Completion(text, finish, prompt_tokens[row // params.n], len(kept))
            )
        return results

    def _eos_ids(self) -> set[int]:
        ids = self.model.generation_config.eos_token_id
        ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
        ids.add(self.tokenizer.eos_token_id)
        ids.add(self.tokenizer.pad_token_id)
        return {i for i in ids if i is not None}
