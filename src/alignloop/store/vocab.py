"""The fixed vocabularies the store holds (SPEC.md §1): senders, modes, feedback kinds, reasons."""

from __future__ import annotations

from alignloop.errors import InvalidInput

SENDERS = ("human", "bot", "system")
MODES = ("chat", "compare", "redteam")
COMPARISON_SOURCES = ("compare", "regenerate")
SAFETY_LABELS = ("safe", "unsafe")
LABELER_KINDS = ("user", "classifier", "crowd")

# like / dislike go on any bot message; the sensitive_* pair answers "do you agree the topic was
# sensitive?" under a canned safety reply.
FEEDBACK_KINDS = ("like", "dislike", "sensitive_agree", "sensitive_disagree")

# The dislike reasons offered to users (SPEC.md §1), keyed by the slug the API and store use.
DISLIKE_REASONS: dict[str, str] = {
    "off_topic": "Off topic / ignoring me",
    "nonsensical": "Nonsensical / incorrect",
    "rude": "Rude / inappropriate",
    "spam": "Looks like spam or ads",
    "other": "Other",
}
_REASON_LOOKUP = {
    **{slug: slug for slug in DISLIKE_REASONS},
    **{label.lower(): slug for slug, label in DISLIKE_REASONS.items()},
}


def normalize_reason(reason: str) -> str:
    """Map a reason slug or its displayed label (any case) to the slug; reject anything else."""
    slug = _REASON_LOOKUP.get(reason.strip().lower())
    if slug is None:
        choices = ", ".join(f"'{s}'" for s in DISLIKE_REASONS)
        raise InvalidInput(f"unknown dislike reason {reason!r}; use one of {choices}", "reason")
    return slug
