"""KTO on unpaired thumbs. The baseline z is the KL of the policy to the reference on
mismatched (prompt, completion) pairs of the batch: each prompt with the next row's completion.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import Tensor

from alignloop.train.algorithms.common import (
    AlgorithmBase,
    reference_logps,
    response_logps,
)
from alignloop.train.data import BinaryExample
from alignloop.train.encode import Batch, Movable, collate
from alignloop.train.losses import kto_loss

log = logging.getLogger("alignloop.train")


@dataclass
class ThumbsBatch(Movable):
    rows: Batch
    mismatched: Batch
    desirable: Tensor
    ref_logps: Tensor | None = None
    mismatched_logps: Tensor | None = None
    mismatched_ref_logps: Tensor | None = None


class KTO(AlgorithmBase):
    name = "kto"
    kind = "binary"
    needs_reference = True

    def load(self, config, tokenizer):
        items, held_out = super().load(config, tokenizer)
        _check_balance(self.examples, config.lambda_d, config.lambda_u)
        return items, held_out

    def encode(self, example: BinaryExample):
        return example, self.completion(example.prompt, example.completion)

    def collate(self, items) -> ThumbsBatch:
        examples = [e for e, _ in items]
        shifted = examples[-1:] + examples[:-1]
        mismatched = [
            self.completion(e.prompt, s.completion) for e, s in zip(examples, shifted, strict=True)
        ]
        return ThumbsBatch(
            collate([encoded for _, encoded in items], self.pad_id),
            collate(mismatched, self.pad_id),
            torch.tensor([e.label for e in examples]),
        )

    def prepare(self, model, batch: ThumbsBatch) -> ThumbsBatch:
        batch.ref_logps = reference_logps(model, batch.rows)
        batch.mismatched_ref_logps = reference_logps(model, batch.mismatched)
        batch.mismatched_logps = response_logps(model, batch.mismatched)
        return batch

    def loss(self, model, batch: ThumbsBatch):
        logps = response_logps(model, batch.rows)
        cfg = self.config
        loss = kto_loss(
            logps,
            batch.ref_logps,
            batch.desirable,
            batch.mismatched_logps,
            batch.mismatched_ref_logps,
            cfg.beta,
            cfg.lambda_d,
            cfg.lambda_u,
        )
        ratio = (logps - batch.ref_logps).detach()
        return loss, {
            "kl": float((batch.mismatched_logps - batch.mismatched_ref_logps).mean()),
            "reward_desirable": _mean(ratio[batch.desirable.bool()]),
            "reward_undesirable": _mean(ratio[~batch.desirable.bool()]),
        }


def _mean(values: Tensor) -> float:
    return float(values.mean()) if values.numel() else 0.0


def _check_balance(examples: list[BinaryExample], lambda_d: float, lambda_u: float) -> None:
    """KTO's paper keeps lambda_d n_d / (lambda_u n_u) in [1, 4/3]; say so when it is not."""
    n_d = sum(e.label for e in examples)
    n_u = len(examples) - n_d
    if n_d == 0 or n_u == 0:
        log.warning("kto data has only %s examples", "liked" if n_u == 0 else "disliked")
        return
    ratio = lambda_d * n_d / (lambda_u * n_u)
    if not 1 <= ratio <= 4 / 3:
        log.warning(
            "lambda_d * n_liked / (lambda_u * n_disliked) = %.2f is outside [1, 4/3]; "
            "KTO's authors suggest setting lambda_d to about %.2f",
            ratio,
            lambda_u * n_u / n_d,
        )
