"""The training core on a tiny random Llama: every trainer lowers its loss, PPO raises a known
reward, CRINGE pushes negatives down, a killed run resumes to the same weights, two processes
compute what one does, and every run leaves a loadable, registered model version."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from alignloop.backends.models import load_tokenizer, resolve_model
from alignloop.errors import AlignloopError, ConfigError, Conflict, InvalidInput
from alignloop.train.config import ALGORITHMS, CringeConfig, PPOConfig
from alignloop.train.encode import encode_chat, encode_completion, truncate
from alignloop.train.run import train

WORDS = ["red", "blue", "green", "cat", "dog", "sun", "moon", "tree"]
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("data")
    rng = random.Random(0)
    words = [rng.choice(WORDS) for _ in range(32)]
    return {
        "sft": write_jsonl(
            folder / "sft.jsonl",
            [
                {
                    "messages": [
                        {"role": "user", "content": f"say {w}"},
                        {"role": "assistant", "content": f"{w} {w}"},
                    ]
                }
                for w in words
            ],
        ),
        "pairs": write_jsonl(
            folder / "pairs.jsonl",
            [{"prompt": f"say {w}", "chosen": w, "rejected": "zzz qqq"} for w in words],
        ),
        "rankings": write_jsonl(
            folder / "rankings.jsonl",
            [
                {"prompt": f"say {w}", "responses": [w, f"{w} ok", "zz", "qqqq"][: 2 + i % 3]}
                for i, w in enumerate(words)
            ],
        ),
        "binary": write_jsonl(
            folder / "thumbs.jsonl",
            [
                {
                    "prompt": f"say {w}",
                    "completion": w if i % 2 == 0 else "zzz",
                    "label": i % 2 == 0,
                }
                for i, w in enumerate(words)
            ],
        ),
        "prompts": write_jsonl(
            folder / "prompts.jsonl", [{"prompt": f"say {w}"} for w in WORDS * 2]
        ),
    }


def config(algo: str, data_file: str, out: Path, **overrides):
    values = {
        "model": "tiny",
        "data": data_file,
        "out": str(out),
        "batch_size": 8,
        "max_steps": 10,
        "learning_rate": 5e-3,
        "device": "cpu",
    } | overrides
    return ALGORITHMS[algo](**values)


def first_and_last(history: list[dict], key: str = "loss") -> tuple[float, float]:
    values = [h[key] for h in history]
    return sum(values[:2]) / 2, sum(values[-2:]) / 2


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("tiny")


# --- encoding ---------------------------------------------------------------------------


def test_only_assistant_turns_are_targets_in_a_multi_turn_chat(tokenizer):
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello there"},
        {"role": "user", "content": "and?"},
        {"role": "assistant", "content": "bye"},
    ]
    encoded = encode_chat(tokenizer, messages)
    targets = tokenizer.decode([t for t, m in zip(encoded.ids, encoded.mask, strict=True) if m])
    assert targets == "hello there<|im_end|>\nbye<|im_end|>\n"
    last = encode_completion(tokenizer, messages[:4], "bye")
    assert tokenizer.decode([t for t, m in zip(last.ids, last.mask, strict=True) if m]) == (
        "bye<|im_end|>\n"
    )


def test_truncation_drops_the_prompt_first(tokenizer):
    encoded = encode_completion(tokenizer, [{"role": "user", "content": "x" * 200}], "short")
    cut = truncate(encoded, 40)
    assert len(cut) == 40
    assert sum(cut.mask) == sum(encoded.mask)  # the whole reply is kept
    assert cut.mask[0] == 0  # one prompt token remains before it


# --- every trainer learns -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("algo", "kind", "extra"),
    [
        ("sft", "sft", {"learning_rate": 1e-2}),
        ("reward", "pairs", {}),
        ("reward", "rankings", {"objective": "rankings"}),
        ("reward", "binary", {"objective": "binary", "learning_rate": 2e-3}),
        ("dpo", "pairs", {}),
        ("kto", "binary", {}),
        ("cringe", "binary", {}),
    ],
)
def test_each_trainer_lowers_its_loss(algo, kind, extra, data, tmp_path):
    result = train(algo, config(algo, data[kind], tmp_path / algo, **extra))
    first, last = first_and_last(result.history)
    assert last < first * 0.9, result.history
    assert (tmp_path / algo / "alignloop.json").exists()


def test_full_weights_dpo_keeps_a_frozen_reference(data, tmp_path):
    result = train(
        "dpo",
        config(
            "dpo", data["pairs"], tmp_path / "full", lora=False, learning_rate=1e-3, max_steps=6
        ),
    )
    first, last = first_and_last(result.history)
    assert last < first
    assert (tmp_path / "full" / "model.safetensors").exists()
    assert json.loads((tmp_path / "full" / "alignloop.json").read_text())["weights"] == "full"


def test_reward_model_is_centred_and_scored_on_held_out_pairs(data, tmp_path):
    result = train("reward", config("reward", data["pairs"], tmp_path / "rm", eval_fraction=0.25))
    assert result.metrics["eval_accuracy"] >= 0.9
    assert "bias_shift" in result.metrics
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "alignloop",
            "evaluate",
            "reward",
            "--model",
            str(tmp_path / "rm"),
            "--data",
            data["pairs"],
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "pairwise accuracy 1.0000 on 32 pairs" in out.stdout
    from alignloop.evaluate.reward import pairwise_accuracy

    hh = write_jsonl(
        tmp_path / "hh.jsonl",
        [
            {
                "chosen": f"\n\nHuman: say {w}\n\nAssistant: {w}",
                "rejected": f"\n\nHuman: say {w}\n\nAssistant: zzz qqq",
            }
            for w in WORDS
        ],
    )
    assert pairwise_accuracy(tmp_path / "rm", hh).pairs == len(WORDS)
    with pytest.raises(ConfigError, match="not a reward model"):
        pairwise_accuracy(resolve_model("tiny").path, hh)


def sequence_logps(model_dir: str, tokenizer, examples: list[tuple[str, str]]) -> torch.Tensor:
    from alignloop.backends.models import load_causal_lm
    from alignloop.train.encode import collate
    from alignloop.train.losses import sequence_logprobs, shift_for_next_token

    lm = load_causal_lm(model_dir).eval()
    batch = collate(
        [encode_completion(tokenizer, [{"role": "user", "content": p}], c) for p, c in examples],
        tokenizer.pad_token_id,
    )
    with torch.no_grad():
        logits = lm(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    return sequence_logprobs(*shift_for_next_token(logits, batch.input_ids, batch.loss_mask))


def test_reply_logprobs_skip_the_prompt_logits_and_match_the_full_forward(tokenizer):
    """The LM head runs only from the first target position; the result must not change."""
    from alignloop.train.algorithms.common import response_logps, response_start
    from alignloop.train.encode import collate
    from alignloop.train.modeling import build_train_model

    model, _ = build_train_model("tiny", lora=True)
    examples = [("a much longer question about the weather today", "sunny"), ("hi", "hello there")]
    batch = collate(
        [encode_completion(tokenizer, [{"role": "user", "content": p}], c) for p, c in examples],
        tokenizer.pad_token_id,
    )
    assert response_start(batch.loss_mask) > 0
    with torch.no_grad():
        windowed = response_logps(model, batch)
    full = sequence_logps(resolve_model("tiny").path, tokenizer, examples)
    torch.testing.assert_close(windowed, full, rtol=1e-5, atol=1e-4)


def test_cringe_lowers_negatives_and_keeps_positives(data, tmp_path, tokenizer):
    rows = [json.loads(line) for line in Path(data["binary"]).read_text().splitlines()]
    positives = [(r["prompt"], r["completion"]) for r in rows if r["label"]]
    negatives = [(r["prompt"], r["completion"]) for r in rows if not r["label"]]
    before_pos = sequence_logps(resolve_model("tiny").path, tokenizer, positives)
    before_neg = sequence_logps(resolve_model("tiny").path, tokenizer, negatives)
    train("cringe", config("cringe", data["binary"], tmp_path / "cringe", max_steps=12))
    after_pos = sequence_logps(str(tmp_path / "cringe"), tokenizer, positives)
    after_neg = sequence_logps(str(tmp_path / "cringe"), tokenizer, negatives)
    assert after_neg.mean() < before_neg.mean() - 1.0
    assert after_pos.mean() >= before_pos.mean()


# --- PPO ----------------------------------------------------------------------------------


def test_ppo_raises_a_known_reward(data, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    cfg = PPOConfig(
        model="tiny",
        data=data["prompts"],
        out=str(tmp_path / "ppo"),
        reward_model="ppo_rewards:lowercase_share",
        batch_size=16,
        max_steps=24,
        learning_rate=1e-2,
        ppo_epochs=4,
        kl_beta=0.0,
        max_new_tokens=8,
        device="cpu",
        seed=1,
    )
    result = train("ppo", cfg)
    scores = [h["score"] for h in result.history]
    assert sum(scores[-6:]) / 6 > sum(scores[:3]) / 3 + 0.1, scores


def test_ppo_shares_one_base_between_policy_value_reward_and_reference(data, tmp_path):
    from alignloop.train.algorithms.ppo import PPO
    from alignloop.train.loop import Trainer

    train("reward", config("reward", data["pairs"], tmp_path / "rm", max_steps=4))
    cfg = PPOConfig(
        model="tiny",
        data=data["prompts"],
        out=str(tmp_path / "ppo"),
        reward_model=str(tmp_path / "rm"),
        batch_size=4,
        max_steps=2,
        ptx_data=write_jsonl(tmp_path / "text.jsonl", [{"text": "once upon a time"}]),
        gamma_ptx=1.0,
        max_new_tokens=6,
        device="cpu",
    )
    trainer = Trainer(cfg, PPO())
    base_params = sum(p.numel() for n, p in trainer.model.lm.named_parameters() if "lora_" not in n)
    from alignloop.backends.models import load_causal_lm

    assert base_params == sum(p.numel() for p in load_causal_lm("tiny").parameters())
    assert set(trainer.model.adapters()) == {"default", "reward", "value"}
    value_head = trainer.model.heads["value"].weight.detach().clone()
    reward_head = trainer.model.heads["reward"].weight.detach().clone()
    assert torch.equal(value_head, reward_head)  # the value starts as the reward model
    result = trainer.run()
    assert {"score", "kl", "ptx_loss", "value_loss"} <= set(result.metrics)
    assert torch.equal(trainer.model.heads["reward"].weight, reward_head)  # frozen
    assert not torch.equal(trainer.model.heads["value"].weight, value_head)  # learned


def test_ppo_refuses_a_reward_model_of_another_base(data, tmp_path):
    train("reward", config("reward", data["pairs"], tmp_path / "rm", max_steps=1))
    other = tmp_path / "other"
    (other).mkdir()
    info = json.loads((tmp_path / "rm" / "alignloop.json").read_text()) | {"start": "smollm2"}
    for f in (tmp_path / "rm").iterdir():
        if f.is_file():
            (other / f.name).write_bytes(f.read_bytes())
    (other / "alignloop.json").write_text(json.dumps(info))
    cfg = PPOConfig(
        model="tiny",
        data=data["prompts"],
        out=str(tmp_path / "p"),
        reward_model=str(other),
        batch_size=4,
        max_steps=1,
        device="cpu",
    )
    with pytest.raises(ConfigError, match="same model"):
        train("ppo", cfg)


# --- resume, processes, registry, CLI ------------------------------------------------------


def cli(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "alignloop", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=check,
        cwd=ROOT,
    )


def adapter_weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "adapter_model.safetensors"))


def test_a_killed_run_resumes_to_the_same_weights(data, tmp_path):
    args = [
        "train",
        "cringe",
        "--model",
        "tiny",
        "--data",
        data["binary"],
        "--batch-size",
        "8",
        "--grad-accum",
        "2",
        "--max-steps",
        "6",
        "--save-every",
        "2",
        "--learning-rate",
        "5e-3",
        "--device",
        "cpu",
    ]
    cli(*args, "--out", str(tmp_path / "straight"))
    killed = cli(
        *args,
        "--out",
        str(tmp_path / "killed"),
        env={"ALIGNLOOP_KILL_AFTER_STEP": "3"},
        check=False,
    )
    assert killed.returncode == -9
    assert not (tmp_path / "killed" / "alignloop.json").exists()
    resumed = cli(*args, "--out", str(tmp_path / "killed"))
    assert "resumed from" in resumed.stdout + resumed.stderr
    straight, again = adapter_weights(tmp_path / "straight"), adapter_weights(tmp_path / "killed")
    assert straight.keys() == again.keys()
    for name in straight:
        torch.testing.assert_close(again[name], straight[name], rtol=0, atol=1e-6)
    steps = [json.loads(line)["step"] for line in (tmp_path / "killed" / "metrics.jsonl").open()]
    assert steps == [1, 2, 3, 4, 5, 6]


@pytest.mark.slow
def test_two_processes_compute_the_same_losses_as_one(data, tmp_path):
    losses = {}
    for n in (1, 2):
        out = tmp_path / f"p{n}"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nproc_per_node",
                str(n),
                "-m",
                "alignloop",
                "train",
                "reward",
                "--model",
                "tiny",
                "--data",
                data["pairs"],
                "--out",
                str(out),
                "--batch-size",
                "8",
                "--max-steps",
                "4",
                "--learning-rate",
                "1e-3",
                "--device",
                "cpu",
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        losses[n] = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").open()]
    assert len(losses[1]) == 4
    assert losses[2] == pytest.approx(losses[1], abs=1e-5)


def test_versions_are_registered_with_lineage_and_served(data, tmp_path):
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from alignloop.backends.base import GenerationParams
    from alignloop.backends.transformers_backend import TransformersBackend
    from alignloop.store.db import make_engine
    from alignloop.store.models import ModelVersion

    db = str(tmp_path / "store.db")
    sft = train("sft", config("sft", data["sft"], tmp_path / "sft", max_steps=2, db=db))
    dpo = train(
        "dpo",
        config(
            "dpo",
            data["pairs"],
            tmp_path / "dpo",
            max_steps=2,
            db=db,
            model=str(tmp_path / "sft"),
            name="dpo-on-sft",
        ),
    )
    with Session(make_engine(db)) as session:
        rows = {v.name: v for v in session.scalars(select(ModelVersion))}
    assert rows["dpo-on-sft"].parent_id == rows["sft-sft"].id == sft.version_id
    assert dpo.version_id == rows["dpo-on-sft"].id
    assert rows["dpo-on-sft"].algorithm == "dpo"
    assert rows["dpo-on-sft"].weights == "adapter"
    assert rows["dpo-on-sft"].data_version.startswith("sha256:")
    assert rows["dpo-on-sft"].config["beta"] == 0.1
    assert "loss" in rows["dpo-on-sft"].metrics
    backend = TransformersBackend(resolve_model(str(tmp_path / "dpo")))
    assert backend.model_name == "dpo-on-sft"
    [[reply]] = backend.generate(
        [[{"role": "user", "content": "say red"}]],
        GenerationParams(max_new_tokens=4, temperature=0),
    )
    assert reply.finish_reason in ("stop", "length")
    with pytest.raises(Conflict, match="dpo-on-sft"):
        train("dpo", config("dpo", data["pairs"], tmp_path / "again", db=db, name="dpo-on-sft"))
    assert not (tmp_path / "again").exists()  # refused before any work


def test_cli_trains_from_a_yaml_config_with_flag_overrides(data, tmp_path):
    yaml_file = tmp_path / "sft.yaml"
    yaml_file.write_text(
        f"model: tiny\ndata: {data['sft']}\nout: {tmp_path / 'out'}\n"
        "batch_size: 4\nmax_steps: 50\ndevice: cpu\n"
    )
    run = cli("train", "sft", "--config", str(yaml_file), "--max-steps", "2")
    assert "trained sft: 2 steps" in run.stderr
    assert json.loads((tmp_path / "out" / "alignloop.json").read_text())["steps"] == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch-size", "6", "--grad-accum", "4"], "must be a multiple of grad_accum"),
        (["--lora-r", "0"], "option 'lora_r'"),
        (["--batch-size", "64"], "fewer than batch_size 64"),
    ],
)
def test_cli_bad_options_name_the_field(data, tmp_path, args, message):
    run = cli(
        "train",
        "sft",
        "--model",
        "tiny",
        "--data",
        data["sft"],
        "--out",
        str(tmp_path / "o"),
        *args,
        check=False,
    )
    assert run.returncode == 2
    assert message in " ".join(run.stderr.split())


def test_bad_training_rows_are_named_before_any_training(tmp_path):
    bad = write_jsonl(
        tmp_path / "bad.jsonl",
        [{"prompt": "hi", "chosen": "a", "rejected": "b"}, {"prompt": "hi", "chosen": ""}],
    )
    with pytest.raises(InvalidInput, match=r"row 2: chosen"):
        train("dpo", config("dpo", bad, tmp_path / "o"))
    assert not (tmp_path / "o").exists()


def test_every_yaml_config_loads_and_names_every_option():
    from alignloop.config import load_config

    for algo, cls in ALGORITHMS.items():
        path = ROOT / "configs" / "train" / f"{algo}.yaml"
        cfg = load_config(cls, path)
        keys = {
            line.split(":")[0]
            for line in path.read_text().splitlines()
            if line and not line.startswith("#")
        }
        assert keys == set(cls.model_fields), algo
        assert cfg == cls(**{k: getattr(cfg, k) for k in cls.model_fields})


def test_ppo_config_needs_lora():
    with pytest.raises(ValueError, match="lora"):
        PPOConfig(data="p.jsonl", out="o", reward_model="rm", lora=False)
    assert issubclass(ConfigError, AlignloopError)
    assert CringeConfig(data="d", out="o").alpha == 1.0
