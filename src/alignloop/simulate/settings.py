"""The typed options of `alignloop simulate deployment` (every flag one field)."""

from __future__ import annotations

from pydantic import Field

from alignloop.config import Settings


class SimulateDeploymentConfig(Settings):
    """Fill a store with a simulated deployment (helpers and trolls) and save its ground truth."""

    db: str = Field("alignloop.db", description="SQLite file path or SQLAlchemy URL of the store.")
    users: int = Field(200, ge=1, description="Simulated users.")
    messages: int = Field(10_000, ge=2, description="Messages to write (human and bot).")
    seed: int = Field(0, description="Seed: the same seed writes the same rows.")
    troll_share: float = Field(0.3, ge=0, le=1, description="Share of users who are trolls.")
    truth: str | None = Field(
        None, description="Write the ground truth here (.json, or .parquet for big runs)."
    )
    texts_from: str | None = Field(
        None, description="Draw texts from DiaSafety's train.json instead of the templates."
    )
    bb3x_rates: bool = Field(
        False,
        description="Feedback as rare as BB3x's users gave it (about 2.5% likes, 1.5% dislikes) "
        "instead of the default, richer rates.",
    )
