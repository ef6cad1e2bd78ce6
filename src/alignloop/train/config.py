"""One typed config per algorithm. Every option is a field with its help text; the YAML files in
configs/train/ and the flags of `alignloop train <algo>` map onto the fields one to one.
Defaults follow SPEC.md §3 (InstructGPT, DPO, KTO and BB3x papers)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from alignloop.config import Settings


class TrainConfig(Settings):
    model: str = Field(
        "smollm2",
        description="Model to start from: 'smollm2', 'tiny', a model folder, a hub id, or a "
        "version folder an earlier run wrote.",
    )
    data: str = Field(
        ...,
        description="Training data: .jsonl(.gz), .json, .parquet or a "
        "datasets folder (formats in README, 'Training data').",
    )
    out: str = Field(..., description="Folder for checkpoints and the trained version.")
    db: str | None = Field(
        None, description="Store to register the trained version in (file path or URL)."
    )
    name: str | None = Field(
        None, description="Name of the model version (default: '<algo>-<out folder name>')."
    )
    parent: str | None = Field(
        None, description="Registered version this one improves on (default: found from model)."
    )
    limit: int | None = Field(None, ge=1, description="Use at most this many examples.")
    skip_bad_rows: bool = Field(False, description="Leave bad data rows out instead of stopping.")
    max_length: int = Field(512, ge=8, description="Tokens per sequence (prompt cut first).")
    lora: bool = Field(True, description="Train LoRA adapters on a frozen base (else all weights).")
    lora_r: int = Field(16, ge=1, description="LoRA rank.")
    lora_alpha: int = Field(32, ge=1, description="LoRA scaling numerator (scale = alpha / r).")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the LoRA input.")
    lora_targets: str = Field(
        "all-linear",
        description="Modules that get adapters: 'all-linear' or comma-separated "
        "names (q_proj,v_proj).",
    )
    learning_rate: float = Field(1e-4, gt=0, description="Peak AdamW learning rate.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    warmup_steps: int = Field(0, ge=0, description="Linear warm-up steps, then linear decay.")
    max_grad_norm: float | None = Field(1.0, gt=0, description="Clip gradients to this norm.")
    batch_size: int = Field(
        8,
        ge=1,
        description="Examples per optimizer step, over all processes together (the "
        "result does not depend on how many processes share it).",
    )
    grad_accum: int = Field(1, ge=1, description="Micro-batches per optimizer step.")
    epochs: float = Field(1.0, gt=0, description="Passes over the data (fractions allowed).")
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps.")
    save_every: int = Field(50, ge=1, description="Checkpoint every N optimizer steps.")
    keep_checkpoints: int = Field(2, ge=1, description="Checkpoints kept on disk (newest).")
    resume: bool = Field(True, description="Continue from the newest checkpoint in out/.")
    log_every: int = Field(1, ge=1, description="Print and record metrics every N steps.")
    seed: int = Field(0, description="Seed of data order, initialisation and sampling.")
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = Field(
        "auto", description="'auto': bf16 on a GPU that has it, else full precision."
    )
    gradient_checkpointing: bool = Field(False, description="Recompute activations (less memory).")
    device: str | None = Field(None, description="Force a device (cpu); default: accelerate's.")

    @model_validator(mode="after")
    def _accum_divides(self) -> TrainConfig:
        if self.batch_size % self.grad_accum:
            raise ValueError(
                f"batch_size: {self.batch_size} must be a multiple of grad_accum {self.grad_accum}"
            )
        return self

    def targets(self) -> list[str] | str:
        names = [t.strip() for t in self.lora_targets.split(",") if t.strip()]
        return "all-linear" if names == ["all-linear"] else names


class SFTConfig(TrainConfig):
    """Supervised fine-tuning on `messages` rows: cross-entropy on assistant turns only."""

    learning_rate: float = Field(2e-4, gt=0, description="Peak AdamW learning rate.")


class RewardConfig(TrainConfig):
    """A reward model: a scalar head on the LM, from pairs, K-way rankings or thumbs."""

    objective: Literal["pairs", "rankings", "binary"] = Field(
        "pairs",
        description="Data kind and loss: Bradley-Terry pairs, InstructGPT K-way "
        "rankings, or a liked/disliked classifier.",
    )
    margin: float = Field(
        0.0,
        ge=0,
        description="Margin m in log sigmoid(r_w - r_l - m); a "
        "row's own 'margin' field adds to it.",
    )
    eval_fraction: float = Field(
        0.0, ge=0, lt=1, description="Hold out this share of the data and report accuracy on it."
    )
    center: bool = Field(
        True,
        description="After training, shift the bias so that the mean reward of the "
        "preferred (best-ranked or liked) replies is 0.",
    )
    learning_rate: float = Field(5e-5, gt=0, description="Peak AdamW learning rate.")


class DPOConfig(TrainConfig):
    """Direct preference optimisation on pairs; the reference is the starting model."""

    beta: float = Field(0.1, gt=0, description="DPO's beta (strength of the KL anchor).")
    learning_rate: float = Field(5e-5, gt=0, description="Peak AdamW learning rate.")


class KTOConfig(TrainConfig):
    """KTO on unpaired thumbs (`prompt`, `completion`, `label`)."""

    beta: float = Field(0.1, gt=0, description="KTO's beta.")
    lambda_d: float = Field(1.0, gt=0, description="Weight of desirable (liked) examples.")
    lambda_u: float = Field(1.0, gt=0, description="Weight of undesirable (disliked) examples.")
    learning_rate: float = Field(5e-5, gt=0, description="Peak AdamW learning rate.")


class CringeConfig(TrainConfig):
    """CRINGE: cross-entropy on liked replies, token-level contrast on disliked ones."""

    alpha: float = Field(1.0, ge=0, description="Weight of the contrastive term.")
    k: int = Field(1, ge=1, description="Top-k tokens a positive is sampled from.")
    learning_rate: float = Field(5e-5, gt=0, description="Peak AdamW learning rate.")


class PPOConfig(TrainConfig):
    """PPO(-ptx): rollouts from the policy scored by a trained reward model, KL to the start."""

    data: str = Field(
        ...,
        description="Prompts: rows with 'prompt' (a string or messages); extra fields are ignored.",
    )
    reward_model: str = Field(
        ...,
        description="Version folder of a trained reward model, or "
        "'module:function' naming a Python scorer f(prompt, reply) -> float.",
    )
    ptx_data: str | None = Field(None, description="Plain-text rows for the pretraining mix.")
    gamma_ptx: float = Field(
        0.0, ge=0, description="Weight of the pretraining mix (InstructGPT: 27.8; 0 is plain PPO)."
    )
    kl_beta: float = Field(0.02, ge=0, description="Per-token KL penalty to the reference.")
    clip: float = Field(0.2, gt=0, description="PPO's ratio clip epsilon.")
    value_clip: float = Field(0.2, gt=0, description="Clip of the value update.")
    vf_coef: float = Field(0.1, ge=0, description="Weight of the value loss.")
    gamma: float = Field(1.0, ge=0, le=1, description="GAE discount.")
    lam: float = Field(0.95, ge=0, le=1, description="GAE lambda.")
    ppo_epochs: int = Field(1, ge=1, description="Passes over each rollout batch.")
    score_clip: float | None = Field(5.0, gt=0, description="Clip reward-model scores to +-this.")
    whiten_advantages: bool = Field(True, description="Normalise advantages per batch.")
    max_new_tokens: int = Field(64, ge=1, description="Longest rollout reply.")
    temperature: float = Field(1.0, gt=0, description="Rollout temperature (InstructGPT: 1).")
    top_p: float = Field(1.0, gt=0, le=1, description="Rollout nucleus mass.")
    learning_rate: float = Field(1e-5, gt=0, description="Peak AdamW learning rate.")

    @model_validator(mode="after")
    def _needs_lora(self) -> PPOConfig:
        if not self.lora:
            raise ValueError(
                "lora: ppo runs with lora: true (policy, value, reward and reference "
                "share one base); full-weights PPO is not built yet"
            )
        return self


ALGORITHMS: dict[str, type[TrainConfig]] = {
    "sft": SFTConfig,
    "reward": RewardConfig,
    "dpo": DPOConfig,
    "kto": KTOConfig,
    "cringe": CringeConfig,
    "ppo": PPOConfig,
}
