"""DPO on pairs: the policy's log-ratio margin against the starting model (the reference)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from alignloop.train.algorithms.common import (
    AlgorithmBase,
    Groups,
    group,
    reference_logps,
    response_logps,
)
from alignloop.train.data import PairExample
from alignloop.train.encode import Movable
from alignloop.train.losses import dpo_loss


@dataclass
class PairBatch(Movable):
    groups: Groups
    ref_logps: Tensor | None = None  # [rows]


class DPO(AlgorithmBase):
    name = "dpo"
    kind = "pairs"
    needs_reference = True

    def encode(self, example: PairExample):
        return [self.completion(example.prompt, r) for r in (example.chosen, example.rejected)]

    def collate(self, items) -> PairBatch:
        return PairBatch(group(items, [0.0] * len(items), self.pad_id))

    def prepare(self, model, batch: PairBatch) -> PairBatch:
        batch.ref_logps = reference_logps(model, batch.groups.rows)
        return batch

    def loss(self, model, batch: PairBatch):
        logps = batch.groups.gather(response_logps(model, batch.groups.rows))
        ref = batch.groups.gather(batch.ref_logps)
        loss = dpo_loss(logps[:, 0], logps[:, 1], ref[:, 0], ref[:, 1], self.config.beta)
        rewards = self.config.beta * (logps - ref).detach()
        return loss, {
            "reward_margin": float((rewards[:, 0] - rewards[:, 1]).mean()),
            "accuracy": float((rewards[:, 0] > rewards[:, 1]).float().mean()),
        }
