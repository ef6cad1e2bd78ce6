"""What the algorithms share: loading and encoding examples, log-probabilities of responses
under the policy and the reference, rewards from a scalar head, groups of responses."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from alignloop.backends.models import load_causal_lm
from alignloop.train.config import TrainConfig
from alignloop.train.data import load_examples
from alignloop.train.encode import Batch, Encoded, Movable, collate, encode_completion, truncate
from alignloop.train.losses import sequence_logprobs
from alignloop.train.modeling import TrainModel, lm_logits


class AlgorithmBase:
    """Defaults of the Algorithm protocol (see train/loop.py)."""

    name = "base"
    heads: Sequence[str] = ()
    inner_epochs = 1
    kind = "sft"  # data kind read from config.data
    needs_reference = False  # log-probs under the starting model (DPO, KTO)

    def setup(self, model: TrainModel, tokenizer, config: TrainConfig) -> None:
        self.tokenizer, self.config = tokenizer, config
        self.pad_id = tokenizer.pad_token_id
        if self.needs_reference:
            keep_reference(model, config)

    def load(self, config: TrainConfig, tokenizer) -> tuple[list, list]:
        self.examples = load_examples(config.data, self.kind, config.limit, config.skip_bad_rows)
        return [self.encode(e) for e in self.examples], []

    def encode(self, example: Any) -> Any:
        raise NotImplementedError

    def prepare(self, model: TrainModel, batch: Any) -> Any:
        return batch

    def finish(self, model: TrainModel, held_out: list) -> dict[str, float]:
        return {}

    def fit(self, example: Encoded) -> Encoded:
        return truncate(example, self.config.max_length)

    def completion(self, prompt, reply: str) -> Encoded:
        return self.fit(encode_completion(self.tokenizer, prompt, reply))


def split_held_out(items: list, fraction: float, seed: int) -> tuple[list, list]:
    """A seeded random share of the items held out for evaluation."""
    if fraction <= 0:
        return items, []
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    n_out = max(1, round(len(items) * fraction))
    return [items[i] for i in order[n_out:]], [items[i] for i in order[:n_out]]


def response_start(loss_mask: Tensor) -> int:
    """The first position whose logits predict a target token in any row: the logits before it
    (the shared prompt part) are not needed."""
    has_target = loss_mask[:, 1:].any(-1)
    if not has_target.any():
        return 0
    first = loss_mask[:, 1:].float().argmax(-1)[has_target]
    return int(first.min())


def window(batch: Batch, start: int) -> tuple[Tensor, Tensor]:
    """Labels and target mask aligned with logits computed from position `start` (shifted)."""
    return batch.input_ids[:, start + 1 :], batch.loss_mask[:, start + 1 :]


def target_logits(forward: Callable, batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
    """(logits, labels, mask) over the span of positions that predict target tokens, through
    `forward` (the wrapped model): logits at t predict the label at t."""
    start = response_start(batch.loss_mask)
    logits = forward(batch.input_ids, batch.attention_mask, ("logits",), start)["logits"]
    return (logits[:, :-1], *window(batch, start))


def response_logps(forward: Callable, batch: Batch) -> Tensor:
    """Sum of log p over each row's target tokens, [rows], through `forward` (the wrapped model)."""
    return sequence_logprobs(*target_logits(forward, batch))


def reference_logps(model: TrainModel, batch: Batch) -> Tensor:
    """The same under the reference: the base with adapters off, or the frozen starting model."""
    with torch.no_grad():
        if model.peft is not None:
            with model.reference():
                return response_logps(model, batch)
        start = response_start(batch.loss_mask)
        logits = lm_logits(model.ref_lm, batch.input_ids, batch.attention_mask, start)
        return sequence_logprobs(logits[:, :-1], *window(batch, start))


def keep_reference(model: TrainModel, config: TrainConfig) -> None:
    """Full-weights runs hold a frozen copy of the starting model as the reference."""
    if model.peft is None:
        model.ref_lm = load_causal_lm(config.model).eval().requires_grad_(False)


def last_token_values(values: Tensor, attention_mask: Tensor) -> Tensor:
    """A head's output at each row's last real token, [rows] (rows are right-padded)."""
    last = attention_mask.sum(-1) - 1
    return values[torch.arange(values.shape[0], device=values.device), last]


def scores(forward: Callable, batch: Batch, head: str = "reward") -> Tensor:
    values = forward(batch.input_ids, batch.attention_mask, (head,))[head]
    return last_token_values(values, batch.attention_mask)


@dataclass
class Groups(Movable):
    """K responses per prompt as one flat batch; `slots[i, j]` is the row of element i's j-th
    response (best first) or -1 where element i has fewer than K."""

    rows: Batch
    slots: Tensor
    margins: Tensor

    @property
    def mask(self) -> Tensor:
        return self.slots >= 0

    def gather(self, per_row: Tensor) -> Tensor:
        """Per-row values arranged [elements, K] (0 where there is no response)."""
        return per_row[self.slots.clamp(min=0)] * self.mask


def group(elements: Sequence[Sequence[Encoded]], margins: Sequence[float], pad_id: int) -> Groups:
    width = max(len(e) for e in elements)
    slots = torch.full((len(elements), width), -1, dtype=torch.long)
    flat: list[Encoded] = []
    for i, responses in enumerate(elements):
        for j, encoded in enumerate(responses):
            slots[i, j] = len(flat)
            flat.append(encoded)
    return Groups(collate(flat, pad_id), slots, torch.tensor(margins, dtype=torch.float32))
