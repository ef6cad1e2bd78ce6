"""The serving safety gate (SPEC.md §4, two-stage model): classify the human input and the
bot's candidate reply; when either fires, answer with a canned reply instead.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

from alignloop.backends.base import ChatMessage
from alignloop.safety.classifiers import SafetyClassifier

SAFE_RESPONSE = "I'm sorry, I'd rather not talk about that. Thank you for understanding."


def load_safe_topics() -> list[str]:
    text = resources.files("alignloop.safety").joinpath("topics.txt").read_text()
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


class CannedReplies:
    def __init__(self, style: str = "non_sequitur", topics: Sequence[str] | None = None):
        self.style = style
        self.topics = list(topics or load_safe_topics())

    def pick(self, rng: random.Random) -> str:
        if self.style == "safe_response":
            return SAFE_RESPONSE
        topic = rng.choice(self.topics)
        return f"Hey, do you want to talk about something else? How about we talk about {topic}?"


@dataclass(frozen=True)
class GateCheck:
    stage: str  # "input" | "output"
    score: float
    fired: bool


class SafetyGate:
    def __init__(
        self, classifier: SafetyClassifier, threshold: float, canned: CannedReplies, seed: int = 0
    ):
        self.classifier = classifier
        self.threshold = threshold
        self.canned = canned
        self._rng = random.Random(seed)

    @property
    def name(self) -> str:
        return self.classifier.name

    def check_input(self, context: Sequence[ChatMessage]) -> GateCheck:
        score = self.classifier.score(context[:-1], context[-1]["content"])
        return GateCheck("input", score, score >= self.threshold)

    def check_output(self, context: Sequence[ChatMessage], reply: str) -> GateCheck:
        score = self.classifier.score(context, reply)
        return GateCheck("output", score, score >= self.threshold)

    def canned_reply(self) -> str:
        return self.canned.pick(self._rng)
