"""What users do with a bot reply, by user type: thumbs (a dislike is the web UI's sequence of
events: dislike, then with a reason, then with the "what should I have said" text), answers to
"was the topic sensitive?" under canned replies, red-team safety labels, and whether they
regenerate it. Also the classifier labels of the safety gate's decisions."""

from __future__ import annotations

from alignloop.simulate.deployment import rows
from alignloop.simulate.deployment.config import DeploymentConfig
from alignloop.simulate.deployment.model import Reply
from alignloop.simulate.deployment.state import Dialogue, Run
from alignloop.store.vocab import DISLIKE_REASONS

# The reason a helper picks for a dislike (SPEC.md §1 reasons; crowd categories map onto them).
FITTING_REASON = {
    "off_topic": "off_topic",
    "ignoring": "off_topic",
    "nonsensical": "nonsensical",
    "repeating": "other",
    "unsafe": "rude",
    "good": "other",
}
_REASONS = tuple(DISLIKE_REASONS)
# Users who judge by the reply (honestly or contrary); the others act whatever it is.
_JUDGING = ("helper", "flipper", "master")


def react(run: Run, dialogue: Dialogue, message_id: int, reply: Reply, provoked: bool) -> None:
    """Thumbs (or the "was it sensitive?" answer on a canned reply) and, in red-team mode,
    the safe / unsafe label the server requires before the next turn."""
    kind = dialogue.person.kind
    if reply.gated:
        _maybe_sensitive(run, dialogue, message_id, reply.warranted)
    elif _engages(run, kind, reply.quality):
        if _likes(run, kind, reply.quality):
            _feedback(run, dialogue, message_id, "like")
        else:
            _dislike(run, dialogue, message_id, reply.category, provoked)
    if dialogue.mode == "redteam":
        label = _safe_label(run, kind, reply.quality)
        safety_label(run, dialogue, message_id, "user", dialogue.person.pseudonym, label)


def wants_regeneration(run: Run, kind: str, reply: Reply) -> bool:
    if reply.gated:  # the server refuses to regenerate a canned reply
        return False
    rates = run.config.rates
    if kind in _JUDGING:
        chance = rates.regenerate_good if reply.quality == "good" else rates.regenerate_bad
    elif kind == "gaslight":
        chance = rates.regenerate_bad if reply.quality == "good" else rates.regenerate_good
    else:
        chance = (rates.regenerate_good + rates.regenerate_bad) / 2
    return run.rng.random() < chance


def safety_label(
    run: Run,
    dialogue: Dialogue,
    message_id: int,
    kind: str,
    labeler: str,
    label: str,
    score: float | None = None,
) -> None:
    created = dialogue.tick(1, 20, run.rng)
    rows.add_safety_label(run.writer, message_id, kind, labeler, label, score, created)


def _engages(run: Run, kind: str, quality: str) -> bool:
    rates = run.config.rates
    if kind == "gaslight":
        chance = max(rates.dislike_bad, 0.5) if quality == "unsafe" else rates.like_good / 4
    elif kind in _JUDGING:
        chance = rates.like_good if quality == "good" else rates.dislike_bad
    else:  # lazy and one-way users act whatever the reply
        chance = _mean_engagement(run.config)
    return run.rng.random() < chance


def _mean_engagement(config: DeploymentConfig) -> float:
    """How often a judging user acts on a reply, on average over the standard mix."""
    rates = config.rates
    good = config.standard_mix.get("good", 0.0) / sum(config.standard_mix.values())
    return good * rates.like_good + (1 - good) * rates.dislike_bad


def _verdict(run: Run, kind: str, honest: bool) -> bool:
    """The approving verdict (like / safe / agree) a user of `kind` gives, where `honest`
    is the correct one. Gaslight trolls are handled by the callers."""
    config, rng = run.config, run.rng
    if kind == "helper":
        return honest if rng.random() >= config.helper_error else not honest
    if kind in ("flipper", "master"):
        return (not honest) if rng.random() < config.flip_share else honest
    if kind == "lazy":
        return rng.random() < 0.5
    return kind == "always_like"


def _likes(run: Run, kind: str, quality: str) -> bool:
    if kind == "gaslight":
        return quality != "bad"
    return _verdict(run, kind, quality == "good")


def _safe_label(run: Run, kind: str, quality: str) -> str:
    if kind == "gaslight":
        return "safe"
    return "safe" if _verdict(run, kind, quality != "unsafe") else "unsafe"


def _maybe_sensitive(run: Run, dialogue: Dialogue, message_id: int, warranted: bool) -> None:
    if run.rng.random() >= run.config.rates.sensitive:
        return
    kind = dialogue.person.kind
    agrees = False if kind == "gaslight" else _verdict(run, kind, warranted)
    _feedback(run, dialogue, message_id, "sensitive_agree" if agrees else "sensitive_disagree")


def _dislike(run: Run, dialogue: Dialogue, message_id: int, category: str, provoked: bool) -> None:
    """The web UI's events: a dislike, then with a reason, then with the correction."""
    rng, rates = run.rng, run.config.rates
    helper = dialogue.person.kind == "helper"
    _feedback(run, dialogue, message_id, "dislike")
    if rng.random() >= rates.reason:
        return
    reason = FITTING_REASON.get(category, "other") if helper else rng.choice(_REASONS)
    _feedback(run, dialogue, message_id, "dislike", reason)
    if rng.random() < rates.correction:
        correction = run.texts.correction(rng, dialogue.topic, helper, provoked)
        _feedback(run, dialogue, message_id, "dislike", reason, correction)


def _feedback(
    run: Run,
    dialogue: Dialogue,
    message_id: int,
    kind: str,
    reason: str | None = None,
    text_: str | None = None,
) -> None:
    created = dialogue.tick(2, 30, run.rng)
    rows.add_feedback(run.writer, message_id, dialogue.person.id, kind, reason, text_, created)
