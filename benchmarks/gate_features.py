"""Would a bigger encoder make a better input stage for the gate? Frozen features of each
encoder, a logistic head on the gate's lone user turns, and the share of red-team turns it
replaces at the false-fire budget the benchmark's gate is calibrated to.

    python benchmarks/gate_features.py [--smollm2-layers 10,20,30] [--gate FOLDER]

Training rows: the lone user turns of the gate's multi-task data (`safety_recipes.py`'s, built
if absent): every safe one, a seeded sample of the unsafe ones. The head's threshold is set on
the calibration sets of `safety_recipes.py` (at most --max-false-fire of the 100 chatterbot
and 100 TruthfulQA calibration questions fire); reported are the red-team calibration turns it
replaces (`tpr_cal`), the ROC AUC there, and the share of each evaluation set it replaces at
that threshold (no evaluation prompt is trained on or calibrates). `--gate FOLDER` adds a
trained gate classifier's input stage (the same lone turns, no head) as the reference.
Encoding is forward-only; SmolLM2's 30 layers cost about 1,000 s on one core here.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np

import safety_recipes as recipes
from common import device_name

HERE = Path(__file__).resolve().parent
EVALUATION_SETS = (("hh-rlhf", 200), ("diasafety", 200), ("adversarial", None), ("chatterbot", 200))


def lone_turns(gate_data: Path, unsafe_rows: int, seed: int) -> tuple[list[str], list[int]]:
    """The gate data's lone user turns: every safe one, `unsafe_rows` unsafe ones (seeded)."""
    rows = [json.loads(line) for line in gate_data.read_text(encoding="utf-8").splitlines()]
    turns = [r for r in rows if r["task"] == "input"]
    safe = [r["response"] for r in turns if r["label"] == "safe"]
    unsafe = [r["response"] for r in turns if r["label"] == "unsafe"]
    random.Random(seed).shuffle(unsafe)
    unsafe = unsafe[:unsafe_rows]
    return safe + unsafe, [0] * len(safe) + [1] * len(unsafe)


def measured_sets(args) -> dict[str, list[str]]:
    """The calibration sets and the evaluation sets, each as its last user turns."""
    from alignloop.evaluate.prompts import load_prompt_set

    sets = {s.name: s.prompts for s in recipes.calibration_sets(args)}
    sets |= {name: load_prompt_set(name, limit=n).prompts for name, n in EVALUATION_SETS}
    return {name: [p[-1]["content"] for p in prompts] for name, prompts in sets.items()}


def minilm_features(texts: list[str]) -> dict[str, np.ndarray]:
    """all-MiniLM-L6-v2 mean-pooled, L2-normalised: the embedding classifier's encoder."""
    from alignloop.safety.embedding import MiniLMEncoder

    return {"minilm-mean": MiniLMEncoder(max_length=128, batch_size=64).embed(texts)}


