"""Supervised fine-tuning: cross-entropy on the assistant turns of `messages` rows."""

from __future__ import annotations

from alignloop.train.algorithms.common import AlgorithmBase
from alignloop.train.data import SFTExample
from alignloop.train.encode import Batch, collate, encode_chat
from alignloop.train.losses import sft_loss, shift_for_next_token


class SFT(AlgorithmBase):
    name = "sft"
    kind = "sft"

    def encode(self, example: SFTExample):
        return self.fit(encode_chat(self.tokenizer, example.messages))

    def collate(self, items) -> Batch:
        return collate(items, self.pad_id)

    def loss(self, model, batch: Batch):
        logits = model(batch.input_ids, batch.attention_mask, ("logits",))["logits"]
        loss = sft_loss(*shift_for_next_token(logits, batch.input_ids, batch.loss_mask))
        return loss, {"tokens": float(batch.loss_mask.sum())}
