"""Safety classifiers on DiaSafety: unsafe-class F1, accuracy and scoring throughput.

Trains each kind (profanity, embedding, finetune) on ../shared/data/diasafety/train.json with
`alignloop safety train`, then loads the saved classifier afresh and scores val.json (1,097
rows) in one `score_batch` call: unsafe-F1 and accuracy at P(unsafe) >= 0.5, and messages/s
(for the embedding kind also a second pass, with every text's embedding in the cache).
Targets: embedding unsafe-F1 >= 0.70, finetune >= 0.78. Writes
benchmarks/results/safety_diasafety.json.

    python benchmarks/safety_diasafety.py [--kinds embedding,finetune] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DIASAFETY = HERE.parents[1] / "shared" / "data" / "diasafety"
TARGETS = {"embedding": 0.70, "finetune": 0.78}


def train_command(kind: str, out: Path, args: argparse.Namespace) -> list[str]:
    command = [
        "safety",
        "train",
        "--kind",
        kind,
        "--data",
        str(DIASAFETY / "train.json"),
        "--out",
        str(out),
        "--seed",
        str(args.seed),
        "--max-length",
        str(args.max_length),
    ]
    if kind == "finetune":
        command += ["--epochs", str(args.epochs), "--batch-size", str(args.batch_size)]
        command += ["--learning-rate", str(args.learning_rate)]
    return command


def alignloop(*args: str) -> None:
    """Run the CLI; its progress bar goes to this terminal."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run([sys.executable, "-m", "alignloop", *args], check=True, env=env)


def measure(folder: Path, passes: int) -> dict:
    """Unsafe-F1 and accuracy on val, and messages/s of each scoring pass over it."""
    from alignloop.safety.classifiers import load_classifier
    from alignloop.safety.data import load_safety_examples
    from alignloop.safety.train import classification_metrics

    val = load_safety_examples(DIASAFETY / "val.json")
    pairs = [(e.context, e.response) for e in val]
    classifier = load_classifier(folder)
    rates = []
    for _ in range(passes):
        started = time.perf_counter()
        scores = classifier.score_batch(pairs)
        rates.append(len(pairs) / (time.perf_counter() - started))
    metrics = classification_metrics([bool(e.label) for e in val], scores)
    result = {key: round(value, 4) for key, value in metrics.items()}
    result["messages_per_s"] = round(rates[0], 1)
    if passes > 1:
        result["messages_per_s_cached"] = round(rates[-1], 1)
    return result


def run_kind(kind: str, work: Path, args: argparse.Namespace) -> dict:
    out = work / kind
    shutil.rmtree(out, ignore_errors=True)
    command = train_command(kind, out, args)
    started = time.time()
    alignloop(*command)
    train_seconds = time.time() - started
    manifest = json.loads((out / "safety_classifier.json").read_text())
    result = {
        "command": "alignloop " + " ".join(command),
        "train_seconds": round(train_seconds, 1),
        **measure(out, passes=2 if kind == "embedding" else 1),
        "train_metrics": manifest["metrics"],
        "config": manifest["config"],
    }
    if kind == "finetune":
        result["seconds_per_epoch"] = round(manifest["metrics"]["train_seconds"] / args.epochs, 1)
    if kind in TARGETS:
        result["target_unsafe_f1"] = TARGETS[kind]
        result["meets_target"] = result["unsafe_f1"] >= TARGETS[kind]
    print(kind, json.dumps({k: v for k, v in result.items() if not isinstance(v, dict)}))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=str(HERE / "results" / "safety_diasafety"))
    parser.add_argument("--kinds", default="profanity,embedding,finetune")
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not (DIASAFETY / "train.json").exists():
        sys.exit(f"skipped: {DIASAFETY} is missing (the benchmark reads ../shared/data)")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI does, before torch loads
    import torch

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    machine = {
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "cuda": torch.cuda.is_available(),
        "omp_wait_policy": os.environ["OMP_WAIT_POLICY"],
    }
    results = {kind: run_kind(kind, work, args) for kind in args.kinds.split(",")}
    report = {"data": "DiaSafety train 9,017 rows -> val 1,097 rows", "machine": machine}
    report |= results
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "safety_diasafety.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
