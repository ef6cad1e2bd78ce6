"""SafetyMix on DiaSafety (SPEC.md §2): which cleaning method lets the embedding classifier learn
from a population that is half trolls?

DiaSafety's train rows are handed out to simulated users (alignloop.simulate.safetymix): half
the utterances to helpers, half to trolls of one type (noise 0.8). Each cleaning method of
alignloop.curate.trust decides what to keep (k = 3 folds), then the embedding classifier (MiniLM
embeddings, the logistic head and settings of `alignloop safety train --kind embedding`) is
trained on what was kept and scored on DiaSafety's clean val. Reports the val error (%) and the
precision/recall of flagging troll utterances, per method and troll type, averaged over seeds,
beside the published table (Ju et al. 2022, on another dataset). Master trolls get the rows a
k-fold classifier trained on the clean labels finds hardest.

alignloop's own method's thresholds were chosen on seeds 0 and 1 of the "troll" type; the
reported seeds start at 100.

    python benchmarks/safetymix.py [--seeds 5] [--types troll,master,...] [--methods ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data" / "diasafety"
FIRST_SEED = 100
PUBLISHED = {  # error (%) on the clean test set, SPEC.md §2
    "oracle": {"troll": 8, "master": 5, "safe": 6, "unsafe": 5, "lazy": 6, "gaslight": 5},
    "standard": {"troll": 31, "master": 29, "safe": 21, "unsafe": 22, "lazy": 16, "gaslight": 21},
    "per_example_removal": {
        "troll": 19, "master": 18, "safe": 20, "unsafe": 21, "lazy": 8, "gaslight": 31
    },
    "per_user_removal": {
        "troll": 23, "master": 23, "safe": 20, "unsafe": 21, "lazy": 13, "gaslight": 38
    },
    "per_user_and_example": {
        "troll": 12, "master": 11, "safe": 10, "unsafe": 10, "lazy": 8, "gaslight": 28
    },
    "soft_purr": {"troll": 15, "master": 14, "safe": 17, "unsafe": 21, "lazy": 9, "gaslight": 30},
}  # fmt: skip


def embedded(split: str, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of a DiaSafety split, embedded once and cached."""
    path = cache / f"diasafety-{split}.npz"
    if path.exists():
        saved = np.load(path)
        return saved["x"], saved["y"]
    from alignloop.safety.config import SafetyTrainConfig
    from alignloop.safety.data import load_safety_examples
    from alignloop.safety.embedding import EmbeddingClassifier, MiniLMEncoder

    config = SafetyTrainConfig(data="-", out="-")
    examples = load_safety_examples(DATA / f"{split}.json")
    encoder = MiniLMEncoder(config.max_length, config.score_batch_size)
    untrained = EmbeddingClassifier(
        encoder, np.zeros(0), 0.0, config.features, config.context_turns
    )
    x = untrained.featurize([(e.context, e.response) for e in examples])
    y = np.array([e.label for e in examples], dtype=int)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=x, y=y)
    return x, y


def head_trainer():
    """fit(x, y) -> a fitted head, with the settings of `safety train --kind embedding`."""
    from alignloop.safety.config import SafetyTrainConfig
    from alignloop.safety.embedding import fit_head

    config = SafetyTrainConfig(data="-", out="-")
    return lambda x, y: fit_head(x, y, config)


def fit_predict_on(features: np.ndarray, fit):
    """fit_predict for alignloop.curate.trust, remembering its answers: the published methods
    all start from the same k-fold predictions, computed once per population."""
    memo: dict[bytes, np.ndarray] = {}

    def fit_predict(train, labels, predict):
        key = b"|".join(np.ascontiguousarray(a).tobytes() for a in (train, labels, predict))
        if key not in memo:
            if len(np.unique(labels)) < 2:
                memo[key] = np.full(len(predict), float(labels[0]))
            else:
                memo[key] = fit(features[train], labels).predict_proba(features[predict])[:, 1]
        return memo[key]

    return fit_predict


def hardness(x: np.ndarray, y: np.ndarray, fit) -> np.ndarray:
    """1 - the clean k-fold classifier's probability of the true label (higher = harder)."""
    from alignloop.curate.trust import agreement, kfold_probabilities

    probs = kfold_probabilities(fit_predict_on(x, fit), y, k=3, seed=0)
    return 1 - agreement(probs, y)


