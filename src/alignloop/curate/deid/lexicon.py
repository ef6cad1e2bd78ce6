"""The name lexicon (US Census first names and surnames, shipped in ``data/``), loaded once."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class Lexicon:
    first_names: frozenset[str]
    ambiguous_first_names: frozenset[str]  # also English words: names only with context
    surnames: frozenset[str]  # surnames that are not English words
    surname_words: frozenset[str]  # surnames that are also English words ("Brown", "Young")

    def is_surname(self, key: str) -> bool:
        return key in self.surnames or key in self.surname_words


def _read(name: str) -> frozenset[str]:
    text = resources.files("alignloop.curate.deid").joinpath("data", name).read_text()
    return frozenset(line for line in text.splitlines() if line and not line.startswith("#"))


@cache
def lexicon() -> Lexicon:
    return Lexicon(
        first_names=_read("first_names.txt"),
        ambiguous_first_names=_read("ambiguous_first_names.txt"),
        surnames=_read("surnames.txt"),
        surname_words=_read("surname_words.txt"),
    )


def word_set(text: str) -> frozenset[str]:
    """A set of words written as one whitespace-separated string (easier to read in code)."""
    return frozenset(text.split())


def name_key(word: str) -> str:
    """The lexicon's spelling of a word: lowercase ASCII letters ("O'Brien" -> "obrien")."""
    if not word.isascii():
        folded = unicodedata.normalize("NFKD", word)
        word = "".join(c for c in folded if not unicodedata.combining(c))
    return word.lower().replace("'", "").replace("\u2019", "")
