"""Our DPO, KTO and pairwise reward losses give TRL's values on the same tensors.

TRL computes its losses inside its trainers' `compute_loss`; each is called here on a stand-in
trainer and a stand-in model that returns the given per-sequence log-probabilities (or
rewards), so the comparison is on identical numbers. TRL is a test-only dependency.
"""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

from alignloop.train import losses as L

trl = pytest.importorskip("trl", reason="TRL is a test-only dependency (pip install '.[test]')")


class _Accelerator:
    device = torch.device("cpu")

    def gather_for_metrics(self, x):
        return x

    gather = gather_for_metrics


def _trainer(**attributes) -> SimpleNamespace:
    return SimpleNamespace(
        model=SimpleNamespace(training=True),
        accelerator=_Accelerator(),
        aux_loss_enabled=False,
        _metrics=defaultdict(lambda: defaultdict(list)),
        _total_train_tokens=0,
        _tp_size=1,
        **attributes,
    )


def _sequence_model(logps: torch.Tensor):
    """A causal LM stand-in: sequence i is [i, 0]; its one completion token has log p logps[i]."""

    def forward(input_ids, **_):
        n = input_ids.shape[0]
        return SimpleNamespace(
            log_probs=logps[input_ids[:, 0]].unsqueeze(1),
            entropy=torch.zeros(n, 1),
            mean_logits=torch.zeros(n, 1),
            is_top1=torch.zeros(n, 1, dtype=torch.bool),
        )

    return forward


def _sequences(ids) -> dict:
    ids = torch.as_tensor(ids)
    return {
        "input_ids": torch.stack([ids, torch.zeros_like(ids)], 1),
        "attention_mask": torch.ones(len(ids), 2, dtype=torch.long),
        "completion_mask": torch.tensor([[0, 1]] * len(ids)),
    }


@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_dpo_matches_trl(beta):
    from trl.trainer.dpo_trainer import DPOTrainer

    torch.manual_seed(1)
    chosen, rejected = torch.randn(4) * 5 - 20, torch.randn(4) * 5 - 20
    ref_chosen, ref_rejected = torch.randn(4) * 5 - 20, torch.randn(4) * 5 - 20
    trainer = _trainer(
        ld_alpha=None,
        precompute_ref_logps=True,
        f_divergence_type="reverse_kl",
        loss_types=["sigmoid"],
        loss_weights=[1.0],
        beta=beta,
        use_weighting=False,
    )
    inputs = {
        **_sequences(range(8)),  # the batch is [chosen..., rejected...]
        "ref_chosen_logps": ref_chosen,
        "ref_rejected_logps": ref_rejected,
    }
    model = _sequence_model(torch.cat([chosen, rejected]))
    theirs = DPOTrainer._compute_loss(trainer, model, inputs, return_outputs=False)
    ours = L.dpo_loss(chosen, rejected, ref_chosen, ref_rejected, beta=beta)
    torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize(("beta", "weights"), [(0.1, (1.0, 1.0)), (0.3, (1.0, 1.33))])
def test_kto_matches_trl(beta, weights):
    from trl.trainer.kto_trainer import KTOTrainer

    torch.manual_seed(2)
    n = 6
    logps, ref = torch.randn(n) * 3 - 10, torch.randn(n) * 3 - 10
    kl_logps, kl_ref = torch.randn(n) * 3 - 9, torch.randn(n) * 3 - 10
    desirable = torch.tensor([True, False, True, True, False, False])
    trainer = _trainer(
        precompute_ref_logps=True,
        calculate_KL=True,
        loss_type="kto",
        beta=beta,
        desirable_weight=weights[0],
        undesirable_weight=weights[1],
    )
    trainer._compute_kl_logps = lambda model, batch: KTOTrainer._compute_kl_logps(
        trainer, model, batch
    )
    kl_ids = _sequences(range(n, 2 * n))
    batch = {
        **_sequences(range(n)),
        "KL_input_ids": kl_ids["input_ids"],
        "KL_attention_mask": kl_ids["attention_mask"],
        "KL_completion_mask": kl_ids["completion_mask"],
        "label": desirable,
        "ref_logps": ref,
        "ref_KL_logps": kl_ref,
    }
    model = _sequence_model(torch.cat([logps, kl_logps]))
    theirs = KTOTrainer._compute_loss(trainer, model, batch, return_outputs=False)
    if isinstance(theirs, tuple):
        theirs = theirs[0]
    # TRL lists the desirable losses first; the mean does not depend on the order.
    ours = L.kto_loss(logps, ref, desirable, kl_logps, kl_ref, beta, *weights)
    torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize("margin", [None, 0.5])
def test_pairwise_reward_loss_matches_trl(margin):
    from trl.trainer.reward_trainer import RewardTrainer

    torch.manual_seed(3)
    chosen, rejected = torch.randn(5), torch.randn(5)
    trainer = _trainer(args=SimpleNamespace(center_rewards_coefficient=None))
    inputs = {
        "input_ids": torch.zeros(10, 2, dtype=torch.long),
        "attention_mask": torch.ones(10, 2),
    }
    if margin is not None:
        inputs["margin"] = torch.full((5,), margin)

    def model(**_):
        return SimpleNamespace(logits=torch.cat([chosen, rejected]).unsqueeze(-1))

    theirs = RewardTrainer.compute_loss(trainer, model, inputs)
    ours = L.pairwise_loss(chosen, rejected, margin=margin or 0.0)
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(
        L.kway_ranking_loss(torch.stack([chosen, rejected], 1), margin=margin or 0.0), theirs
    )