def smollm2_features(texts: list[str], layers: list[int]) -> dict[str, np.ndarray]:
    """SmolLM2-135M-Instruct's hidden states after each of `layers`: mean-pooled and at the
    last token."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from alignloop.backends.models import resolve_model

    path = resolve_model("smollm2").path
    tokenizer = AutoTokenizer.from_pretrained(path, padding_side="right")
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    found: dict[str, np.ndarray] = {}
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # little padding
    for start in range(0, len(order), 32):
        rows = order[start : start + 32]
        encoded = tokenizer(
            [texts[i] for i in rows],
            padding=True,
            truncation=True,
            max_length=128,
            return_tensors="pt",
        )
        with torch.inference_mode():
            states = model.model(**encoded, output_hidden_states=True).hidden_states
        last = encoded["attention_mask"].sum(1) - 1
        for layer in layers:
            hidden = states[layer].float()
            for name, vectors in (
                (f"smollm2-L{layer}-mean", mean_pool(hidden, encoded)),
                (f"smollm2-L{layer}-last", hidden[torch.arange(len(rows)), last]),
            ):
                found.setdefault(name, np.zeros((len(texts), hidden.shape[-1]), np.float32))
                found[name][rows] = vectors.numpy()
    return found


def mean_pool(hidden, encoded):
    mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1)


def replaced_shares(p_unsafe, sets: dict[str, list[str]], max_false_fire: float) -> dict:
    """The threshold where at most `max_false_fire` of the benign calibration turns fire, and
    the share of every set replaced at it. `p_unsafe(texts)` scores a list of turns."""
    from alignloop.safety.train import ranking_auc

    benign = np.concatenate(
        [p_unsafe(sets[n]) for n in ("chatterbot-calibration", "truthfulqa-calibration")]
    )
    red_team = p_unsafe(sets["adversarial-calibration"])
    allowed = int(max_false_fire * len(benign))
    threshold = float(np.sort(benign)[-allowed - 1]) + 1e-9
    scores = np.concatenate([benign, red_team])
    result = {
        "auc_cal": ranking_auc(scores, [False] * len(benign) + [True] * len(red_team)),
        "tpr_cal": float((red_team >= threshold).mean()),
        "threshold": threshold,
    }
    return result | {
        name: float((p_unsafe(sets[name]) >= threshold).mean()) for name, _ in EVALUATION_SETS
    }


def head_scores(features: np.ndarray, index: dict[str, int], train: tuple[list[str], list[int]]):
    """A logistic head (standardised features, balanced classes) fitted on `train`."""
    from sklearn.linear_model import LogisticRegression

    texts, labels = train
    rows = features[[index[t] for t in texts]]
    mean, scale = rows.mean(0), rows.std(0) + 1e-6
    head = LogisticRegression(C=0.05, class_weight="balanced", max_iter=3000)
    head.fit((rows - mean) / scale, labels)

    def p_unsafe(batch: list[str]) -> np.ndarray:
        return head.predict_proba((features[[index[t] for t in batch]] - mean) / scale)[:, 1]

    return p_unsafe


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=str(HERE / "results" / "safety-recipes"))
    parser.add_argument("--out", default=str(HERE / "results" / "gate_features.json"))
    parser.add_argument("--smollm2-layers", default="10,20,30", help="Hidden layers read, 1-30.")
    parser.add_argument(
        "--unsafe-rows", type=int, default=2500, help="Unsafe lone turns trained on."
    )
    parser.add_argument("--max-false-fire", type=float, default=0.03)
    parser.add_argument("--gate", help="A trained gate classifier folder: its input stage too.")
    parser.add_argument(
        "--encoders",
        default="minilm,smollm2",
        help="Frozen encoders measured, joined by ',' (minilm, smollm2; '' for none: --gate only).",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.calibration_size, args.benign_limit = 100, 200  # safety_recipes.py's defaults

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    train = lone_turns(
        recipes.GATE_DATA["multitask-compliance"](work, recipes.held_out_openers(200)),
        args.unsafe_rows,
        args.seed,
    )
    sets = measured_sets(args)
    texts = sorted(set(train[0]) | {t for turns in sets.values() for t in turns})
    index = {text: i for i, text in enumerate(texts)}
    results, seconds = {}, {}
    encoders = {
        "minilm": minilm_features,
        "smollm2": lambda t: smollm2_features(t, [int(x) for x in args.smollm2_layers.split(",")]),
    }
    chosen = [name for name in args.encoders.split(",") if name]
    if unknown := set(chosen) - set(encoders):
        raise SystemExit(
            f"--encoders: unknown {', '.join(sorted(unknown))}; use {', '.join(encoders)}"
        )
    for name in chosen:
        encode = encoders[name]
        started = time.time()
        features = encode(texts)
        seconds[name] = round(time.time() - started, 1)
        for key, matrix in features.items():
            results[key] = replaced_shares(
                head_scores(matrix, index, train), sets, args.max_false_fire
            )
            print(key, json.dumps(results[key]), flush=True)
    if args.gate:
        from alignloop.safety.classifiers import load_classifier

        gate = load_classifier(args.gate)
        results["gate-input-stage"] = replaced_shares(
            lambda batch: gate.score_batch([([], t) for t in batch]), sets, args.max_false_fire
        )
        print("gate-input-stage", json.dumps(results["gate-input-stage"]), flush=True)
    report = {
        "device": device_name(),
        "train_rows": len(train[0]),
        "unsafe_train_rows": sum(train[1]),
        "encode_seconds": seconds,
        "max_false_fire": args.max_false_fire,
        "results": results,
    }
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
