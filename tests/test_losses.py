"""Each loss of SPEC.md §3 against a small hand computation (alignloop.train.losses)."""

from __future__ import annotations

import math

import pytest
import torch

from alignloop.train import losses as L


def logsig(x: float) -> float:
    return -math.log1p(math.exp(-x))


def close(tensor, expected, tol=1e-5):
    assert tensor.shape == torch.Size([]) or tensor.dim() >= 0
    torch.testing.assert_close(
        tensor.float(), torch.as_tensor(expected, dtype=torch.float32), atol=tol, rtol=tol
    )


LOGITS = torch.tensor([[[2.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 3.0, 0.0]]])  # [1, 3, 3]
LABELS = torch.tensor([[0, 2, 1]])


def log_softmax_at(row, index):
    return row[index] - math.log(sum(math.exp(v) for v in row))


def test_token_and_sequence_logprobs_count_only_masked_tokens():
    expected = [log_softmax_at([2, 1, 0], 0), math.log(1 / 3), log_softmax_at([1, 3, 0], 1)]
    close(L.token_logprobs(LOGITS, LABELS)[0], expected)
    mask = torch.tensor([[0, 1, 1]])  # the first token is prompt
    close(L.sequence_logprobs(LOGITS, LABELS, mask), [expected[1] + expected[2]])
    masked_labels = torch.tensor([[-100, 2, 1]])  # ignored labels may be -100
    close(L.sequence_logprobs(LOGITS, masked_labels, mask), [expected[1] + expected[2]])


def test_shift_aligns_a_causal_lms_outputs():
    logits, ids, mask = torch.randn(2, 5, 7), torch.randint(0, 7, (2, 5)), torch.ones(2, 5)
    shifted = L.shift_for_next_token(logits, ids, mask)
    assert [t.shape[1] for t in shifted] == [4, 4, 4]
    assert torch.equal(shifted[1], ids[:, 1:])


def test_sft_loss_is_the_mean_cross_entropy_of_assistant_tokens():
    mask = torch.tensor([[0, 1, 1]])
    expected = -(math.log(1 / 3) + log_softmax_at([1, 3, 0], 1)) / 2
    close(L.sft_loss(LOGITS, LABELS, mask), expected)
    changed = LOGITS.clone()
    changed[0, 0] = torch.tensor([-5.0, 9.0, 3.0])  # the prompt position does not count
    close(L.sft_loss(changed, LABELS, mask), expected)


def test_pairwise_loss_with_and_without_margin():
    chosen, rejected = torch.tensor([1.0, 0.5]), torch.tensor([0.0, 1.5])
    close(L.pairwise_loss(chosen, rejected), -(logsig(1.0) + logsig(-1.0)) / 2)
    close(L.pairwise_loss(chosen, rejected, margin=0.5), -(logsig(0.5) + logsig(-1.5)) / 2)


