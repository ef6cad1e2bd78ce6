"""CRINGE (BB3x): liked replies get cross-entropy; each token of a disliked reply is pushed
below a token sampled from the model's own top-k. Rows: `prompt`, `completion`, `label`."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from alignloop.train.algorithms.common import AlgorithmBase, target_logits
from alignloop.train.data import BinaryExample
from alignloop.train.encode import Batch, Movable, collate
from alignloop.train.losses import cringe_loss


@dataclass
class CringeBatch(Movable):
    rows: Batch
    negative: Tensor  # [rows] True: a disliked reply


class Cringe(AlgorithmBase):
    name = "cringe"
    kind = "binary"

    def encode(self, example: BinaryExample):
        return self.completion(example.prompt, example.completion), not example.label

    def collate(self, items) -> CringeBatch:
        rows = collate([encoded for encoded, _ in items], self.pad_id)
        return CringeBatch(rows, torch.tensor([negative for _, negative in items]))

    def loss(self, model, batch: CringeBatch):
        rows = batch.rows
        logits, labels, mask = target_logits(model, rows)
        loss = cringe_loss(logits, labels, mask, batch.negative, self.config.alpha, self.config.k)
        return loss, {"negatives": float(batch.negative.float().mean())}
