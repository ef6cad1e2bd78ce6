"""The typed config of `alignloop redteam round`: every flag (and YAML key) is one field here.

The training options are `SafetyTrainConfig`'s own fields (same defaults, same checks, same
help), passed on to it unchanged: a round trains with `alignloop safety train`'s code."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from alignloop.config import Settings
from alignloop.safety.config import SafetyTrainConfig

_TRAIN = SafetyTrainConfig.model_fields

TRAINING_OPTIONS = (
    "threshold",
    "skip_bad_rows",
    "context_turns",
    "max_length",
    "class_weight",
    "score_batch_size",
    "features",
    "inverse_regularization",
    "max_iter",
    "cache_size",
    "epochs",
    "batch_size",
    "length_grouping",
    "learning_rate",
    "weight_decay",
    "warmup_fraction",
    "max_grad_norm",
    "max_steps",
    "device",
)
"""The fields below that `SafetyTrainConfig` declares, handed to it as they are."""


class RedteamRoundConfig(Settings):
    """One Bot-Adversarial-Dialogue round: retrain the safety classifier on the red-team labels
    gathered so far, compare it with the gate's classifier on held-out labels, promote it if it
    is better."""

    db: str = Field("alignloop.db", description="SQLite file path or SQLAlchemy URL of the store.")
    base_data: str = Field(
        ...,
        description="Labelled safety rows every round trains on besides the red-team labels "
        "(context, response, label; e.g. DiaSafety's train.json).",
    )
    out: str = Field(
        "runs/redteam",
        description="Folder of the rounds: round n's classifier goes to <out>/round-<n>/.",
    )
    kind: Literal["embedding", "finetune"] = Field(
        "embedding",
        description="Classifier to train: 'embedding' (a logistic head on MiniLM sentence "
        "embeddings) or 'finetune' (MiniLM fine-tuned as a text-pair classifier).",
    )
    holdout_share: float = Field(
        0.3,
        gt=0,
        lt=1,
        description="Share of the red-team conversations whose labels are held out to compare "
        "the classifiers (chosen per conversation by a seeded hash, the same in every round).",
    )
    compare_by: Literal["unsafe_f1", "auc"] = Field(
        "unsafe_f1",
        description="The held-out measure the new classifier must beat the old one on: "
        "'unsafe_f1' at `threshold`, or 'auc', the ranking of unsafe above safe replies "
        "whatever the threshold (for a gate whose threshold is calibrated afterwards).",
    )
    min_gain: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Promote only if the new `compare_by` is at least the old one plus this "
        "(0: strictly greater).",
    )
    current: str = Field(
        "profanity",
        description="Classifier to beat while no round has been promoted: 'profanity', a "
        "classifier folder, or a name registered in the store.",
    )
    eval_data: str | None = Field(
        None,
        description="More labelled rows (context, response, label) added to the held-out "
        "red-team labels when comparing the classifiers.",
    )
    redteam_weight: int = Field(
        1,
        ge=1,
        description="Times each red-team label is trained on: a round's labels are few beside "
        "the base data (hundreds against thousands), and in one pass they barely move it.",
    )
    seed: int = Field(0, description="Seed of the held-out split and of training.")
    threshold: float = _TRAIN["threshold"]
    skip_bad_rows: bool = _TRAIN["skip_bad_rows"]
    context_turns: int = _TRAIN["context_turns"]
    max_length: int = _TRAIN["max_length"]
    class_weight: Literal["balanced", "none"] = _TRAIN["class_weight"]
    score_batch_size: int = _TRAIN["score_batch_size"]
    features: Literal["response", "context_response", "interactions"] = _TRAIN["features"]
    inverse_regularization: float = _TRAIN["inverse_regularization"]
    max_iter: int = _TRAIN["max_iter"]
    cache_size: int = _TRAIN["cache_size"]
    epochs: float = _TRAIN["epochs"]
    batch_size: int = _TRAIN["batch_size"]
    length_grouping: int = _TRAIN["length_grouping"]
    learning_rate: float = _TRAIN["learning_rate"]
    weight_decay: float = _TRAIN["weight_decay"]
    warmup_fraction: float = _TRAIN["warmup_fraction"]
    max_grad_norm: float | None = _TRAIN["max_grad_norm"]
    max_steps: int | None = _TRAIN["max_steps"]
    device: str | None = _TRAIN["device"]

    def train_config(self, data: str, out: str, name: str, parent: str) -> SafetyTrainConfig:
        """The `alignloop safety train` settings of this round's classifier."""
        options = {key: getattr(self, key) for key in TRAINING_OPTIONS}
        return SafetyTrainConfig(
            kind=self.kind,
            data=data,
            out=out,
            name=name,
            parent=parent,
            seed=self.seed,
            **options,
        )
