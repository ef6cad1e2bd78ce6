"""The typed config of `alignloop safety train`: every flag (and YAML key) is one field here.

Defaults are the settings measured on DiaSafety (README, "Safety classifiers")."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from alignloop.config import Settings

KINDS = ("profanity", "embedding", "finetune")


class SafetyTrainConfig(Settings):
    """Train a safety classifier P(unsafe | context, utterance) and save it as a folder."""

    kind: Literal["profanity", "embedding", "finetune"] = Field(
        "embedding",
        description="'profanity': alt-profanity-check as is (no training); 'embedding': a "
        "logistic head on MiniLM sentence embeddings; 'finetune': MiniLM fine-tuned as a "
        "text-pair classifier.",
    )
    data: str = Field(
        ...,
        description="Labelled rows (context, response, label): .jsonl(.gz), .json (an array), "
        ".parquet or a datasets folder; DiaSafety's files as they are.",
    )
    out: str = Field(..., description="Folder to write the classifier to (must not exist yet).")
    eval_data: str | None = Field(
        None, description="Held-out labelled rows: unsafe-F1 and accuracy go into the metrics."
    )
    db: str | None = Field(
        None, description="Store to register the classifier in (file path or URL)."
    )
    name: str | None = Field(
        None, description="Name of the registered version (default: 'safety-<kind>-<out name>')."
    )
    parent: str | None = Field(None, description="Registered version this one improves on.")
    limit: int | None = Field(None, ge=1, description="Use at most this many training rows.")
    skip_bad_rows: bool = Field(False, description="Leave bad data rows out instead of stopping.")
    seed: int = Field(0, description="Seed of data order and initialisation.")
    context_turns: int = Field(
        3, ge=0, description="Latest context messages the classifier reads (0: the utterance only)."
    )
    max_length: int = Field(
        128, ge=8, description="Tokens per encoded text (oldest context tokens are cut first)."
    )
    threshold: float = Field(
        0.5, ge=0, le=1, description="P(unsafe) at or above which the metrics count a row unsafe."
    )
    class_weight: Literal["balanced", "none"] = Field(
        "balanced", description="'balanced' weighs each class inversely to its frequency."
    )
    score_batch_size: int = Field(32, ge=1, description="Texts encoded at once when scoring.")
    features: Literal["response", "context_response", "interactions"] = Field(
        "interactions",
        description="Embedding head input: 'response' e_r; 'context_response' [e_c, e_r]; "
        "'interactions' [e_c, e_r, e_c*e_r, |e_c-e_r|].",
    )
    inverse_regularization: float = Field(
        1.0, gt=0, description="Logistic regression's C (smaller: stronger L2 penalty)."
    )
    max_iter: int = Field(3000, ge=1, description="Logistic regression solver iterations.")
    cache_size: int = Field(
        100_000, ge=0, description="Embeddings kept per unique text while scoring (0: none)."
    )
    epochs: float = Field(3.0, gt=0, description="Fine-tuning passes over the data.")
    batch_size: int = Field(32, ge=1, description="Fine-tuning examples per optimizer step.")
    length_grouping: int = Field(
        16,
        ge=1,
        description="Fine-tuning batches whose rows are drawn from one length-sorted group "
        "(less padding, faster); 1: plain shuffled batches.",
    )
    learning_rate: float = Field(5e-5, gt=0, description="Peak AdamW learning rate.")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay.")
    warmup_fraction: float = Field(
        0.06, ge=0, lt=1, description="Share of steps of linear warm-up, then linear decay to 0."
    )
    max_grad_norm: float | None = Field(1.0, gt=0, description="Clip gradients to this norm.")
    max_steps: int | None = Field(None, ge=1, description="Stop fine-tuning after this many steps.")
    device: str | None = Field(None, description="Torch device (default: cuda if any, else cpu).")
