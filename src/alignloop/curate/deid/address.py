"""Postal addresses: a house number, a street name and a street suffix (US and UK style), with
an optional unit and an optional "City, ST 12345" tail; PO boxes; UK postcodes on their own.

A street name in lowercase ("12 oak street") counts only after a cue such as "live at" or
"address is", so that "walked 5 miles down the road" stays text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from alignloop.curate.deid.lexicon import word_set
from alignloop.curate.deid.spans import ADDRESS, Span, make_span

# Street suffixes: the USPS list of primary suffix names (Publication 28) and its standard
# abbreviations, plus British ones. Whole words may take a plural "s" ("Estates"); only
# abbreviations take a full stop, so "... to 5 Oak Lane." ends before the sentence's stop.
_SUFFIX_WORDS = word_set(
    """
    alley allee annex arcade avenue bayou beach bend bluff bottom boulevard branch bridge brook
    burg bypass camp canyon cape causeway center circle cliff club common corner course court
    cove creek crescent crest crossing crossroad curve dale dam divide drive estate expressway
    extension fall falls ferry field flat ford forest forge fork fort freeway garden gardens
    gateway glen green grove harbor harbour haven heights highway hill hollow inlet island isle
    junction key knoll lake land landing lane light loaf lock lodge loop mall manor meadow mews
    mill mission motorway mount mountain neck orchard oval overpass park parkway pass passage
    path pike pine place plain plaza point port prairie radial ramp ranch rapid rest ridge
    river road route row rue run shoal shore skyway spring spur square station stravenue stream
    street summit terrace throughway trace track trafficway trail trailer tunnel turnpike
    underpass union valley viaduct view village ville vista walk wall way well close embankment
    parade vale rise wharf wynd broadway
    """
)
_SUFFIX_ABBREVIATIONS = word_set(
    """
    aly anx arc ave av bch bnd blf btm blvd brg brk byp cyn cpe cswy ctr cir clf clb cmn cor
    crse ct cv crk cres crst xing xrd curv dv dr est expy ext fls fry fld flt frd frst frg frk
    ft fwy gdn gdns gtwy gln grn grv hbr hvn hts hwy hl holw islnd knl lk lndg ln lgt lck ldg
    mnr mdw ml msn mtwy mt mtn nck orch opas pkwy psge pne pl pln plz pt prt radl rnch rpd rst
    rdg riv rd rte shl shr skwy spg sq sta stra strm st smt ter terr trwy trce trak trfy trl
    trlr tunl tpke upas vly vw vlg wl
    """
)
_SUFFIX = (
    r"(?i:(?:" + "|".join(sorted(_SUFFIX_WORDS, key=lambda s: (-len(s), s))) + r")s?"
    r"|(?:" + "|".join(sorted(_SUFFIX_ABBREVIATIONS, key=lambda s: (-len(s), s))) + r")\.?)"
)
_DIRECTION = r"(?:[NSEW]|NE|NW|SE|SW|North|South|East|West)\.?"
_STREET_WORD = r"(?:[A-Za-z][A-Za-z'\u2019.-]*|\d{1,3}(?:st|nd|rd|th))"
_UNIT = (
    r"(?:,?[ ]*(?i:apt|apartment|suite|ste|unit|flat|fl|floor|room|rm|bldg|building)\.?[ ]*\#?"
    r"[A-Za-z0-9-]{1,6}|,?[ ]*\#[ ]?[A-Za-z0-9-]{1,6})"
)
_STATES = word_set(
    "Alabama Alaska Arizona Arkansas California Colorado Connecticut Delaware Florida Georgia "
    "Hawaii Idaho Illinois Indiana Iowa Kansas Kentucky Louisiana Maine Maryland Massachusetts "
    "Michigan Minnesota Mississippi Missouri Montana Nebraska Nevada Ohio Oklahoma Oregon "
    "Pennsylvania Tennessee Texas Utah Vermont Virginia Washington Wisconsin Wyoming"
)
_STATE = (
    r"(?:[A-Z]{2,3}(?!\w)|(?:New|North|South|West|Rhode)[ ][A-Z][a-z]+|District[ ]of[ ]Columbia|"
    + "|".join(sorted(_STATES))
    + ")"
)
# US ZIP (+4), Australian postcode, Canadian postal code.
_ZIP = r"(?:\d{5}(?:-\d{4})?|\d{4}|[A-Z]\d[A-Z][ ]?\d[A-Z]\d)(?!\w)"
# The inward code's letters are not checked against the Royal Mail's rules (typos still count),
# but sizes like "PS5 1TB" are not postcodes.
_UK_POSTCODE = r"(?:GIR[ ]?0AA|[A-Z]{1,2}\d[A-Z\d]?[ ]?\d(?!(?:GB|TB|MB|KB|PM|AM)\b)[A-Z]{2})"
_CITY = r"[A-Z][A-Za-z.'\u2019-]*(?:[ ][A-Z][A-Za-z.'\u2019-]*){0,2}"
_PLACE_TAIL = (
    rf"(?:,?[ \n]+{_CITY}(?:,?[ ]+{_UK_POSTCODE}|,?[ ]+{_STATE}(?:,?[ ]+{_ZIP})?|,?[ ]+{_ZIP}))"
)
_STREET = re.compile(
    rf"""
    (?<![\w.,/-])
    (?P<number>\d{{1,6}}[A-Za-z]?(?:[-/]\d{{1,4}})?),?[ ]+
    (?:{_DIRECTION}[ ]+)?
    (?P<name>{_STREET_WORD}(?:[ ]+{_STREET_WORD}){{0,3}}?)[ ]+
    (?P<suffix>{_SUFFIX})
    (?![\w'\u2019])
    (?:[ ]+{_DIRECTION}(?![\w'\u2019]))?
    {_UNIT}?
    {_PLACE_TAIL}?
    """,
    re.X,
)
_DIGIT = re.compile(r"\d")
_PO_BOX = re.compile(r"\b(?i:p\.?[ ]?o\.?[ ]?box|post[ ]office[ ]box)[ ]+\d{1,6}\b")
_POSTCODE = re.compile(rf"(?<![\w-]){_UK_POSTCODE}(?![\w-])")
_CUE = re.compile(
    r"\b(?:live[sd]?|living|located|address(?:[ ]is)?|ship(?:ped)?|deliver(?:ed)?|send|sent|"
    r"mail(?:ed)?|moved?|stay(?:ing)?|based|house|home)\b(?:[ ]+(?:at|on|to|in|is))?[ :,]*$",
    re.I,
)
# Words that are not part of a street name even when capitalised ("Top 10 Tips To Walk").
_NOT_STREET_WORDS = {
    "the", "a", "an", "and", "or", "of", "in", "on", "at", "to", "for", "from", "by", "with",
    "my", "your", "our", "his", "her", "their", "this", "that", "these", "those", "is", "are",
    "was", "were", "be", "it", "i", "you", "we", "they", "he", "she", "more", "most", "less",
    "times", "years", "days", "hours", "minutes", "miles", "km", "kilometers", "blocks",
}  # fmt: skip


def street_words_ok(match: re.Match[str], text: str) -> bool:
    """Capitalised street names always count; lowercase ones only after an address cue."""
    words = match.group("name").split()
    if any(w.lower() in _NOT_STREET_WORDS for w in words):
        return False
    words.append(match.group("suffix"))
    if all(w[0].isupper() or w[0].isdigit() for w in words):
        return True
    return bool(_CUE.search(text, max(0, match.start() - 30), match.start()))


def find_addresses(text: str) -> Iterator[Span]:
    if not _DIGIT.search(text):
        return
    for m in _STREET.finditer(text):
        if street_words_ok(m, text):
            yield make_span(ADDRESS, text, m.start(), m.end())
    for pattern in (_PO_BOX, _POSTCODE):
        for m in pattern.finditer(text):
            yield make_span(ADDRESS, text, m.start(), m.end())
