"""PPO-ptx (InstructGPT) on one frozen base with adapters: the policy learns in its own
adapter, the value function in another initialised from the reward model's adapter and head,
the reward model is a frozen third, and the reference is the base with adapters disabled.

Each step: roll out the policy on a batch of prompts (through the generation backend, batched
with the KV cache), score the replies, shape per-token rewards with the KL to the reference,
estimate advantages by GAE, then take `ppo_epochs` clipped policy and value updates, with the
pretraining mix's log-likelihood when `gamma_ptx` > 0.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from alignloop.backends.base import GenerationParams
from alignloop.backends.models import model_source, version_info
from alignloop.backends.transformers_backend import TransformersBackend
from alignloop.errors import ConfigError
from alignloop.train.algorithms.common import (
    AlgorithmBase,
    last_token_values,
    response_start,
    window,
)
from alignloop.train.config import PPOConfig
from alignloop.train.data import load_examples
from alignloop.train.encode import Batch, Encoded, Movable, collate, encode_text
from alignloop.train.losses import (
    gae,
    kl_shaped_rewards,
    masked_mean,
    policy_loss,
    ptx_loss,
    token_logprobs,
    value_loss,
    whiten,
)
from alignloop.train.modeling import POLICY, TrainModel, add_adapter_from, lm_logits

REWARD, VALUE = "reward", "value"


@dataclass
class Rollout(Movable):
    prompts: list  # the prompt messages, for rule-based rewards
    rows: Batch  # prompt + reply, right-padded; loss_mask marks the reply
    ptx: Batch | None = None
    old_logps: Tensor | None = None  # [rows, T-1], aligned with the shifted mask
    old_values: Tensor | None = None
    advantages: Tensor | None = None
    returns: Tensor | None = None
    scores: Tensor | None = None
    kl: Tensor | None = None
    start: int = 0  # logits, log-probs and values are kept from this position (see _score)


class PPO(AlgorithmBase):
    name = "ppo"

    def setup(self, model: TrainModel, tokenizer, config: PPOConfig) -> None:
        super().setup(model, tokenizer, config)
        self.inner_epochs = config.ppo_epochs
        self.reward_fn = _reward_function(config.reward_model)
        if self.reward_fn is None:
            folder = Path(config.reward_model)
            _check_same_base(folder, config.model)
            add_adapter_from(model, REWARD, folder, trainable=False)
            add_adapter_from(model, VALUE, folder, trainable=True)
        else:
            model.peft.add_adapter(VALUE, model.peft.peft_config[POLICY])
            model.trainable.add(VALUE)
            model.add_head(VALUE)
            model._restore_trainable()
        self.backend = TransformersBackend.for_model(model.lm, tokenizer, "ppo-policy")
        self.params = GenerationParams(
            max_new_tokens=config.max_new_tokens,
            temperature=config.temperature,
            top_p=config.top_p,
        )

    def load(self, config: PPOConfig, tokenizer):
        rows = load_examples(config.data, "prompts", config.limit, config.skip_bad_rows)
        self.ptx_items = []
        if config.ptx_data and config.gamma_ptx > 0:
            texts = load_examples(config.ptx_data, "text", skip_bad=config.skip_bad_rows)
            self.ptx_items = [self.fit(encode_text(tokenizer, t.text)) for t in texts]
        return [row.prompt for row in rows], []

    def collate(self, items) -> list:
        return list(items)

    @torch.no_grad()
    def prepare(self, model: TrainModel, prompts: list) -> Rollout:
        model.eval()
        with model.adapter(POLICY):
            generated = self.backend.generate_tokens(prompts, self.params)
        model.train()
        device = next(model.parameters()).device
        rows = collate([_rollout_row(p, r) for p, r in generated], self.pad_id).to(device)
        rollout = Rollout(prompts, rows, self._ptx_batch(len(prompts), device))
        self._score(model, rollout, [r for _, r in generated])
        return rollout

    def _ptx_batch(self, size: int, device) -> Batch | None:
        if not self.ptx_items:
            return None
        picks = torch.randint(len(self.ptx_items), (size,)).tolist()
        return collate([self.ptx_items[i] for i in picks], self.pad_id).to(device)

    def _score(self, model: TrainModel, rollout: Rollout, replies: list[list[int]]) -> None:
        rows, cfg = rollout.rows, self.config
        start = rollout.start = response_start(rows.loss_mask)
        labels, mask = window(rows, start)
        out = model(rows.input_ids, rows.attention_mask, ("logits", VALUE), start)
        rollout.old_logps = token_logprobs(out["logits"][:, :-1], labels)
        rollout.old_values = out[VALUE][:, start:-1].float()
        with model.reference():
            ref_logits = lm_logits(model.lm, rows.input_ids, rows.attention_mask, start)
        ref_logps = token_logprobs(ref_logits[:, :-1], labels)
        rollout.scores = self._reward(model, rollout, replies)
        rewards = kl_shaped_rewards(
            rollout.scores, rollout.old_logps, ref_logps, mask, cfg.kl_beta, cfg.score_clip
        )
        advantages, rollout.returns = gae(rewards, rollout.old_values, mask, cfg.gamma, cfg.lam)
        rollout.advantages = whiten(advantages, mask) if cfg.whiten_advantages else advantages
        rollout.kl = ((rollout.old_logps - ref_logps) * mask).sum(-1)

    def _reward(self, model: TrainModel, rollout: Rollout, replies: list[list[int]]) -> Tensor:
        rows = rollout.rows
        if self.reward_fn is not None:
            texts = self.tokenizer.batch_decode(replies, skip_special_tokens=True)
            values = [
                float(self.reward_fn(p, t)) for p, t in zip(rollout.prompts, texts, strict=True)
            ]
            return torch.tensor(values, device=rows.input_ids.device)
        values = model(rows.input_ids, rows.attention_mask, (REWARD,))[REWARD]
        return last_token_values(values, rows.attention_mask).float()

    def loss(self, model, rollout: Rollout):
        cfg, rows, start = self.config, rollout.rows, rollout.start
        batch = rows if rollout.ptx is None else _stack(rows, rollout.ptx, self.pad_id)
        first = start if rollout.ptx is None else 0  # the pretraining rows need every logit
        out = model(batch.input_ids, batch.attention_mask, ("logits", VALUE), first)
        n, end = len(rows), rows.input_ids.shape[1] - 1
        labels, mask = window(rows, start)
        logps = token_logprobs(out["logits"][:n, start - first : end - first], labels)
        values = out[VALUE][:n, start:end].float()
        pg = policy_loss(logps, rollout.old_logps, rollout.advantages, mask, cfg.clip)
        vf = value_loss(values, rollout.old_values, rollout.returns, mask, cfg.value_clip)
        loss = pg + cfg.vf_coef * vf
        metrics = {
            "score": float(rollout.scores.mean()),
            "kl": float(rollout.kl.mean()),
            "policy_loss": float(pg.detach()),
            "value_loss": float(vf.detach()),
            "reply_tokens": float(mask.sum(-1).float().mean()),
            "clip_fraction": float(
                masked_mean(
                    ((logps - rollout.old_logps).exp() - 1).abs().gt(cfg.clip).float(), mask
                )
            ),
        }
        if rollout.ptx is not None:
            ptx_rows = Batch(batch.input_ids[n:], batch.attention_mask[n:], batch.loss_mask[n:])
            ptx = ptx_loss(out["logits"][n:, :-1], *window(ptx_rows, 0))
            loss = loss + cfg.gamma_ptx * ptx
            metrics["ptx_loss"] = float(ptx.detach())
        return loss, metrics


def _rollout_row(prompt: list[int], reply: list[int]) -> Encoded:
    return Encoded([*prompt, *reply], [0] * len(prompt) + [1] * len(reply))


def _stack(first: Batch, second: Batch, pad_id: int) -> Batch:
    width = max(first.input_ids.shape[1], second.input_ids.shape[1])

    def pad(t: Tensor, value: int) -> Tensor:
        return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=value)

    return Batch(
        torch.cat([pad(first.input_ids, pad_id), pad(second.input_ids, pad_id)]),
        torch.cat([pad(first.attention_mask, 0), pad(second.attention_mask, 0)]),
        torch.cat([pad(first.loss_mask, 0), pad(second.loss_mask, 0)]),
    )


def _reward_function(spec: str):
    """'module:function' names a Python scorer f(prompt messages, reply text) -> float."""
    if Path(spec).is_dir() or ":" not in spec:
        return None
    module, _, attr = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"reward_model {spec!r}: cannot import it ({exc})", "reward_model"
        ) from exc


def _check_same_base(folder: Path, model: str) -> None:
    info = version_info(folder)
    if not info or "reward" not in info.get("heads", []):
        raise ConfigError(
            f"reward_model {folder} is not a reward model trained by 'alignloop train reward'",
            "reward_model",
        )
    if info.get("start") != model_source(model):
        raise ConfigError(
            f"reward_model {folder} was trained from {info.get('start')!r} but the policy starts "
            f"from {model_source(model)!r}; PPO shares one base, so train the reward model from "
            "the same model",
            "reward_model",
        )
