"""The training objectives of SPEC.md §3, each a small function on plain tensors.

Conventions:
- `logits` are [batch, T, vocab] and already aligned with `labels` [batch, T]: the logits at
  position t score the token at t. `shift_for_next_token` aligns a causal LM's outputs.
- `mask` is 1 on the tokens that count (response tokens; prompt and padding are 0).
- Sequence log-probabilities are sums over the masked tokens.
- Losses return the batch mean as a scalar tensor unless they say otherwise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def shift_for_next_token(logits: Tensor, input_ids: Tensor, mask: Tensor) -> tuple[Tensor, ...]:
    """A causal LM's logits at t predict token t+1: drop the last logit and the first token."""
    return logits[:, :-1], input_ids[:, 1:], mask[:, 1:]


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def token_logprobs(logits: Tensor, labels: Tensor) -> Tensor:
    """log p(label_t) at every position, [batch, T]. Labels under the mask may be anything
    (e.g. -100); they are clamped to a valid index and their values are meaningless."""
    labels = labels.clamp(min=0)
    picked = logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    # One sequence at a time: the normaliser's temporaries are [T, vocab], not [batch, T, vocab].
    norm = torch.stack([torch.logsumexp(row.float(), dim=-1) for row in logits])
    return picked.float() - norm


def sequence_logprobs(logits: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    """Sum of log p over the masked (response) tokens of each sequence, [batch]."""
    return (token_logprobs(logits, labels) * mask.to(torch.float32)).sum(-1)


def sft_loss(logits: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    """Mean token cross-entropy over the masked tokens (the assistant turns)."""
    return -masked_mean(token_logprobs(logits, labels), mask)


def ptx_loss(logits: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    """The pretraining-mix term of PPO-ptx: the negative log-likelihood of plain text."""
    return sft_loss(logits, labels, mask)


def pairwise_loss(chosen_rewards: Tensor, rejected_rewards: Tensor, margin: float = 0.0) -> Tensor:
    """Bradley-Terry: -log sigmoid(r_w - r_l - margin), batch mean."""
    return -F.logsigmoid(chosen_rewards - rejected_rewards - margin).mean()


def kway_ranking_loss(rewards: Tensor, mask: Tensor | None = None, margin: float = 0.0) -> Tensor:
    """InstructGPT's K-way loss. `rewards` [batch, K] are ordered best first; `mask` [batch, K]
    marks real entries where K varies. Each element averages -log sigmoid(r_i - r_j - margin)
    over its C(K, 2) pairs i better than j; the result is the mean over elements."""
    k = rewards.shape[1]
    if mask is None:
        mask = torch.ones_like(rewards, dtype=torch.bool)
    mask = mask.bool()
    better, worse = torch.triu_indices(k, k, offset=1, device=rewards.device)
    diffs = rewards[:, better] - rewards[:, worse] - margin  # [batch, C(K,2)]
    valid = (mask[:, better] & mask[:, worse]).to(rewards.dtype)
    per_element = -(F.logsigmoid(diffs) * valid).sum(-1) / valid.sum(-1).clamp(min=1.0)
    has_pair = valid.sum(-1) > 0
    return per_element[has_pair].mean() if has_pair.any() else rewards.sum() * 0.0


def binary_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Thumbs as a classifier: binary cross-entropy (label 1 = liked), batch mean."""
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


def dpo_loss(
    chosen_logps: Tensor,
    rejected_logps: Tensor,
    ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor,
    beta: float = 0.1,
) -> Tensor:
    """-log sigmoid(beta * [(log pi(y_w) - log ref(y_w)) - (log pi(y_l) - log ref(y_l))])."""
    margin = (chosen_logps - ref_chosen_logps) - (rejected_logps - ref_rejected_logps)
    return -F.logsigmoid(beta * margin).mean()


def kto_loss(
    logps: Tensor,
    ref_logps: Tensor,
    desirable: Tensor,
    mismatched_logps: Tensor,
    mismatched_ref_logps: Tensor,
    beta: float = 0.1,
    lambda_d: float = 1.0,
    lambda_u: float = 1.0,
) -> Tensor:
    """KTO on unpaired thumbs. r = log pi(y|x) - log ref(y|x); the baseline z is the batch
    mean of r over mismatched (x, y') pairs, floored at 0 and detached. Desirable examples
    cost lambda_d (1 - sigmoid(beta (r - z))), undesirable lambda_u (1 - sigmoid(beta (z - r)))."""
    z = (mismatched_logps - mismatched_ref_logps).mean().clamp(min=0).detach()
    r = logps - ref_logps
    desirable = desirable.bool()
    losses = torch.where(
        desirable,
        lambda_d * (1 - torch.sigmoid(beta * (r - z))),
        lambda_u * (1 - torch.sigmoid(beta * (z - r))),
    )
    return losses.mean()


def cringe_loss(
    logits: Tensor,
    labels: Tensor,
    mask: Tensor,
    negative: Tensor,
    alpha: float = 1.0,
    k: int = 1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """CRINGE (BB3x): cross-entropy on positive tokens; on each negative token y_t, a positive
    token j is sampled from the softmax over the top-k logits other than y_t, and
    alpha * softplus(s[y_t] - s[j]) pushes y_t below j. `negative` is [batch] (per sequence)
    or [batch, T] (per token). Sum of both terms over the number of target tokens."""
    mask = mask.to(torch.float32)
    negative = negative.bool()
    if negative.dim() == 1:
        negative = negative.unsqueeze(1).expand_as(labels)
    ce = -token_logprobs(logits, labels)
    contrast = _cringe_contrast(logits.float(), labels.clamp(min=0), k, generator)
    per_token = torch.where(negative, alpha * contrast, ce)
    return (per_token * mask).sum() / mask.sum().clamp(min=1.0)


def _cringe_contrast(logits: Tensor, labels: Tensor, k: int, generator) -> Tensor:
    """softplus(s[y] - s[j]) with j sampled from the top-k logits excluding y."""
    top_values, top_indices = logits.topk(k + 1, dim=-1)  # [B, T, k+1]
    is_label = top_indices == labels.unsqueeze(-1)
    # Drop y where it is among the top k+1, else drop the (k+1)-th: k candidates remain.
    drop = torch.where(is_label.any(-1, keepdim=True), is_label, _last_position(is_label))
    candidates = top_values.masked_fill(drop, float("-inf"))
    probs = candidates.softmax(-1).detach().reshape(-1, k + 1)
    choice = torch.multinomial(probs, 1, generator=generator).reshape(*labels.shape, 1)
    positive = candidates.gather(-1, choice).squeeze(-1)
    negative = logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return F.softplus(negative - positive)


def _last_position(like: Tensor) -> Tensor:
    last = torch.zeros_like(like)
    last[..., -1] = True
    return last


def kl_shaped_rewards(
    scores: Tensor,
    logprobs: Tensor,
    ref_logprobs: Tensor,
    mask: Tensor,
    beta: float = 0.02,
    score_clip: float | None = None,
) -> Tensor:
    """Per-token PPO rewards [batch, T]: -beta * (log pi - log ref) at every response token,
    plus the (optionally clipped) reward-model score on the last response token."""
    mask = mask.to(logprobs.dtype)
    rewards = -beta * (logprobs - ref_logprobs) * mask
    if score_clip is not None:
        scores = scores.clamp(-score_clip, score_clip)
    last = _last_index(mask)
    rewards[torch.arange(rewards.shape[0]), last] += scores.to(rewards.dtype)
    return rewards


def _last_index(mask: Tensor) -> Tensor:
    """Index of each row's last 1 (0 for an empty row)."""
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    return (positions * (mask > 0)).max(dim=1).values


def gae(
    rewards: Tensor, values: Tensor, mask: Tensor, gamma: float = 1.0, lam: float = 0.95
) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation over left-aligned response tokens, [batch, T] each.

    The value after a sequence's last masked token is 0 (the response ends the episode).
    Returns (advantages, returns) with returns = advantages + values; both are 0 off the mask.
    """
    mask = mask.to(values.dtype)
    advantages = torch.zeros_like(values)
    next_value = torch.zeros_like(values[:, 0])
    next_advantage = torch.zeros_like(values[:, 0])
    for t in reversed(range(values.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        advantage = (delta + gamma * lam * next_advantage) * mask[:, t]
        advantages[:, t] = advantage
        next_value = values[:, t] * mask[:, t]
        next_advantage = advantage
    returns = (advantages + values) * mask
    return advantages, returns


def policy_loss(
    logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, mask: Tensor, clip: float = 0.2
) -> Tensor:
    """PPO's clipped surrogate: mean over tokens of max(-A rho, -A clip(rho, 1-eps, 1+eps))."""
    ratio = torch.exp(logprobs - old_logprobs)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1 - clip, 1 + clip)
    return masked_mean(torch.maximum(unclipped, clipped), mask)


def value_loss(
    values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor, clip: float = 0.2
) -> Tensor:
    """Clipped value loss: 0.5 * mean of max((v - R)^2, (v_clipped - R)^2)."""
    clipped = old_values + (values - old_values).clamp(-clip, clip)
    worst = torch.maximum((values - returns) ** 2, (clipped - returns) ** 2)
    return 0.5 * masked_mean(worst, mask)


def whiten(values: Tensor, mask: Tensor, shift_mean: bool = True) -> Tensor:
    """Normalise advantages over the masked tokens (zero mean, unit variance)."""
    mean = masked_mean(values, mask)
    var = masked_mean((values - mean) ** 2, mask)
    whitened = (values - mean) * torch.rsqrt(var + 1e-8)
    return whitened if shift_mean else whitened + mean
