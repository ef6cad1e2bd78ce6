"""The model a run trains: one causal LM (full weights, or a frozen base with LoRA adapters)
plus scalar heads (reward, value) on its last hidden state, as one `nn.Module` so that
`accelerate` can wrap it (DDP, FSDP, DeepSpeed) and every forward goes through the wrapper.

One base, many adapters: with LoRA, PPO's policy, value and reward model are three adapters on
one frozen base and the reference is the base with adapters disabled, so a run holds the base
weights once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import Tensor, nn

from alignloop.backends.models import load_causal_lm, load_tokenizer, version_info
from alignloop.errors import ConfigError

POLICY = "default"  # peft's name for the first adapter
HEAD_FILE = "heads.safetensors"


class TrainModel(nn.Module):
    """A causal LM with optional LoRA adapters and scalar heads.

    `forward(input_ids, attention_mask, outputs, start)` returns a dict with, for each name in
    `outputs`, either the LM's logits at positions `start`.. ("logits", under the policy adapter)
    or a head's scalar per token ([batch, T], under the adapter of the same name if any)."""

    def __init__(self, lm: nn.Module, peft_model: nn.Module | None = None):
        super().__init__()
        self.lm = lm
        self.peft = peft_model  # the same modules as lm, seen through peft (None: full weights)
        self.heads = nn.ModuleDict()
        self.trainable: set[str] = set()  # adapters that learn

    @property
    def hidden_size(self) -> int:
        return self.lm.config.hidden_size

    def add_head(self, name: str, state: dict[str, Tensor] | None = None) -> nn.Linear:
        head = nn.Linear(self.hidden_size, 1)
        with torch.no_grad():
            if state is None:
                head.weight.normal_(std=1 / (self.hidden_size + 1) ** 0.5)
                head.bias.zero_()
            else:
                head.load_state_dict(state)
        self.heads[name] = head.to(next(self.lm.parameters()).device)
        return self.heads[name]

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        outputs: Sequence[str] = ("logits",),
        start: int = 0,
    ) -> dict[str, Tensor]:
        result = {}
        for name in outputs:
            with self.adapter(POLICY if name == "logits" else name):
                if name == "logits":
                    result[name] = lm_logits(self.lm, input_ids, attention_mask, start)
                else:
                    hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask)
                    head = self.heads[name]
                    result[name] = head(hidden.last_hidden_state.to(head.weight.dtype)).squeeze(-1)
        return result

    @property
    def backbone(self) -> nn.Module:
        return self.lm.get_decoder()

    def adapters(self) -> list[str]:
        return list(self.peft.peft_config) if self.peft is not None else []

    @contextmanager
    def adapter(self, name: str) -> Iterator[None]:
        """Run under adapter `name` where it exists (else the policy's); learning adapters keep
        learning (peft's set_adapter would freeze the inactive ones)."""
        if self.peft is None or len(self.adapters()) == 1:
            yield
            return
        previous = self.peft.active_adapter
        self.peft.set_adapter(name if name in self.adapters() else POLICY)
        self._restore_trainable()
        try:
            yield
        finally:
            self.peft.set_adapter(previous)
            self._restore_trainable()

    def _restore_trainable(self) -> None:
        for param_name, param in self.lm.named_parameters():
            if "lora_" in param_name:
                param.requires_grad_(any(f".{a}." in param_name for a in self.trainable))

    @contextmanager
    def reference(self) -> Iterator[None]:
        """The frozen base: adapters disabled (LoRA runs only)."""
        if self.peft is None:
            raise RuntimeError("a full-weights run keeps its reference as a separate model")
        with self.peft.disable_adapter():
            yield


def lm_logits(lm: nn.Module, input_ids: Tensor, attention_mask: Tensor, start: int = 0) -> Tensor:
    """Logits at positions `start`.. only: the LM head (vocabulary-wide, a fifth of a small
    model's compute and most of its activation memory) skips the prompt when only replies count."""
    extra = {"logits_to_keep": input_ids.shape[1] - start} if start > 0 else {}
    return lm(input_ids=input_ids, attention_mask=attention_mask, **extra).logits


def lora_model(lm: nn.Module, r: int, alpha: int, dropout: float, targets: list[str] | str):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, task_type="CAUSAL_LM"
    )
    return get_peft_model(lm, config)


def build_train_model(
    model: str,
    lora: bool,
    lora_r: int = 16,
    lora_alpha: int = 32,
    lora_dropout: float = 0.0,
    lora_targets: list[str] | str = "all-linear",
    gradient_checkpointing: bool = False,
) -> tuple[TrainModel, object]:
    """The starting model (a base, or a trained version with its adapters merged) with a new
    LoRA adapter (`lora`) or all weights learning; returns it and its tokenizer."""
    lm = load_causal_lm(model)
    tokenizer = load_tokenizer(model)
    if gradient_checkpointing:
        lm.gradient_checkpointing_enable()
        lm.config.use_cache = False
    if not lora:
        return TrainModel(lm), tokenizer
    peft_model = lora_model(lm, lora_r, lora_alpha, lora_dropout, lora_targets)
    train_model = TrainModel(lm, peft_model)
    train_model.trainable = {POLICY}
    return train_model, tokenizer


def add_adapter_from(train_model: TrainModel, name: str, folder: Path, trainable: bool) -> None:
    """Load another version's LoRA adapter (and its head) into this model under `name`."""
    if train_model.peft is None:
        raise ConfigError("adapters can be added only to a LoRA run (lora: true)", "lora")
    info = version_info(folder)
    if info.get("weights") != "adapter":
        raise ConfigError(f"{folder} holds full weights, not a LoRA adapter", "reward_model")
    train_model.peft.load_adapter(str(folder), adapter_name=name, is_trainable=trainable)
    if trainable:
        train_model.trainable.add(name)
    head = load_heads(folder).get(info.get("head", "reward"))
    if head is not None:
        train_model.add_head(name, head).requires_grad_(trainable)
    train_model._restore_trainable()


def load_heads(folder: Path) -> dict[str, dict[str, Tensor]]:
    """{head name: Linear state dict} saved beside a version."""
    from safetensors.torch import load_file

    path = Path(folder) / HEAD_FILE
    if not path.exists():
        return {}
    flat = load_file(str(path))
    heads: dict[str, dict[str, Tensor]] = {}
    for key, value in flat.items():
        head, param = key.rsplit(".", 1)
        heads.setdefault(head, {})[param] = value
    return heads


def save_version(
    train_model: TrainModel, tokenizer, out: Path, info: dict, heads: Sequence[str] = ()
) -> None:
    """Write the adapter (or full weights), the named heads, the tokenizer and alignloop.json."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    if train_model.peft is not None:
        train_model.peft.save_pretrained(str(out), selected_adapters=[POLICY])
    else:
        train_model.lm.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    flat = {
        f"{name}.{param}": tensor.detach().float().cpu().contiguous()
        for name in heads
        for param, tensor in train_model.heads[name].state_dict().items()
    }
    if flat:
        save_file(flat, str(out / HEAD_FILE))
    weights = "adapter" if train_model.peft is not None else "full"
    (out / "alignloop.json").write_text(json.dumps({**info, "weights": weights}, indent=2))


def load_reward_model(folder: str | Path) -> TrainModel:
    """A trained reward model (adapter merged into its base, or full weights) with its head."""
    model = TrainModel(load_causal_lm(str(folder)))
    heads = load_heads(Path(folder))
    model.add_head("reward", heads.get("reward"))
    return model
