"""Reward-model accuracy on any pairs file: the share of pairs scored chosen above rejected."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from alignloop.backends.models import load_tokenizer, version_info
from alignloop.errors import ConfigError
from alignloop.train.algorithms.common import group
from alignloop.train.algorithms.reward import HEAD, ordered_share
from alignloop.train.data import load_examples
from alignloop.train.encode import encode_completion, truncate
from alignloop.train.modeling import load_reward_model


@dataclass(frozen=True)
class RewardAccuracy:
    accuracy: float
    pairs: int


def pairwise_accuracy(
    model: str | Path,
    data: str | Path,
    batch_size: int = 8,
    limit: int | None = None,
    console: Console | None = None,
) -> RewardAccuracy:
    info = version_info(model)
    if HEAD not in info.get("heads", []):
        raise ConfigError(
            f"{model} is not a reward model trained by 'alignloop train reward'", "model"
        )
    reward_model = load_reward_model(model).eval()
    tokenizer = load_tokenizer(str(model))
    max_length = info.get("config", {}).get("max_length", 512)
    pairs = load_examples(data, "pairs", limit)

    def encoded(example):
        return [
            truncate(encode_completion(tokenizer, example.prompt, reply), max_length)
            for reply in (example.chosen, example.rejected)
        ]

    def batches(progress: Progress | None):
        task = progress.add_task("scoring pairs", total=len(pairs)) if progress else None
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start : start + batch_size]
            yield group([encoded(p) for p in chunk], [0.0] * len(chunk), tokenizer.pad_token_id)
            if progress:
                progress.advance(task, len(chunk))

    with Progress(console=console, disable=console is None) as progress:
        share = ordered_share(reward_model, batches(progress))
    return RewardAccuracy(share, len(pairs))