def run_one(method, pop, features, fit_predict, x_val, y_val, fit) -> dict[str, float]:
    from alignloop.curate.trust import clean

    if method == "oracle":
        keep, labels, flagged = ~pop.is_troll, pop.labels, pop.is_troll
    else:
        result = clean(method, pop.labels, pop.users, fit_predict)
        keep, labels, flagged = result.keep, result.labels, result.flagged
    error = _error(features[keep], labels[keep], x_val, y_val, fit)
    found = (flagged & pop.is_troll).sum()
    return {
        "error": 100 * error,
        "troll_precision": float(found / max(flagged.sum(), 1)),
        "troll_recall": float(found / pop.is_troll.sum()),
    }


def _error(x, y, x_val, y_val, fit) -> float:
    if len(np.unique(y)) < 2:  # everything kept carries one label: a constant classifier
        return float((y_val != y[0]).mean()) if len(y) else 0.5
    return float(1 - fit(x, y).score(x_val, y_val))


def main() -> None:
    from alignloop.curate.trust import METHODS
    from alignloop.simulate.safetymix import TROLL_TYPES, simulate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--types", default=",".join(TROLL_TYPES))
    parser.add_argument("--methods", default=",".join(["oracle", *METHODS]))
    parser.add_argument("--cache", default=str(HERE / "results" / "cache"))
    parser.add_argument("--out", default=str(HERE / "results" / "safetymix.json"))
    args = parser.parse_args()
    if not DATA.exists():
        sys.exit(f"skipped: {DATA} is missing (the benchmark reads ../shared/data)")
    started = time.time()
    x, y = embedded("train", Path(args.cache))
    x_val, y_val = embedded("val", Path(args.cache))
    fit = head_trainer()
    hard = hardness(x, y, fit)
    helpers_only = 100 * _error(x, y, x_val, y_val, fit)
    print(f"all train rows, true labels: error {helpers_only:.1f}%", flush=True)
    table: dict[str, dict[str, dict[str, float]]] = {}
    for troll_type in args.types.split(","):
        runs: dict[str, list[dict[str, float]]] = {}
        for seed in range(FIRST_SEED, FIRST_SEED + args.seeds):
            pop = simulate(y, troll_type, seed=seed, hardness=hard)
            features = x[pop.index]
            shared = fit_predict_on(features, fit)
            for method in args.methods.split(","):
                result = run_one(method, pop, features, shared, x_val, y_val, fit)
                runs.setdefault(method, []).append(result)
        for method, results in runs.items():
            table.setdefault(method, {})[troll_type] = _mean(results)
        print(troll_type, {m: round(table[m][troll_type]["error"], 1) for m in runs}, flush=True)
    report = {
        "data": "DiaSafety train -> simulated users; error on DiaSafety val",
        "classifier": "MiniLM embedding + logistic head (safety train --kind embedding defaults)",
        "seeds": list(range(FIRST_SEED, FIRST_SEED + args.seeds)),
        "all_rows_true_labels_error": helpers_only,
        "results": table,
        "published_error": PUBLISHED,
        "targets": _targets(table),
        "seconds": round(time.time() - started, 1),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print_table(table)
    print(json.dumps(report["targets"], indent=2))


def _mean(results: list[dict[str, float]]) -> dict[str, float]:
    keys = results[0]
    return {k: float(np.mean([r[k] for r in results])) for k in keys} | {
        "error_sd": float(np.std([r["error"] for r in results]))
    }


def _targets(table) -> dict[str, object]:
    """Every troll type within 3 points of oracle removal; gaslight better than standard."""
    if "oracle" not in table or "alignloop" not in table:
        return {}
    ours, oracle = table["alignloop"], table["oracle"]
    gaps = {t: ours[t]["error"] - oracle[t]["error"] for t in ours}
    result: dict[str, object] = {"gap_to_oracle": gaps, "all_within_3": max(gaps.values()) <= 3}
    if "gaslight" in ours and "standard" in table:
        result["gaslight_beats_standard"] = (
            ours["gaslight"]["error"] < table["standard"]["gaslight"]["error"]
        )
    return result


def print_table(table) -> None:
    types = list(next(iter(table.values())))
    print(f"\n{'error % (P/R of trolls)':28}" + "".join(f"{t:>18}" for t in types))
    for method, row in table.items():
        cells = [
            f"{row[t]['error']:5.1f} ({row[t]['troll_precision']:.2f}/{row[t]['troll_recall']:.2f})"
            for t in types
        ]
        print(f"{method:28}" + "".join(f"{c:>18}" for c in cells))


if __name__ == "__main__":
    main()
