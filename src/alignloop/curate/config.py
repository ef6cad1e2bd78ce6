"""The typed config of `alignloop curate` and `alignloop release`: every flag (and YAML key)
is one field; the trust and labelling thresholds come from their modules' configs."""

from __future__ import annotations

from pydantic import Field, field_validator

from alignloop.config import Settings
from alignloop.curate.label import LabelConfig
from alignloop.curate.trust import DeploymentTrustConfig

DATASET_KINDS = ("sft", "binary", "pairs", "rankings", "safety", "attacks")


class CurateConfig(Settings, DeploymentTrustConfig, LabelConfig):
    """Curate the store: score messages, score users' trust, label bot replies, build datasets."""

    db: str = Field("alignloop.db", description="SQLite file path or SQLAlchemy URL of the store.")
    out: str = Field(..., description="Folder for this run's datasets (one per run; must be new).")
    safety_classifier: str = Field(
        "profanity",
        description="Classifier scoring every message: 'profanity', a folder written by "
        "`alignloop safety train`, or the name of one registered in the store.",
    )
    reward_model: str | None = Field(
        None,
        description="A thumbs reward model (`alignloop train reward --objective binary "
        "--no-center`) judging bot replies: P(good) = sigmoid(score) against tau_plus/tau_minus. "
        "Off by default (one forward pass per reply).",
    )
    deid: bool = Field(True, description="Scrub personal data from the datasets' texts.")
    kinds: list[str] = Field(
        list(DATASET_KINDS),
        description="Datasets to build (comma-separated): sft, binary, pairs, rankings, safety, "
        "attacks.",
    )
    score_batch_size: int = Field(
        2048, ge=1, description="Messages handed to the classifier at once."
    )

    @field_validator("kinds", mode="before")
    @classmethod
    def _known_kinds(cls, kinds: list[str] | str) -> list[str]:
        if isinstance(kinds, str):  # the command line gives "sft,pairs"
            kinds = [k.strip() for k in kinds.split(",") if k.strip()]
        unknown = sorted(set(kinds) - set(DATASET_KINDS))
        if unknown:
            raise ValueError(f"unknown {unknown}; pick from {', '.join(DATASET_KINDS)}")
        return kinds


class ReleaseConfig(Settings):
    """Write the public release: consenting users only, de-identified, with a data card."""

    db: str = Field("alignloop.db", description="SQLite file path or SQLAlchemy URL of the store.")
    out: str = Field(..., description="Folder for the release (must be new).")
    secret_file: str | None = Field(
        None,
        description="Keep the per-release secret that re-hashes user ids in this file (outside "
        "the release); by default it is discarded, so the ids cannot be linked back.",
    )
