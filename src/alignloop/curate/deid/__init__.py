"""De-identification: find personal data in text and replace it with typed placeholders.

``scrub(text)`` returns the text with each e-mail address, URL, IP address, payment card number
(Luhn-valid), phone number, postal address and person name replaced by ``[EMAIL]``, ``[URL]``,
``[IP]``, ``[CARD]``, ``[PHONE]``, ``[ADDRESS]`` or ``[NAME]``; ``find(text)`` returns the spans.
Everything runs offline on precompiled patterns and a shipped name lexicon (no model), fast
enough for millions of chat messages. ``benchmarks/deid.py`` measures precision and recall.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from alignloop.curate.deid.address import find_addresses
from alignloop.curate.deid.contact import find_emails, find_ips, find_urls
from alignloop.curate.deid.names import find_names
from alignloop.curate.deid.numbers import find_cards, find_phones
from alignloop.curate.deid.pseudonyms import new_release_secret, rehash_user_id
from alignloop.curate.deid.spans import TYPES, Span, placeholder, replace_spans, settle_overlaps

__all__ = [
    "RECOGNISERS",
    "TYPES",
    "Span",
    "find",
    "new_release_secret",
    "placeholder",
    "rehash_user_id",
    "scrub",
]

RECOGNISERS: tuple[Callable[[str], Iterable[Span]], ...] = (
    find_emails,
    find_urls,
    find_ips,
    find_cards,
    find_phones,
    find_addresses,
    find_names,
)


def find(text: str) -> list[Span]:
    """Every piece of personal data in the text, non-overlapping, in text order."""
    if not text:
        return []
    found = [span for recognise in RECOGNISERS for span in recognise(text)]
    return settle_overlaps(found)


def scrub(text: str) -> str:
    """The text with each piece of personal data replaced by its typed placeholder."""
    return replace_spans(text, find(text))
