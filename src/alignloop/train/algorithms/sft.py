"""Supervised fine-tuning: cross-entropy on the assistant turns of `messages` rows."""

from __future__ import annotations

from alignloop.train.algorithms.common import AlgorithmBase, target_logits
from alignloop.train.data import SFTExample
from alignloop.train.encode import Batch, collate, encode_chat
from alignloop.train.losses import sft_loss


class SFT(AlgorithmBase):
    name = "sft"
    kind = "sft"

    def encode(self, example: SFTExample):
        return self.fit(encode_chat(self.tokenizer, example.messages))

    def collate(self, items) -> Batch:
        return collate(items, self.pad_id)

    def loss(self, model, batch: Batch):
        loss = sft_loss(*target_logits(model, batch))
        return loss, {"tokens": float(batch.loss_mask.sum())}
