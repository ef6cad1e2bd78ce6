"""One PPO update (rollout + learning) of alignloop against TRL 1.12's experimental PPOTrainer.

Same model (SmolLM2-135M-Instruct), same prompts (HH-RLHF harmless first turns of at most
PROMPT_TOKENS tokens), same batch of prompts, same reply length limit, sampling at temperature 1
until EOS, one PPO epoch over one mini-batch, LoRA r=16 on the policy.

- alignloop: one frozen base; the policy, the value function and the reward model are adapters on
  it and the reference is the base with adapters disabled (one copy of the base weights).
- TRL: its four models. The policy with the same LoRA (peft_config), and separate reference,
  reward and value models (AutoModelForSequenceClassification); TRL trains the value model's
  full weights.

Each side runs in a fresh subprocess, so its peak memory (max RSS on a CPU, CUDA max allocated
on a GPU) is its own. Time per update is averaged over the updates after the first (warm-up).
TRL 1.12 and TRL 1.16 (our test pin) cannot share an environment, so TRL runs in its own venv,
made on first use under benchmarks/results/trl-1.12 with the torch pin of constraints.txt.
Target: alignloop at most 0.5x TRL's peak memory and at most 0.7x its time per update.

    python benchmarks/ppo_vs_trl.py [--updates 4] [--batch-size 8] [--reply-tokens 32]
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
ROOT = HERE.parent
HH = ROOT.parent / "shared" / "data" / "hh-rlhf" / "harmless-base-dev.jsonl.gz"
TRL_VERSION = "1.12.0"
PROMPT_TOKENS = 64
LORA = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.0, "target_modules": "all-linear"}
LEARNING_RATE = 1e-5
# glibc raises its mmap threshold as large blocks are freed, after which freed tensors stay in
# the heap and max RSS counts allocator fragmentation (differently shaped batches each step)
# rather than memory in use. A fixed threshold returns large blocks to the system on free, for
# both sides alike, so max RSS follows live memory.
ALLOCATOR = {"MALLOC_MMAP_THRESHOLD_": str(1 << 20)}


def short_prompts(limit: int) -> list[list[dict]]:
    """HH first human turns whose chat-formatted prompt fits PROMPT_TOKENS tokens."""
    from alignloop.backends.models import load_tokenizer
    from alignloop.train.data import parse_pairs

    tokenizer = load_tokenizer("smollm2")
    prompts = []
    with gzip.open(HH, "rt") as f:
        for line in f:
            try:
                first = parse_pairs(json.loads(line)).prompt[:1]
            except ValueError:
                continue
            ids = tokenizer.apply_chat_template(first, add_generation_prompt=True, tokenize=True)
            if len(_ids(ids)) <= PROMPT_TOKENS:
                prompts.append(first)
            if len(prompts) == limit:
                return prompts
    return prompts


def _ids(encoded) -> list[int]:
    return (
        encoded["input_ids"] if isinstance(encoded, dict) or hasattr(encoded, "keys") else encoded
    )


def tiny_reward_model(folder: Path, prompts: list) -> Path:
    """An alignloop reward model (one step on made-up pairs): PPO's cost does not depend on
    how good the reward is, only on its shape (adapter + head on the same base)."""
    from alignloop.train.config import RewardConfig
    from alignloop.train.run import train

    pairs = folder / "rm_pairs.jsonl"
    pairs.write_text(
        "".join(
            json.dumps({"prompt": p, "chosen": "I can't help with that.", "rejected": "Sure."})
            + "\n"
            for p in prompts[:8]
        )
    )
    out = folder / "rm"
    config = RewardConfig(
        model="smollm2",
        data=str(pairs),
        out=str(out),
        batch_size=8,
        max_steps=1,
        lora_r=LORA["r"],
        lora_alpha=LORA["lora_alpha"],
        save_every=10**6,
        resume=False,
    )
    train("reward", config)
    return out


def run_alignloop(folder: Path, args) -> dict:
    from alignloop.train.config import PPOConfig
    from alignloop.train.run import train

    stamps, replies = [], []

    def on_step(step: int, total: int, metrics: dict) -> None:
        stamps.append(time.perf_counter())
        replies.append(metrics.get("reply_tokens", 0.0))

    config = PPOConfig(
        model="smollm2",
        data=str(folder / "prompts.jsonl"),
        reward_model=str(folder / "rm"),
        out=str(folder / "al-ppo"),
        batch_size=args.batch_size,
        max_steps=args.updates,
        max_new_tokens=args.reply_tokens,
        temperature=1.0,
        ppo_epochs=1,
        lora_r=LORA["r"],
        lora_alpha=LORA["lora_alpha"],
        learning_rate=LEARNING_RATE,
        save_every=10**6,
        resume=False,
    )
    train("ppo", config, on_step=on_step)
    return _timing(stamps) | {"mean_reply_tokens": sum(replies) / len(replies)}


def run_trl(folder: Path, args) -> dict:
    """Runs inside the TRL 1.12 venv: no alignloop imports here."""
    os.environ["TRL_EXPERIMENTAL_SILENCE"] = "1"
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
        TrainerCallback,
    )
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    path = args.model_path
    tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left")
    prompts = [json.loads(x)["prompt"] for x in (folder / "prompts.jsonl").read_text().splitlines()]
    rows = [
        {"input_ids": _ids(tokenizer.apply_chat_template(p, add_generation_prompt=True))}
        for p in prompts
    ]
    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32

    def scorer():
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, dtype=dtype)
        model.config.pad_token_id = tokenizer.pad_token_id
        return model

    stamps: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, *_, **__):
            stamps.append(time.perf_counter())

    config = PPOConfig(
        output_dir=str(folder / "trl-ppo"),
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=1,
        num_mini_batches=1,
        num_ppo_epochs=1,
        total_episodes=args.batch_size * args.updates,
        response_length=args.reply_tokens,
        temperature=1.0,
        stop_token="eos",
        learning_rate=LEARNING_RATE,
        num_sample_generations=0,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
        bf16=torch.cuda.is_available(),
    )
    trainer = PPOTrainer(
        args=config,
        processing_class=tokenizer,
        model=AutoModelForCausalLM.from_pretrained(path, dtype=dtype),
        ref_model=AutoModelForCausalLM.from_pretrained(path, dtype=dtype),
        reward_model=scorer(),
        value_model=scorer(),
        train_dataset=Dataset.from_list(rows),
        peft_config=LoraConfig(**LORA, task_type="CAUSAL_LM"),
    )
    trainer.add_callback(Clock())
    trainer.train()
    return _timing(stamps)


def _timing(stamps: list[float]) -> dict:
    if len(stamps) < 2:
        raise RuntimeError("need at least 2 updates to time one after the warm-up")
    return {"seconds_per_update": (stamps[-1] - stamps[0]) / (len(stamps) - 1)}


def trl_python(venv: Path) -> Path:
    """The TRL 1.12 venv's python, made on first use with the torch pin."""
    python = venv / "bin" / "python"
    if python.exists():
        return python
    print(f"making {venv} with trl=={TRL_VERSION} (once)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    wheels = ["--find-links", "/opt/wheels"] if Path("/opt/wheels").is_dir() else []
    pip = [str(python), "-m", "pip", "install", "-q", "-c", str(ROOT / "constraints.txt")]
    subprocess.run([*pip, *wheels, f"trl=={TRL_VERSION}", "peft"], check=True)
    return python


def measure(python: Path, side: str, folder: Path, args, model_path: str) -> dict:
    cmd = [str(python), __file__, "--child", side, "--folder", str(folder)]
    cmd += ["--updates", str(args.updates), "--batch-size", str(args.batch_size)]
    cmd += ["--reply-tokens", str(args.reply_tokens), "--model-path", model_path]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **ALLOCATOR}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"{side} failed:\n{out.stderr[-4000:]}")
    return json.loads(line[len("RESULT ") :])


