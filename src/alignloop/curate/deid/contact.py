"""E-mail addresses, URLs (with a scheme, ``www.`` or a bare domain) and IP addresses."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator

from alignloop.curate.deid.lexicon import word_set
from alignloop.curate.deid.spans import EMAIL, IP, URL, Span, make_span

_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+"
    r"[A-Za-z]{2,24}(?![\w-])"
)

# Top-level domains accepted for a bare domain like "example.com/path". File extensions that are
# also country codes (.py, .sh, .md, .rs, .pl, .ps) are left out on purpose: "setup.py" is not
# a URL.
_BARE_TLDS = word_set(
    "com net org edu gov mil int info biz io co me tv app dev ai xyz online site tech store shop "
    "blog news cloud page link live ly gl to fm gg uk de fr es it nl be ch at se no dk fi ie pt "
    "gr cz hu ro ru ua tr il in jp cn kr tw hk sg au nz ca us mx br ar cl za eu"
)
_PATH = r"(?:[/?#][^\s<>\"'`]*)?"
_URL = re.compile(
    r"\b(?:https?|ftp)://[^\s<>\"'`]+"
    r"|(?<![\w@.-])www\.[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+" + _PATH + r"|(?<![\w@.-/])"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"(?:"
    + "|".join(sorted(_BARE_TLDS, key=lambda s: (-len(s), s)))
    + r")(?![\w-]|\.[A-Za-z0-9])"
    + _PATH
)
# Closing punctuation that ends a sentence rather than the URL.
_URL_TRAILING = ".,;:!?)]}'\""

_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])"
)
_VERSION_WORDS = re.compile(r"\b(?:version|ver|release|build|firmware|patch|update|v)\.?\s*$", re.I)


def find_emails(text: str) -> Iterator[Span]:
    if "@" not in text:
        return
    for m in _EMAIL.finditer(text):
        yield make_span(EMAIL, text, m.start(), m.end())


def find_urls(text: str) -> Iterator[Span]:
    if "." not in text:
        return
    for m in _URL.finditer(text):
        end = m.end()
        while end > m.start() and text[end - 1] in _URL_TRAILING:
            end -= 1
        yield make_span(URL, text, m.start(), end)


def is_ipv4(candidate: str) -> bool:
    return all(int(octet) <= 255 for octet in candidate.split("."))


def is_ipv6(candidate: str) -> bool:
    """A valid IPv6 address with at least one digit (so "add::" or "be:ef" stay words)."""
    if not any(c.isdigit() for c in candidate):
        return False
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return True


def find_ips(text: str) -> Iterator[Span]:
    if "." in text:
        for m in _IPV4.finditer(text):
            looks_like_version = _VERSION_WORDS.search(text, max(0, m.start() - 12), m.start())
            if is_ipv4(m.group()) and not looks_like_version:
                yield make_span(IP, text, m.start(), m.end())
    if "::" in text or text.count(":") >= 3:
        for m in _IPV6.finditer(text):
            if is_ipv6(m.group()):
                yield make_span(IP, text, m.start(), m.end())
