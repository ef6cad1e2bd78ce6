"""SafetyMix (SPEC.md §2, Ju et al. 2022): a labelled safety dataset handed out to simulated
users, half the utterances to helpers and half to trolls of one type.

Users get round(N(10, 2)) utterances each (at least one). Helpers label correctly. Trolls of
each type:

| type     | their utterances                     | the labels they give          |
|----------|--------------------------------------|-------------------------------|
| troll    | standard                             | a share `noise` flipped       |
| master   | the hardest (lowest clean margin)    | a share `noise` flipped       |
| lazy     | standard                             | random                        |
| safe     | standard                             | always safe (0)               |
| unsafe   | standard                             | always unsafe (1)             |
| gaslight | unsafe ones only                     | always safe (0)               |

Trolls take half of their pool (all examples; the hardest half; the unsafe ones) and helpers
as many from the rest, so the two halves are equal and helpers still see both classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TROLL_TYPES = ("troll", "master", "lazy", "safe", "unsafe", "gaslight")


@dataclass
class Population:
    index: np.ndarray  # [n] rows of the source dataset handed out
    users: np.ndarray  # [n] user id of each utterance
    labels: np.ndarray  # [n] the label the user gave (1 = unsafe)
    is_troll: np.ndarray  # [n] bool

    @property
    def troll_users(self) -> np.ndarray:
        return np.unique(self.users[self.is_troll])


def simulate(
    truth: np.ndarray,
    troll_type: str,
    seed: int,
    noise: float = 0.8,
    hardness: np.ndarray | None = None,
    mean_size: float = 10.0,
    sd_size: float = 2.0,
) -> Population:
    """Hand out the rows of a dataset with true labels `truth` (1 = unsafe) to simulated users.
    `hardness` (higher = harder, e.g. 1 - the clean k-fold margin) picks master trolls' rows."""
    if troll_type not in TROLL_TYPES:
        raise ValueError(f"troll_type: unknown {troll_type!r}; pick one of {TROLL_TYPES}")
    rng = np.random.default_rng(seed)
    pool = _troll_pool(truth, troll_type, hardness)
    n_troll = min(len(truth) // 2, len(pool) // 2)
    troll_rows = rng.choice(pool, n_troll, replace=False)
    rest = np.setdiff1d(np.arange(len(truth)), troll_rows)
    helper_rows = rng.choice(rest, n_troll, replace=False)
    helper_users = _assign_users(len(helper_rows), rng, mean_size, sd_size, first=0)
    troll_users = _assign_users(n_troll, rng, mean_size, sd_size, first=int(helper_users.max()) + 1)
    troll_labels = _troll_labels(truth[troll_rows], troll_type, noise, rng)
    return Population(
        index=np.concatenate([helper_rows, troll_rows]),
        users=np.concatenate([helper_users, troll_users]),
        labels=np.concatenate([truth[helper_rows], troll_labels]).astype(int),
        is_troll=np.concatenate([np.zeros(n_troll, bool), np.ones(n_troll, bool)]),
    )


def _troll_pool(truth: np.ndarray, troll_type: str, hardness: np.ndarray | None) -> np.ndarray:
    if troll_type == "gaslight":
        return np.flatnonzero(truth == 1)
    if troll_type == "master":
        if hardness is None:
            raise ValueError("hardness: master trolls need a hardness score per row")
        return np.argsort(-hardness)[: len(truth) // 2]
    return np.arange(len(truth))


def _assign_users(
    n: int, rng: np.random.Generator, mean: float, sd: float, first: int
) -> np.ndarray:
    """User ids for n utterances, in runs of round(N(mean, sd)) (at least 1)."""
    ids, user = [], first
    while len(ids) < n:
        size = max(1, round(rng.normal(mean, sd)))
        ids.extend([user] * size)
        user += 1
    return np.array(ids[:n])


def _troll_labels(
    truth: np.ndarray, troll_type: str, noise: float, rng: np.random.Generator
) -> np.ndarray:
    if troll_type in ("troll", "master"):
        flip = rng.random(len(truth)) < noise
        return np.where(flip, 1 - truth, truth)
    if troll_type == "lazy":
        return rng.integers(0, 2, len(truth))
    if troll_type == "unsafe":
        return np.ones(len(truth), int)
    return np.zeros(len(truth), int)  # safe and gaslight
