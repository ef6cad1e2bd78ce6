"""Training speed and peak memory of alignloop's SFT, DPO and KTO against TRL's trainers.

Same model (SmolLM2-135M-Instruct, LoRA r=16 on all linear layers), same data (short HH-RLHF
harmless pairs, so that neither side truncates), same batch, same number of steps. Each run is a
fresh subprocess so its peak memory (max RSS, or CUDA max allocated on a GPU) is its own.
Tokens/s = examples/s x the mean tokens per example (the same for both sides), over the steps
after the first (warm-up).

    python benchmarks/train_throughput.py [--steps 6] [--batch-size 4] [--out results.json]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import device_name, peak_memory_mb

HERE = Path(__file__).resolve().parent
HH = HERE.parents[1] / "shared" / "data" / "hh-rlhf" / "harmless-base-dev.jsonl.gz"
MAX_LENGTH = 128
LORA = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.0, "target_modules": "all-linear"}


def short_pairs(limit: int) -> list:
    """HH pairs whose prompt + reply fit MAX_LENGTH tokens for both replies."""
    from alignloop.backends.models import load_tokenizer
    from alignloop.train.data import parse_pairs
    from alignloop.train.encode import encode_completion

    tokenizer = load_tokenizer("smollm2")
    pairs = []
    with gzip.open(HH, "rt") as f:
        for line in f:
            try:
                pair = parse_pairs(json.loads(line))
            except ValueError:
                continue
            lengths = [
                len(encode_completion(tokenizer, pair.prompt, r))
                for r in (pair.chosen, pair.rejected)
            ]
            if max(lengths) <= MAX_LENGTH:
                pairs.append((pair, sum(lengths) / 2))
            if len(pairs) == limit:
                break
    return pairs


def write_data(folder: Path, pairs: list) -> dict[str, float]:
    """The same examples in each trainer's format; returns mean tokens per example."""
    rows = {"sft": [], "pairs": [], "binary": []}
    for pair, _ in pairs:
        rows["sft"].append(
            {"messages": [*pair.prompt, {"role": "assistant", "content": pair.chosen}]}
        )
        rows["pairs"].append(
            {"prompt": pair.prompt, "chosen": pair.chosen, "rejected": pair.rejected}
        )
        rows["binary"].append({"prompt": pair.prompt, "completion": pair.chosen, "label": True})
        rows["binary"].append({"prompt": pair.prompt, "completion": pair.rejected, "label": False})
    for kind, items in rows.items():
        (folder / f"{kind}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items))
    mean = sum(t for _, t in pairs) / len(pairs)
    return {"sft": mean, "dpo": 2 * mean, "kto": mean}  # DPO's example is a pair


def run_alignloop(algo: str, folder: Path, steps: int, batch: int) -> dict:
    from alignloop.train.config import ALGORITHMS
    from alignloop.train.run import train

    data = {"sft": "sft", "dpo": "pairs", "kto": "binary"}[algo]
    stamps = []
    config = ALGORITHMS[algo](
        model="smollm2",
        data=str(folder / f"{data}.jsonl"),
        out=str(folder / f"al-{algo}"),
        batch_size=batch,
        max_steps=steps,
        max_length=MAX_LENGTH,
        lora_r=LORA["r"],
        lora_alpha=LORA["lora_alpha"],
        save_every=10**6,
        resume=False,
        learning_rate=1e-5,
    )
    train(algo, config, on_step=lambda *_: stamps.append(time.perf_counter()))
    return {"seconds_per_step": (stamps[-1] - stamps[0]) / (len(stamps) - 1)}


def run_trl(algo: str, folder: Path, steps: int, batch: int) -> dict:
    os.environ["TRL_EXPERIMENTAL_SILENCE"] = "1"
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, TrainerCallback

    from alignloop.backends.models import load_tokenizer, resolve_model

    path = resolve_model("smollm2").path
    model = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = load_tokenizer("smollm2")
    stamps: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            stamps.append(time.perf_counter())

    common = {
        "output_dir": str(folder / f"trl-{algo}"),
        "per_device_train_batch_size": batch,
        "max_steps": steps,
        "max_length": MAX_LENGTH,
        "learning_rate": 1e-5,
        "report_to": [],
        "save_strategy": "no",
        "logging_steps": 1,
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "use_cpu": not _cuda(),
        "bf16": _cuda(),
    }
    config_cls, trainer_cls, data_file, extra = _trl_classes(algo)
    trainer = trainer_cls(
        model=model,
        args=config_cls(**common, **extra),
        train_dataset=load_dataset("json", data_files=str(folder / data_file), split="train"),
        processing_class=tokenizer,
        peft_config=LoraConfig(**LORA, task_type="CAUSAL_LM"),
    )
    trainer.add_callback(Clock())
    trainer.train()
    return {"seconds_per_step": (stamps[-1] - stamps[0]) / (len(stamps) - 1)}


def _trl_classes(algo: str) -> tuple:
    """TRL's config class, trainer class, data file and extra options for `algo`."""
    if algo == "sft":
        from trl import SFTConfig, SFTTrainer

        return SFTConfig, SFTTrainer, "sft.jsonl", {"assistant_only_loss": False}
    if algo == "dpo":
        from trl import DPOConfig, DPOTrainer

        return DPOConfig, DPOTrainer, "trl_pairs.jsonl", {"beta": 0.1}
    from trl.experimental.kto import KTOConfig, KTOTrainer

    return KTOConfig, KTOTrainer, "trl_binary.jsonl", {"beta": 0.1}


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def trl_formats(folder: Path) -> None:
    """TRL's conversational formats: prompt messages, chosen/rejected/completion messages."""
    pairs = [json.loads(x) for x in (folder / "pairs.jsonl").read_text().splitlines()]
    binary = [json.loads(x) for x in (folder / "binary.jsonl").read_text().splitlines()]

    def reply(text):
        return [{"role": "assistant", "content": text}]

    (folder / "trl_pairs.jsonl").write_text(
        "".join(
            json.dumps(
                {
                    "prompt": p["prompt"],
                    "chosen": reply(p["chosen"]),
                    "rejected": reply(p["rejected"]),
                }
            )
            + "\n"
            for p in pairs
        )
    )
    (folder / "trl_binary.jsonl").write_text(
        "".join(
            json.dumps(
                {"prompt": b["prompt"], "completion": reply(b["completion"]), "label": b["label"]}
            )
            + "\n"
            for b in binary
        )
    )


def child(args) -> None:
    """One measured run in this process; prints its JSON result."""
    run = run_alignloop if args.side == "alignloop" else run_trl
    result = run(args.algo, Path(args.folder), args.steps, args.batch_size)
    print("RESULT " + json.dumps(result | {"peak_memory_mb": peak_memory_mb()}), flush=True)


def measure(side: str, algo: str, folder: Path, steps: int, batch: int) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        "--side",
        side,
        "--algo",
        algo,
        "--folder",
        str(folder),
        "--steps",
        str(steps),
        "--batch-size",
        str(batch),
    ]
    out = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}
    )
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"{side} {algo} failed:\n{out.stderr[-3000:]}")
    return json.loads(line[len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--algos", default="sft,dpo,kto")
    parser.add_argument("--out", default=str(HERE / "results" / "train_throughput.json"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--algo", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    if not HH.exists():
        sys.exit(f"skipped: {HH} is missing (the benchmark reads ../shared/data)")
    folder = Path(tempfile.mkdtemp(prefix="alignloop-bench-"))
    tokens = write_data(folder, short_pairs(limit=args.batch_size * args.steps * 2))
    trl_formats(folder)
    results = {}
    for algo in args.algos.split(","):
        row = {}
        for side in ("alignloop", "trl"):
            measured = measure(side, algo, folder, args.steps, args.batch_size)
            measured["tokens_per_second"] = (
                tokens[algo] * args.batch_size / measured["seconds_per_step"]
            )
            row[side] = measured
            print(algo, side, measured, flush=True)
        row["speed_ratio"] = row["alignloop"]["tokens_per_second"] / row["trl"]["tokens_per_second"]
        row["memory_ratio"] = row["alignloop"]["peak_memory_mb"] / row["trl"]["peak_memory_mb"]
        results[algo] = row
    report = {
        "model": "smollm2-135m-instruct",
        "lora": LORA,
        "max_length": MAX_LENGTH,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "device": device_name(),
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(
        json.dumps(
            {
                k: {
                    "speed_ratio": round(v["speed_ratio"], 3),
                    "memory_ratio": round(v["memory_ratio"], 3),
                }
                for k, v in results.items()
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
