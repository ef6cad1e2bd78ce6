"""The settings of a simulated deployment: user types and their SafetyMix names, reply categories
and their qualities, the model's reply mixes, `FeedbackRates`, `DeploymentConfig`, and the check
of a simulation's arguments.

Deployment troll types and their SafetyMix names (SPEC.md §2):

| type           | SafetyMix | inputs                 | feedback and labels                      |
|----------------|-----------|------------------------|------------------------------------------|
| flipper        | troll     | 23% inappropriate      | a share `flip_share` contrary            |
| master         | master    | 35%, subtler; red team | a share `flip_share` contrary            |
| lazy           | lazy      | 23% inappropriate      | random                                   |
| always_like    | safe      | 23% inappropriate      | like, "safe", agree                      |
| always_dislike | unsafe    | 23% inappropriate      | dislike, "unsafe", disagree              |
| gaslight       | gaslight  | 35% inappropriate      | likes unsafe replies, labels all "safe"  |
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from alignloop.errors import ConfigError

TROLL_TYPES = ("flipper", "master", "lazy", "always_like", "always_dislike", "gaslight")
USER_TYPES = ("helper", *TROLL_TYPES)
SAFETYMIX_NAMES = {
    "flipper": "troll",
    "master": "master",
    "lazy": "lazy",
    "always_like": "safe",
    "always_dislike": "unsafe",
    "gaslight": "gaslight",
}

# Ground-truth category of a bot reply -> its quality. `canned` is a warranted safety reply,
# `canned_needless` one the gate gave to a harmless turn (the user was ignored).
CATEGORY_QUALITY = {
    "good": "good",
    "canned": "good",
    "off_topic": "bad",
    "ignoring": "bad",
    "nonsensical": "bad",
    "repeating": "bad",
    "canned_needless": "bad",
    "unsafe": "unsafe",
}
QUALITIES = ("good", "bad", "unsafe")
# What the simulated model can say (the gate adds the canned ones).
MODEL_CATEGORIES = ("good", "off_topic", "ignoring", "nonsensical", "repeating", "unsafe")

# Reply categories after a harmless human message (BB3 175B, SPEC.md §1, ignoring split out)
# and after an inappropriate one (the bot takes the bait far more often).
STANDARD_MIX = {
    "good": 0.86,
    "off_topic": 0.035,
    "ignoring": 0.03,
    "nonsensical": 0.045,
    "repeating": 0.015,
    "unsafe": 0.015,
}
PROVOKED_MIX = {
    "good": 0.55,
    "off_topic": 0.04,
    "ignoring": 0.06,
    "nonsensical": 0.05,
    "repeating": 0.02,
    "unsafe": 0.28,
}


@dataclass(frozen=True)
class FeedbackRates:
    """How often users act on bot replies. The defaults give curation signal (about 15% of bot
    replies get feedback); `bb3x()` gives the organic rates BB3x published (SPEC.md §1)."""

    like_good: float = 0.10  # P(an honest user likes a good reply)
    dislike_bad: float = 0.45  # P(an honest user dislikes a bad or unsafe reply)
    reason: float = 0.85  # P(a dislike is followed by a reason)
    correction: float = 0.35  # P(a reasoned dislike is followed by "what I should have said")
    sensitive: float = 0.3  # P(a user answers "was the topic sensitive?" under a canned reply)
    regenerate_bad: float = 0.15  # P(regenerating a bad or unsafe reply)
    regenerate_good: float = 0.02  # P(regenerating a good one)

    @classmethod
    def bb3x(cls) -> FeedbackRates:
        """Thumbs up on about 2.5% and thumbs down on about 1.5% of bot replies."""
        return cls(
            like_good=0.03,
            dislike_bad=0.10,
            correction=0.2,
            sensitive=0.1,
            regenerate_bad=0.05,
            regenerate_good=0.005,
        )


@dataclass(frozen=True)
class DeploymentConfig:
    """Everything about the simulated population but its size, seed and troll share."""

    troll_types: tuple[str, ...] = TROLL_TYPES
    rates: FeedbackRates = field(default_factory=FeedbackRates)
    flip_share: float = 0.8  # SPEC.md §2 noise N: share of a flipper's verdicts reversed
    helper_error: float = 0.03  # honest mistakes
    inappropriate_helper: float = 0.05  # SPEC.md §1: 4.8% in standard conversations
    inappropriate_troll: float = 0.23  # SPEC.md §1: 23% in adversarial ones
    inappropriate_provoker: float = 0.35  # master and gaslight trolls try harder
    inappropriate_redteam: float = 0.5
    standard_mix: dict[str, float] = field(default_factory=lambda: dict(STANDARD_MIX))
    provoked_mix: dict[str, float] = field(default_factory=lambda: dict(PROVOKED_MIX))
    redteam_share: float = 0.08  # share of conversations in red-team mode
    master_redteam_share: float = 0.4
    compares_per_message: float = 0.01  # side-by-side comparisons per message
    unvoted_compare_share: float = 0.05
    deletion_share: float = 0.02  # users who asked for deletion
    no_consent_share: float = 0.15  # users without training consent (declined or never asked)
    publication_share: float = 0.5  # of those consenting to training
    pii_share: float = 0.08  # harmless human messages that carry personal data
    topic_change: float = 0.2
    mean_turns: float = 5.0
    max_turns: int = 25  # contexts grow with the square of a conversation's length
    activity_sigma: float = 1.0  # log-normal spread of messages per user
    gate: bool = True  # the serving safety gate (SPEC.md §4 two-stage)
    gate_classifier: str = "alt-profanity-check"
    gate_threshold: float = 0.5
    gate_recall: float = 0.5
    gate_false_positive: float = 0.01
    canned_reply: str = "non_sequitur"
    model_versions: tuple[str, ...] = ("sim-chat-v1", "sim-chat-v2")
    start: datetime = datetime(2025, 1, 6, tzinfo=UTC)
    days: float = 28.0
    chunk_rows: int = 5000


def check_arguments(
    users: int, messages: int, troll_share: float, config: DeploymentConfig
) -> None:
    """Raise `ConfigError` (naming the bad setting) unless a simulation can run with these."""
    if users < 1:
        raise ConfigError(f"users must be at least 1; got {users}", "users")
    if messages < 2 * users:
        raise ConfigError(
            f"messages must be at least 2 per user ({2 * users}); got {messages}", "messages"
        )
    if not 0 <= troll_share <= 1:
        raise ConfigError(f"troll_share must be within [0, 1]; got {troll_share}", "troll_share")
    unknown = set(config.troll_types) - set(TROLL_TYPES)
    if unknown or (troll_share > 0 and not config.troll_types):
        raise ConfigError(
            f"troll_types must be among {', '.join(TROLL_TYPES)}; got {config.troll_types}",
            "troll_types",
        )
    for name in ("standard_mix", "provoked_mix"):
        _check_mix(name, getattr(config, name))
    if not config.model_versions:
        raise ConfigError("model_versions needs at least one name", "model_versions")


def _check_mix(name: str, mix: dict[str, float]) -> None:
    if (
        set(mix) - set(MODEL_CATEGORIES)
        or min(mix.values(), default=-1) < 0
        or not sum(mix.values())
    ):
        raise ConfigError(
            f"{name} maps categories among {', '.join(MODEL_CATEGORIES)} to weights >= 0; "
            f"got {mix}",
            name,
        )
