"""Spans of personal data, and how overlapping findings are settled and replaced."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

EMAIL = "EMAIL"
URL = "URL"
IP = "IP"
CARD = "CARD"
PHONE = "PHONE"
ADDRESS = "ADDRESS"
NAME = "NAME"

# When two findings overlap, the more specific kind wins: an e-mail address contains a domain
# and often a name, a street address contains names, a card number looks like a phone number.
PRIORITY = (EMAIL, URL, IP, CARD, PHONE, ADDRESS, NAME)
TYPES = PRIORITY
_RANK = {kind: rank for rank, kind in enumerate(PRIORITY)}


@dataclass(frozen=True, slots=True)
class Span:
    """One piece of personal data: its type, character offsets (end exclusive) and text."""

    type: str
    start: int
    end: int
    text: str

    def overlaps(self, other: Span) -> bool:
        return self.start < other.end and other.start < self.end


def placeholder(kind: str) -> str:
    return f"[{kind}]"


def make_span(kind: str, text: str, start: int, end: int) -> Span:
    return Span(kind, start, end, text[start:end])


def settle_overlaps(spans: Iterable[Span]) -> list[Span]:
    """Keep the highest-priority (then longest) span wherever findings overlap, in text order."""
    kept: list[Span] = []
    ranked = sorted(spans, key=lambda s: (_RANK[s.type], s.start - s.end, s.start))
    for span in ranked:
        if not any(span.overlaps(other) for other in kept):
            kept.append(span)
    return sorted(kept, key=lambda s: s.start)


def replace_spans(text: str, spans: list[Span]) -> str:
    """The text with each (non-overlapping, ordered) span replaced by its typed placeholder."""
    if not spans:
        return text
    pieces: list[str] = []
    cursor = 0
    for span in spans:
        pieces.append(text[cursor : span.start])
        pieces.append(placeholder(span.type))
        cursor = span.end
    pieces.append(text[cursor:])
    return "".join(pieces)