def test_kway_ranking_loss_averages_all_pairs_of_each_prompt():
    rewards = torch.tensor([[3.0, 2.0, 0.0], [1.0, 0.0, 42.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])  # the second prompt has K = 2
    first = -(logsig(1.0) + logsig(3.0) + logsig(2.0)) / 3
    second = -logsig(1.0)
    close(L.kway_ranking_loss(rewards, mask), (first + second) / 2)
    close(L.kway_ranking_loss(rewards[:1]), first)
    pairs = torch.tensor([[0.7, -0.2], [0.1, 0.4]])  # K = 2 is the pairwise loss
    close(L.kway_ranking_loss(pairs), L.pairwise_loss(pairs[:, 0], pairs[:, 1]))


def test_binary_loss_is_bce_on_thumbs():
    logits, liked = torch.tensor([2.0, -1.0]), torch.tensor([1, 0])
    close(L.binary_loss(logits, liked), -(logsig(2.0) + logsig(1.0)) / 2)


def test_dpo_loss_by_hand():
    loss = L.dpo_loss(
        torch.tensor([-10.0, -4.0]),
        torch.tensor([-12.0, -3.0]),
        torch.tensor([-11.0, -4.0]),
        torch.tensor([-11.0, -4.0]),
        beta=0.1,
    )
    margins = [(-10 + 11) - (-12 + 11), (-4 + 4) - (-3 + 4)]  # 2 and -1
    close(loss, -(logsig(0.1 * margins[0]) + logsig(0.1 * margins[1])) / 2)


def test_kto_loss_by_hand_with_a_detached_floored_baseline():
    logps = torch.tensor([-5.0, -6.0], requires_grad=True)
    ref = torch.tensor([-6.0, -5.0])
    desirable = torch.tensor([True, False])
    mismatched = torch.tensor([-7.0, -9.0], requires_grad=True)
    mismatched_ref = torch.tensor([-8.0, -9.5])
    loss = L.kto_loss(logps, ref, desirable, mismatched, mismatched_ref, beta=0.1)
    z = ((-7 + 8) + (-9 + 9.5)) / 2  # 0.75
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    expected = ((1 - sig(0.1 * (1 - z))) + (1 - sig(0.1 * (z - (-1))))) / 2
    close(loss, expected)
    loss.backward()
    assert mismatched.grad is None  # the baseline carries no gradient
    negative_z = L.kto_loss(logps, ref, desirable, mismatched, mismatched_ref + 10)
    expected_zero_z = ((1 - sig(0.1 * 1)) + (1 - sig(0.1 * 1))) / 2  # z floored at 0
    close(negative_z, expected_zero_z)


def test_cringe_by_hand_with_k_1():
    """k = 1 leaves one candidate, so the sampled positive token is determined."""
    labels = torch.tensor([[0, 2, 1]])
    mask = torch.tensor([[1, 1, 1]])
    negative = torch.tensor([[True, True, False]])
    loss = L.cringe_loss(LOGITS, labels, mask, negative, alpha=0.5, k=1)
    softplus = lambda x: math.log1p(math.exp(x))  # noqa: E731
    contrast_0 = softplus(2.0 - 1.0)  # y = top token 0: the positive is the runner-up, 1
    contrast_1 = softplus(0.0 - 0.0)  # ties: y = 2 is in the top 2 (0, 1 or 2 by tie order)
    positive_ce = -log_softmax_at([1, 3, 0], 1)
    expected = (0.5 * contrast_0 + 0.5 * contrast_1 + positive_ce) / 3
    close(loss, expected)


def test_cringe_samples_among_the_top_k_other_tokens():
    logits = torch.tensor([[[5.0, 4.0, 3.0, -50.0]]])
    labels, mask = torch.tensor([[3]]), torch.ones(1, 1)  # y outside the top k+1
    generator = torch.Generator().manual_seed(0)
    values = {
        round(
            L.cringe_loss(
                logits, labels, mask, torch.tensor([True]), k=2, generator=generator
            ).item(),
            4,
        )
        for _ in range(200)
    }
    softplus = lambda x: math.log1p(math.exp(x))  # noqa: E731
    assert values == {round(softplus(-55.0), 4), round(softplus(-54.0), 4)}  # j in {0, 1}, never 2


def test_cringe_pushes_negatives_down_and_keeps_positives():
    torch.manual_seed(0)
    logits = torch.nn.Parameter(torch.randn(2, 4, 6))
    labels = torch.randint(0, 6, (2, 4))
    mask, negative = torch.ones(2, 4), torch.tensor([False, True])
    before = L.sequence_logprobs(logits, labels, mask).detach()
    optimizer = torch.optim.SGD([logits], lr=0.5)
    for _ in range(30):
        optimizer.zero_grad()
        L.cringe_loss(logits, labels, mask, negative).backward()
        optimizer.step()
    after = L.sequence_logprobs(logits, labels, mask).detach()
    assert after[1] < before[1] - 1.0  # the negative sequence became less likely
    assert after[0] >= before[0]  # the positive one did not


def test_gae_by_hand():
    rewards = torch.tensor([[0.0, 1.0, 5.0]])
    values = torch.tensor([[0.5, 0.2, 9.0]])
    mask = torch.tensor([[1, 1, 0]])  # the third position is padding
    advantages, returns = L.gae(rewards, values, mask, gamma=1.0, lam=0.95)
    close(advantages, [[-0.3 + 0.95 * 0.8, 0.8, 0.0]])
    close(returns, [[0.46 + 0.5, 1.0, 0.0]])
    advantages, _ = L.gae(rewards, values, mask, gamma=0.5, lam=1.0)
    close(advantages, [[0.0 + 0.5 * 0.2 - 0.5 + 0.5 * 0.8, 0.8, 0.0]])


def test_kl_shaped_rewards_put_the_score_on_the_last_response_token():
    logprobs = torch.tensor([[-1.0, -2.0, -3.0], [-1.0, -1.0, 0.0]])
    ref = torch.tensor([[-1.5, -2.0, -1.0], [-2.0, -1.0, 0.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    rewards = L.kl_shaped_rewards(
        torch.tensor([10.0, -10.0]), logprobs, ref, mask, beta=0.1, score_clip=5.0
    )
    close(rewards, [[-0.05, 0.0, 0.2 + 5.0], [-0.1, -5.0, 0.0]])


def test_policy_loss_clips_the_ratio():
    old = torch.zeros(1, 3)
    new = torch.log(torch.tensor([[1.5, 0.5, 1.1]]))
    advantages = torch.tensor([[1.0, -1.0, 2.0]])
    mask = torch.tensor([[1, 1, 1]])
    # token 1: A>0, rho 1.5 -> clipped to 1.2; token 2: A<0, rho 0.5 -> max(0.5, 0.8) = 0.8;
    # token 3: inside the clip range: -2 * 1.1.
    close(L.policy_loss(new, old, advantages, mask, clip=0.2), (-1.2 + 0.8 - 2.2) / 3)


def test_value_loss_takes_the_worse_of_clipped_and_unclipped():
    values, old = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 0.0]])
    returns, mask = torch.tensor([[1.0, 1.0]]), torch.tensor([[1, 1]])
    # first: unclipped error 0, clipped (0.2) error 0.64 -> 0.64; second: both 1.
    close(L.value_loss(values, old, returns, mask, clip=0.2), 0.5 * (0.64 + 1.0) / 2)


@pytest.mark.parametrize("shift_mean", [True, False])
def test_whiten_ignores_padding(shift_mean):
    values, mask = torch.tensor([[1.0, 3.0, 100.0]]), torch.tensor([[1, 1, 0]])
    whitened = L.whiten(values, mask, shift_mean)
    expected = [[-1.0, 1.0]] if shift_mean else [[1.0, 3.0]]
    close(whitened[:, :2], expected, tol=1e-4)
