"""Payment card numbers (Luhn-checked) and phone numbers (by the shapes people write them in).

Phones are matched by layout rather than by any digit run, so dates (2024-03-15, 15.03.2024),
prices, years, version strings and IP addresses do not look like phones: a number must be
international (+CC or 00CC), North American (3-3-4, optionally (area) and a leading 1),
national with a trunk 0 (UK 020 7946 0958, 07700 900123, (0191) 496 0000; French pairs
01 23 45 67 89), a dashed local 555-0123, or ten or eleven bare digits right after a word
like "call".
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from alignloop.curate.deid.spans import CARD, PHONE, Span, make_span

_DIGIT = re.compile(r"\d")
_SEVEN_DIGITS = re.compile(r"\d(?:[^\d\n]{0,3}\d){6}")

_CARD = re.compile(r"(?<![\w.,-])\d(?:[ -]?\d){12,18}(?![\w]|[.,-]\d)")
_CARD_SEPARATORS = re.compile(r"[ -]")

_PHONE = re.compile(
    r"""
    (?<![\w+.\-/:$€£])
    (?:
        (?P<intl>(?:\+|00)\d{1,3}(?:[ .\-]?\(0\))?(?:[ .\-]?\(?\d{1,5}\)?){1,6})
      | (?P<nanp>(?:1[ .\-]?)?(?:\(\d{3}\)[ .\-]?|\d{3}[ .\-])\d{3}[ .\-]\d{4})
      | (?P<trunk>\(0\d{1,4}\)[ .\-]?\d{2,4}(?:[ .\-]?\d{2,4}){1,2})
      | (?P<pairs>0\d(?:[ .\-]\d\d){4})
      | (?P<national>0\d{2,4}[ .\-]?\d{3,4}[ .\-]?\d{3,4})
      | (?P<local>\d{3}-\d{4})
      | (?P<bare>\d{10,11})
    )
    (?:[ ]?(?:x|ext\.?|extension)[ ]?\d{1,5})?
    (?![\w]|[.\-/:,]\d)
    """,
    re.X,
)
_PHONE_CUE = re.compile(
    r"\b(?:call|phone|tel|telephone|mobile|cell|cellphone|number|num|no|text|txt|sms|whatsapp"
    r"|reach|contact|fax|dial|ring)\b[^\d\n]{0,15}$",
    re.I,
)
_DIGIT_COUNT = {
    "intl": (8, 15),
    "nanp": (10, 11),
    "trunk": (8, 11),
    "pairs": (10, 10),
    "national": (10, 11),
}


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum every payment card number carries in its last digit."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def is_card_number(candidate: str) -> bool:
    """13 to 19 digits from a card network's range (2-6), Luhn-valid, in groups of 3+ digits."""
    groups = _CARD_SEPARATORS.split(candidate)
    if len(groups) > 1 and min(len(g) for g in groups) < 3:
        return False
    digits = "".join(groups)
    return 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn_ok(digits)


def find_cards(text: str) -> Iterator[Span]:
    if not _SEVEN_DIGITS.search(text):
        return
    for m in _CARD.finditer(text):
        if is_card_number(m.group()):
            yield make_span(CARD, text, m.start(), m.end())


def digit_count(candidate: str) -> int:
    return sum(c.isdigit() for c in candidate)


def is_phone(match: re.Match[str], text: str) -> bool:
    shape = match.lastgroup or ""
    if shape == "bare":
        return bool(_PHONE_CUE.search(text, max(0, match.start() - 30), match.start()))
    if shape in _DIGIT_COUNT:
        low, high = _DIGIT_COUNT[shape]
        return low <= digit_count(match.group(shape)) <= high
    return True


def find_phones(text: str) -> Iterator[Span]:
    if not _SEVEN_DIGITS.search(text):
        return
    for m in _PHONE.finditer(text):
        if is_phone(m, text):
            yield make_span(PHONE, text, m.start(), m.end())
