"""The one pairwise judge interface: which of two replies to the same prompt is better.

`compare` returns, per prompt, 1.0 where reply a is better, 0.0 where b is, 0.5 for a tie;
`win_rate` averages those (ties count half). A reward model judges here; an LLM judge (asked in
both orders) and people's side-by-side votes fit the same protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from alignloop.backends.base import ChatMessage

if TYPE_CHECKING:
    import numpy as np


@runtime_checkable
class PairwiseJudge(Protocol):
    name: str

    def compare(
        self,
        prompts: Sequence[list[ChatMessage]],
        replies_a: Sequence[str],
        replies_b: Sequence[str],
    ) -> np.ndarray:
        """Per prompt: 1.0 where a is better, 0.0 where b is, 0.5 for a tie."""
        ...


def outcomes_from_scores(scores_a, scores_b) -> np.ndarray:
    """1 / 0 / 0.5 from two arrays of pointwise scores (higher is better)."""
    import numpy as np

    a, b = np.asarray(scores_a, dtype=float), np.asarray(scores_b, dtype=float)
    return np.where(a > b, 1.0, np.where(a < b, 0.0, 0.5))


def ties_and_differing(
    prompts: Sequence, replies_a: Sequence[str], replies_b: Sequence[str]
) -> tuple[np.ndarray, list[int]]:
    """Every outcome a tie to start with, and the indices whose replies differ (the only ones a
    judge needs to look at: identical replies are ties)."""
    import numpy as np

    if not len(prompts) == len(replies_a) == len(replies_b):
        raise ValueError("prompts, replies_a and replies_b must have the same length")
    differ = [i for i, (a, b) in enumerate(zip(replies_a, replies_b, strict=True)) if a != b]
    return np.full(len(prompts), 0.5), differ


def win_rate(outcomes) -> float:
    """Share of comparisons a won, ties counting half."""
    import numpy as np

    values = np.asarray(outcomes, dtype=float)
    if values.size == 0:
        raise ValueError("no comparisons to compute a win rate from")
    if ((values < 0) | (values > 1)).any():
        raise ValueError("outcomes must lie in [0, 1] (1: a better, 0: b better, 0.5: tie)")
    return float(values.mean())


class RewardModelJudge:
    """The better reply is the one a reward model (`alignloop train reward`) scores higher;
    identical replies are ties and are not scored."""

    def __init__(self, model_folder: str | Path, batch_size: int = 16):
        self.model_folder = Path(model_folder)
        self.batch_size = batch_size
        self.name = f"reward-model:{self.model_folder}"

    def compare(
        self,
        prompts: Sequence[list[ChatMessage]],
        replies_a: Sequence[str],
        replies_b: Sequence[str],
    ) -> np.ndarray:
        from alignloop.evaluate.reward import reward_scores

        outcomes, differ = ties_and_differing(prompts, replies_a, replies_b)
        if differ:
            asked = [prompts[i] for i in differ]
            scores = reward_scores(
                self.model_folder,
                asked + asked,
                [replies_a[i] for i in differ] + [replies_b[i] for i in differ],
                self.batch_size,
            )
            outcomes[differ] = outcomes_from_scores(scores[: len(differ)], scores[len(differ) :])
        return outcomes
