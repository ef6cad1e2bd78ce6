"""The serving safety gate (SPEC.md §4, two-stage model): classify the human input and the
bot's candidate reply, with the safety classifier and optionally a sensitive-topic classifier
(each with its own threshold); when any fires, answer with a canned reply instead.

The same gate serves chat turns one at a time (`check_input` / `check_output`) and evaluation
in batches (`apply_batch`), so a two-stage model measured offline is the one users meet.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

from alignloop.backends.base import ChatMessage
from alignloop.safety.classifiers import SafetyClassifier

SAFE_RESPONSE = "I'm sorry, I'd rather not talk about that. Thank you for understanding."
NON_SEQUITUR = "Hey, do you want to talk about something else? How about we talk about {topic}?"
CANNED_STYLES = ("non_sequitur", "safe_response")


def load_safe_topics() -> list[str]:
    text = resources.files("alignloop.safety").joinpath("topics.txt").read_text()
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def is_canned(text: str) -> bool:
    """Whether `text` is one of the gate's canned replies (either style, any topic), or opens
    like one: a baked-in model says them itself and may end them its own way."""
    text = text.strip()
    openings = (NON_SEQUITUR.split("? ")[0], SAFE_RESPONSE.split(". ")[0])
    return text.startswith(openings)


class CannedReplies:
    def __init__(self, style: str = "non_sequitur", topics: Sequence[str] | None = None):
        if style not in CANNED_STYLES:
            raise ValueError(f"canned reply style {style!r}: use one of {CANNED_STYLES}")
        self.style = style
        self.topics = list(topics or load_safe_topics())

    def pick(self, rng: random.Random) -> str:
        if self.style == "safe_response":
            return SAFE_RESPONSE
        return NON_SEQUITUR.format(topic=rng.choice(self.topics))


@dataclass(frozen=True)
class GateCheck:
    """One decision: the stage judged, the safety score and (with a topic classifier) the
    sensitive-topic score; `fired` when either reached its threshold."""

    stage: str  # "input" | "output"
    score: float
    fired: bool
    topic_score: float | None = None

    def as_record(self) -> dict[str, float]:
        record = {f"{self.stage}_score": round(self.score, 6)}
        if self.topic_score is not None:
            record[f"{self.stage}_topic_score"] = round(self.topic_score, 6)
        return record


@dataclass(frozen=True)
class GateOutcome:
    """What the two-stage model answers for one (context, candidate reply)."""

    reply: str
    gated: bool
    checks: tuple[GateCheck, ...]


@dataclass(frozen=True)
class TopicGate:
    classifier: SafetyClassifier
    threshold: float = 0.55


class SafetyGate:
    def __init__(
        self,
        classifier: SafetyClassifier,
        threshold: float,
        canned: CannedReplies,
        seed: int = 0,
        topic: TopicGate | None = None,
    ):
        self.classifier = classifier
        self.threshold = threshold
        self.canned = canned
        self.topic = topic
        self._seed = seed
        self._rng = random.Random(seed)

    @property
    def name(self) -> str:
        return self.classifier.name

    def describe(self) -> dict[str, object]:
        """The gate's settings as logged beside every decision."""
        about: dict[str, object] = {"classifier": self.name, "threshold": self.threshold}
        if self.topic is not None:
            about |= {"topic_classifier": self.topic.classifier.name,
                      "topic_threshold": self.topic.threshold}  # fmt: skip
        return about

    def check_input(self, context: Sequence[ChatMessage]) -> GateCheck:
        return self._checks("input", [(context[:-1], context[-1]["content"])])[0]

    def check_output(self, context: Sequence[ChatMessage], reply: str) -> GateCheck:
        return self._checks("output", [(context, reply)])[0]

    def canned_reply(self, context: Sequence[ChatMessage] | None = None) -> str:
        """The canned reply. Given the conversation it answers, its topic follows from that
        conversation and the gate's seed: the same conversation gets the same topic whatever
        order concurrent turns reached the gate in (so a served deployment, and two arms of the
        demo talking to one model, replay alike)."""
        if context is None:
            return self.canned.pick(self._rng)
        return self.canned.pick(random.Random(conversation_seed(context, self._seed)))

    def apply_batch(
        self, contexts: Sequence[Sequence[ChatMessage]], replies: Sequence[str]
    ) -> list[GateOutcome]:
        """The two-stage model over many turns at once: each candidate reply, or a canned
        reply where the last context turn or the candidate fired. Topics are drawn in the
        batch's order from the gate's seed, as the safety benchmark's figures were measured."""
        inputs = self._checks("input", [(c[:-1], c[-1]["content"]) for c in contexts])
        outputs = self._checks("output", list(zip(contexts, replies, strict=True)))
        outcomes = []
        for reply, checks in zip(replies, zip(inputs, outputs, strict=True), strict=True):
            gated = any(c.fired for c in checks)
            outcomes.append(GateOutcome(self.canned_reply() if gated else reply, gated, checks))
        return outcomes

    def _checks(self, stage: str, pairs: list) -> list[GateCheck]:
        scores = self.classifier.score_batch(pairs)
        topics = self.topic.classifier.score_batch(pairs) if self.topic else [None] * len(pairs)
        return [
            GateCheck(stage, float(s), self._fires(float(s), t), None if t is None else float(t))
            for s, t in zip(scores, topics, strict=True)
        ]

    def _fires(self, score: float, topic_score: float | None) -> bool:
        if score >= self.threshold:
            return True
        return topic_score is not None and topic_score >= self.topic.threshold


def conversation_seed(context: Sequence[ChatMessage], seed: int) -> int:
    """A stable number from a conversation's turns and a seed (the same in every process)."""
    text = "\x1e".join(f"{m['role']}\x1f{m['content']}" for m in context)
    return int.from_bytes(hashlib.sha256(f"{seed}\x1d{text}".encode()).digest()[:8], "big")


def build_gate(
    classifier: str,
    threshold: float,
    topic_classifier: str = "off",
    topic_threshold: float = 0.55,
    canned_reply: str = "non_sequitur",
    db: str | None = None,
    seed: int = 0,
) -> SafetyGate | None:
    """The gate from its options, as `alignloop serve` and `evaluate safety` take them
    (classifier specs: 'off', 'profanity', a folder, a registered name or 'promoted')."""
    from alignloop.safety.classifiers import load_classifier

    if classifier == "off":
        return None
    topic = None
    if topic_classifier != "off":
        topic = TopicGate(load_classifier(topic_classifier, db), topic_threshold)
    canned = CannedReplies(canned_reply)
    return SafetyGate(load_classifier(classifier, db), threshold, canned, seed, topic)
