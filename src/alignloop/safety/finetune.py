"""The fine-tuned encoder: all-MiniLM-L6-v2 with a sequence-classification head, trained on
(context, utterance) text pairs with a short plain PyTorch loop (AdamW, linear warm-up and
decay, seeded data order and initialisation)."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from alignloop.backends.base import ChatMessage
from alignloop.safety.classifiers import OnProgress, Pair, context_text
from alignloop.safety.config import SafetyTrainConfig
from alignloop.safety.data import SafetyExample
from alignloop.safety.embedding import ENCODER, minilm_path, pick_device, quiet_transformers

LABELS = {0: "safe", 1: "unsafe"}


class FinetunedClassifier:
    """P(unsafe) = softmax(encoder([CLS] context [SEP] utterance [SEP]))[unsafe]."""

    kind = "finetune"

    def __init__(
        self,
        model,
        tokenizer,
        context_turns: int,
        max_length: int,
        batch_size: int,
        name: str = "minilm-finetuned",
    ):
        self.model, self.tokenizer = model.eval(), tokenizer
        self.context_turns, self.max_length, self.batch_size = context_turns, max_length, batch_size
        self.name = name

    def encode(self, pairs: Sequence[Pair]):
        """Token ids of (context, utterance) pairs; the oldest context tokens go first."""
        contexts = [context_text(context, self.context_turns) for context, _ in pairs]
        return self.tokenizer(
            contexts,
            [utterance for _, utterance in pairs],
            padding=True,
            truncation="longest_first",
            max_length=self.max_length,
            return_tensors="pt",
        ).to(self.model.device)

    def score_batch(self, pairs: Sequence[Pair]) -> np.ndarray:
        import torch

        training = self.model.training
        self.model.eval()
        scores = np.zeros(len(pairs), dtype=np.float64)
        order = sorted(range(len(pairs)), key=lambda i: _pair_length(pairs[i], self.context_turns))
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            with torch.inference_mode():
                logits = self.model(**self.encode([pairs[i] for i in rows])).logits
            scores[rows] = logits.float().softmax(-1)[:, 1].cpu().numpy()
        self.model.train(training)
        return scores

    def score(self, context: Sequence[ChatMessage], utterance: str) -> float:
        return float(self.score_batch([(context, utterance)])[0])

    def save(self, folder: Path) -> dict[str, Any]:
        with quiet_transformers():
            self.model.save_pretrained(str(folder))
        self.tokenizer.save_pretrained(str(folder))
        return {
            "encoder": ENCODER,
            "context_turns": self.context_turns,
            "max_length": self.max_length,
            "batch_size": self.batch_size,
        }

    @classmethod
    def from_folder(cls, folder: Path, manifest: dict[str, Any]) -> FinetunedClassifier:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        with quiet_transformers():
            model = AutoModelForSequenceClassification.from_pretrained(str(folder))
        tokenizer = AutoTokenizer.from_pretrained(str(folder), truncation_side="left")
        return cls(
            model.to(pick_device(None)),
            tokenizer,
            manifest["context_turns"],
            manifest["max_length"],
            manifest["batch_size"],
            manifest.get("name", "minilm-finetuned"),
        )

    @classmethod
    def fit(
        cls,
        examples: Sequence[SafetyExample],
        config: SafetyTrainConfig,
        on_progress: OnProgress | None = None,
    ) -> tuple[FinetunedClassifier, dict[str, Any]]:
        """Fine-tune MiniLM on the rows; returns the classifier and its training metrics."""
        import torch

        torch.manual_seed(config.seed)
        classifier = cls(
            load_base_model().to(pick_device(config.device)),
            load_base_tokenizer(),
            config.context_turns,
            config.max_length,
            config.score_batch_size,
        )
        losses = train_loop(classifier, examples, config, on_progress)
        tail = losses[-max(1, len(losses) // 10) :]
        metrics = {
            "steps": len(losses),
            "first_loss": losses[0],
            "final_loss": float(np.mean(tail)),
        }
        return classifier, metrics


def _pair_length(pair: Pair, context_turns: int) -> int:
    """Characters the encoder reads of a pair (a cheap stand-in for its token count)."""
    return len(pair[1]) + len(context_text(pair[0], context_turns))


def load_base_model():
    from transformers import AutoModelForSequenceClassification

    with quiet_transformers():
        return AutoModelForSequenceClassification.from_pretrained(
            minilm_path(), num_labels=2, id2label=LABELS, label2id={v: k for k, v in LABELS.items()}
        )


def load_base_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_path(), truncation_side="left")


def total_steps(rows: int, config: SafetyTrainConfig) -> int:
    per_epoch = math.ceil(rows / config.batch_size)
    steps = max(1, math.ceil(config.epochs * per_epoch))
    return min(steps, config.max_steps) if config.max_steps else steps


def batch_order(
    lengths: Sequence[int], batch_size: int, steps: int, seed: int, group: int
) -> Iterator[list[int]]:
    """Row indices per step, `steps` in all. Each epoch is a fresh seeded shuffle, cut into
    groups of `group` batches; rows are sorted by length within a group (little padding) and
    the batches of the epoch are shuffled again, so batch order stays random."""
    rng, done = random.Random(seed), 0
    while True:
        order = list(range(len(lengths)))
        rng.shuffle(order)
        span = batch_size * max(group, 1)
        batches = []
        for start in range(0, len(order), span):
            chunk = sorted(order[start : start + span], key=lengths.__getitem__)
            batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
        if group > 1:
            rng.shuffle(batches)
        for batch in batches:
            if done == steps:
                return
            done += 1
            yield batch


def class_weights(examples: Sequence[SafetyExample], mode: str):
    """Per-class loss weights: n / (2 * n_class) when balanced (as scikit-learn's)."""
    import torch

    if mode == "none":
        return None
    unsafe = sum(bool(e.label) for e in examples)
    counts = torch.tensor([len(examples) - unsafe, unsafe], dtype=torch.float32).clamp(min=1)
    return len(examples) / (2 * counts)


def optimizer_and_schedule(model, config: SafetyTrainConfig, steps: int):
    """AdamW with linear warm-up over `warmup_fraction` of the steps, then linear decay to 0."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    warmup = round(config.warmup_fraction * steps)
    return optimizer, get_linear_schedule_with_warmup(optimizer, warmup, steps)


def train_loop(
    classifier: FinetunedClassifier,
    examples: Sequence[SafetyExample],
    config: SafetyTrainConfig,
    on_progress: OnProgress | None = None,
) -> list[float]:
    """Fine-tune `classifier.model` in place; returns the loss of every step."""
    import torch

    model = classifier.model.train()
    steps = total_steps(len(examples), config)
    optimizer, schedule = optimizer_and_schedule(model, config, steps)
    weights = class_weights(examples, config.class_weight)
    loss_fn = torch.nn.CrossEntropyLoss(
        weight=None if weights is None else weights.to(model.device)
    )
    lengths = [_pair_length((e.context, e.response), config.context_turns) for e in examples]
    order = batch_order(lengths, config.batch_size, steps, config.seed, config.length_grouping)
    losses: list[float] = []
    started = time.time()
    for step, rows in enumerate(order):
        batch = [examples[i] for i in rows]
        logits = model(**classifier.encode([(e.context, e.response) for e in batch])).logits
        labels = torch.tensor([int(bool(e.label)) for e in batch], device=model.device)
        loss = loss_fn(logits.float(), labels)
        loss.backward()
        if config.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if on_progress:
            rate = (step + 1) * config.batch_size / (time.time() - started)
            on_progress("fine-tune", step + 1, steps, {"loss": losses[-1], "rows/s": rate})
    model.eval()
    return losses