def child(args) -> None:
    run = run_alignloop if args.child == "alignloop" else run_trl
    result = run(Path(args.folder), args)
    print("RESULT " + json.dumps(result | {"peak_memory_mb": peak_memory_mb()}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=4, help="PPO updates per side.")
    parser.add_argument("--batch-size", type=int, default=8, help="Prompts per update.")
    parser.add_argument("--reply-tokens", type=int, default=32, help="Longest rollout reply.")
    parser.add_argument("--trl-venv", default=str(HERE / "results" / f"trl-{TRL_VERSION}"))
    parser.add_argument("--out", default=str(HERE / "results" / "ppo_vs_trl.json"))
    parser.add_argument("--child", choices=["alignloop", "trl"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--model-path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    if not HH.exists():
        sys.exit(f"skipped: {HH} is missing (the benchmark reads ../shared/data)")
    from alignloop.backends.models import resolve_model

    model_path = str(resolve_model("smollm2").path)
    folder = Path(tempfile.mkdtemp(prefix="alignloop-ppo-bench-"))
    prompts = short_prompts(args.batch_size * args.updates)
    (folder / "prompts.jsonl").write_text(
        "".join(json.dumps({"prompt": p}) + "\n" for p in prompts)
    )
    tiny_reward_model(folder, prompts)
    sides = {
        "alignloop": measure(Path(sys.executable), "alignloop", folder, args, model_path),
        "trl": measure(trl_python(Path(args.trl_venv)), "trl", folder, args, model_path),
    }
    for side, measured in sides.items():
        print(side, measured, flush=True)
    report = {
        "model": "smollm2-135m-instruct",
        "trl_version": TRL_VERSION,
        "lora": LORA,
        "batch_size": args.batch_size,
        "reply_tokens": args.reply_tokens,
        "updates": args.updates,
        "device": device_name(),
        "results": sides,
        "time_ratio": sides["alignloop"]["seconds_per_update"] / sides["trl"]["seconds_per_update"],
        "memory_ratio": sides["alignloop"]["peak_memory_mb"] / sides["trl"]["peak_memory_mb"],
        "targets": {"time_ratio": 0.7, "memory_ratio": 0.5},
    }
    report["meets_targets"] = report["time_ratio"] <= 0.7 and report["memory_ratio"] <= 0.5
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
