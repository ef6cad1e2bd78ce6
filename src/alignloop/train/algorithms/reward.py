"""Reward models: a scalar head on the LM's last token, trained from Bradley-Terry pairs,
InstructGPT's K-way rankings (all C(K,2) pairs of a prompt in one element, K forward passes)
or liked/disliked thumbs. After training the head's bias is shifted so that the mean reward of
the preferred replies is 0 (InstructGPT), and held-out accuracy is measured."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from alignloop.train.algorithms.common import (
    AlgorithmBase,
    Groups,
    group,
    scores,
    split_held_out,
)
from alignloop.train.data import BinaryExample, PairExample, RankingExample
from alignloop.train.encode import Batch, Encoded, Movable, collate
from alignloop.train.losses import binary_loss, kway_ranking_loss, pairwise_loss

HEAD = "reward"


@dataclass
class Labelled(Movable):
    rows: Batch
    labels: Tensor  # 1.0 liked


class Reward(AlgorithmBase):
    name = "reward"
    heads = (HEAD,)

    def setup(self, model, tokenizer, config) -> None:
        super().setup(model, tokenizer, config)
        self.kind = config.objective
        model.add_head(HEAD)
        output = model.lm.get_output_embeddings()
        if model.peft is None and not model.lm.config.tie_word_embeddings and output is not None:
            output.requires_grad_(False)  # the LM head plays no part in a reward model

    def load(self, config, tokenizer):
        items, _ = super().load(config, tokenizer)
        self.train_items, held_out = split_held_out(items, config.eval_fraction, config.seed)
        return self.train_items, held_out

    def encode(self, example: PairExample | RankingExample | BinaryExample):
        if isinstance(example, PairExample):
            replies = [example.chosen, example.rejected]
            return [self.completion(example.prompt, r) for r in replies], example.margin
        if isinstance(example, RankingExample):
            return [self.completion(example.prompt, r) for r in example.responses], 0.0
        return self.completion(example.prompt, example.completion), float(example.label)

    def collate(self, items) -> Groups | Labelled:
        if self.kind == "binary":
            rows = collate([encoded for encoded, _ in items], self.pad_id)
            return Labelled(rows, torch.tensor([label for _, label in items]))
        return group([r for r, _ in items], [m for _, m in items], self.pad_id)

    def loss(self, model, batch: Groups | Labelled):
        if isinstance(batch, Labelled):
            logits = scores(model, batch.rows, HEAD)
            loss = binary_loss(logits, batch.labels)
            return loss, {"accuracy": _binary_accuracy(logits.detach(), batch.labels)}
        rewards = batch.gather(scores(model, batch.rows, HEAD))
        if self.kind == "pairs":
            margin = self.config.margin + batch.margins
            loss = pairwise_loss(rewards[:, 0], rewards[:, 1], margin)
        else:
            loss = kway_ranking_loss(rewards, batch.mask, self.config.margin)
        return loss, {"accuracy": _ranking_accuracy(rewards.detach(), batch.mask)}

    def finish(self, model, held_out: list) -> dict[str, float]:
        metrics = {}
        if self.config.center:
            metrics["bias_shift"] = self._center(model)
        if held_out:
            metrics["eval_accuracy"] = self.accuracy(model, held_out)
        return metrics

    @torch.no_grad()
    def _center(self, model) -> float:
        """Shift the bias so the preferred replies (best-ranked or liked) average reward 0."""
        if self.kind == "binary":
            preferred = [encoded for encoded, label in self.train_items if label][:512]
        else:
            preferred = [responses[0] for responses, _ in self.train_items[:512]]
        if not preferred:
            return 0.0
        mean = torch.cat(list(self._score_all(model, preferred))).mean()
        model.heads[HEAD].bias -= mean
        return float(-mean)

    @torch.no_grad()
    def accuracy(self, model, items: list) -> float:
        """Held-out accuracy: pairs ordered correctly, or thumbs predicted correctly."""
        if self.kind == "binary":
            logits = torch.cat(list(self._score_all(model, [e for e, _ in items])))
            return _binary_accuracy(logits, torch.tensor([label for _, label in items]))
        batches = (
            self.collate(items[start : start + self.config.batch_size])
            for start in range(0, len(items), self.config.batch_size)
        )
        return ordered_share(model, batches)

    def _score_all(self, model, encoded: list[Encoded]):
        size = self.config.batch_size
        for start in range(0, len(encoded), size):
            rows = collate(encoded[start : start + size], self.pad_id).to(_device(model))
            yield scores(model, rows, HEAD).float().cpu()


@torch.no_grad()
def ordered_share(model, batches) -> float:
    """Over groups of responses (best first), the share of (better, worse) pairs that the
    model's reward head scores in the right order."""
    correct = total = 0.0
    for batch in batches:
        batch = batch.to(_device(model))
        rewards = batch.gather(scores(model, batch.rows, HEAD))
        n_pairs = _pair_count(batch.mask)
        correct += _ranking_accuracy(rewards, batch.mask) * n_pairs
        total += n_pairs
    return correct / max(total, 1.0)


def _device(model) -> torch.device:
    return next(model.parameters()).device


def _pair_count(mask: Tensor) -> float:
    k = mask.sum(-1).float()
    return float((k * (k - 1) / 2).sum())


def _ranking_accuracy(rewards: Tensor, mask: Tensor) -> float:
    """Share of the pairs (better, worse) whose rewards are in the right order."""
    k = rewards.shape[1]
    better, worse = torch.triu_indices(k, k, offset=1, device=rewards.device)
    valid = mask[:, better] & mask[:, worse]
    right = (rewards[:, better] > rewards[:, worse]) & valid
    return float(right.sum()) / max(float(valid.sum()), 1.0)


def _binary_accuracy(logits: Tensor, labels: Tensor) -> float:
    return float(((logits > 0).float() == labels.to(logits.device).float()).float().mean())
