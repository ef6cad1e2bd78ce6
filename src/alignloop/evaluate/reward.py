"""Reward-model accuracy on any pairs file: the share of pairs scored chosen above rejected."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from alignloop.backends.models import load_tokenizer, version_info
from alignloop.errors import ConfigError
from alignloop.train.algorithms.common import group, scores
from alignloop.train.algorithms.reward import HEAD, ordered_share
from alignloop.train.data import load_examples
from alignloop.train.encode import collate, encode_completion, truncate
from alignloop.train.modeling import load_reward_model


@dataclass(frozen=True)
class RewardAccuracy:
    accuracy: float
    pairs: int


def _reward_model(model: str | Path):
    info = version_info(model)
    if HEAD not in info.get("heads", []):
        raise ConfigError(
            f"{model} is not a reward model trained by 'alignloop train reward'", "model"
        )
    return load_reward_model(model).eval(), info.get("config", {}).get("max_length", 512)


def reward_scores(
    model: str | Path, prompts: list[list[dict]], replies: list[str], batch_size: int = 16
):
    """The reward model's score of each reply after its prompt messages (a numpy array)."""
    import numpy as np
    import torch

    reward_model, max_length = _reward_model(model)
    tokenizer = load_tokenizer(str(model))
    out = np.zeros(len(replies))
    with torch.no_grad():
        for start in range(0, len(replies), batch_size):
            rows = [
                truncate(encode_completion(tokenizer, p, r), max_length)
                for p, r in zip(
                    prompts[start : start + batch_size],
                    replies[start : start + batch_size],
                    strict=True,
                )
            ]
            batch = collate(rows, tokenizer.pad_token_id)
            out[start : start + len(rows)] = scores(reward_model, batch).float().numpy()
    return out


def pairwise_accuracy(
    model: str | Path,
    data: str | Path,
    batch_size: int = 8,
    limit: int | None = None,
    console: Console | None = None,
) -> RewardAccuracy:
    reward_model, max_length = _reward_model(model)
    tokenizer = load_tokenizer(str(model))
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
