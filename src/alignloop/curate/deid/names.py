"""Person names, from a first-name and surname lexicon plus the context people write names in.

A capitalised word starts a name when it is
  - a known first name that is not also an English word ("Sarah", "Priya"), or
  - a first name that is also a word ("Will", "May", "Grace") followed by a known surname, or
  - any capitalised word followed by a known surname that is not a word ("Jürgen Schmidt"), or
  - any capitalised word after a title ("Dr. Okafor"), a strong cue ("my name is", "call me",
    "my friend", "Hi", "Regards,"), or a first name after "I'm" / "this is".
A name then takes in a middle initial, particles (van, de, al) and following capitalised words.
Ordinary capitalised words (sentence starts, "Monday", "Street") never start or extend a name.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from alignloop.curate.deid.lexicon import Lexicon, lexicon, name_key, word_set
from alignloop.curate.deid.spans import NAME, Span

_TOKEN = re.compile(r"[^\W\d_]+(?:['\u2019\-][^\W\d_]+)*")
_LOWER_CUES = re.compile(
    r"\b(?:name|call|i['\u2019]?m|i am|this is|it'?s|my|hi|hello|hey|dear|thanks|thank you"
    r"|bye|named|regards|cheers|sincerely|known as)\b",
    re.I,
)
_GAP_WORD = re.compile(r"[ \t]{1,2}")  # between the words of one name
_GAP_CUE = re.compile(r"[ \t]*(?:[,:\-\u2013\u2014][ \t]*)?\n?[ \t]*")  # between a cue and a name

# Capitalised words that are never (part of) a person's name, whatever the lexicon says.
_STOP = word_set(
    """
    a an the this that these those my your his her its our their i me you he she it we they
    him them us mine yours who whom whose what which when where why how whoever whatever
    and or but nor so yet if then than because as while though although unless until since
    of in on at to for from by with without about into onto over under after before between
    through during against among around near across up down out off via per
    is am are was were be been being do does did done have has had having can could shall
    should would might must ought let lets let's
    not no yes yeah yep nope ok okay oh ah hmm wow well also just only even still very really
    too much many more most some any all every each both either neither other another such
    here there now today tonight tomorrow yesterday always never often sometimes maybe perhaps
    hi hello hey dear thanks thank bye goodbye welcome sorry please cheers regards sincerely
    congrats congratulations greetings morning evening night afternoon
    monday tuesday wednesday thursday friday saturday sunday
    january february march july september october november december
    sir madam ma'am mister miss mrs mr ms dr prof lord god allah jesus christ
    team everyone everybody someone somebody anyone anybody nobody guys folks friends friend
    all world internet english french spanish german chinese japanese american british
    bot assistant chatgpt user admin support customer service
    call tell ask meet visit send give take make get go come see look find write read say
    thank check try use keep put bring let turn buy pay show help love like need want
    new old good great best bad big small little first last next same own other happy sure
    nice fine cool fun free real true right left long high low early late open full sweet
    re fw fwd ps btw fyi asap lol omg imo again anyway though everything nothing something
    anything mom mum dad mommy daddy mama papa grandma grandpa granny bro sis dude babe baby
    sweetie darling honey guy man pal mate
    i'm im i've i'd i'll it's that's there's here's what's who's he's she's we're they're
    you're we've they've you've don't doesn't didn't can't won't isn't aren't wasn't
    """
)
_TITLES = word_set(
    """
    mr mrs ms miss mx dr prof professor sir dame lady lord rev reverend fr pastor rabbi imam
    capt captain coach officer detective judge senator governor mayor sgt sergeant president
    king queen prince princess pope
    herr frau mme mlle monsieur madame señor señora senor senora sr sra
    """
)
_STRONG_CUES = (
    ("my", "name", "is"),
    ("name", "is"),
    ("name's",),
    ("call", "me"),
    ("i'm", "called"),
    ("am", "called"),
    ("named",),
    ("known", "as"),
    ("hi",),
    ("hello",),
    ("hey",),
    ("dear",),
    ("thanks",),
    ("thank", "you"),
    ("bye",),
    ("regards",),
    ("cheers",),
    ("sincerely",),
)
# "I'm Will" names Will; "this is May" more likely means the month, so after "this is" and
# "it's" only a first name that is not also a word counts.
_IM_CUES = (("i'm",), ("im",), ("i", "am"))
_THIS_IS_CUES = (("this", "is"), ("it's",))
_RELATIONS = word_set(
    """
    friend wife husband partner boyfriend girlfriend fiance fiancé fiancee fiancée spouse son
    daughter brother sister mom mum mother dad father boss colleague coworker co-worker
    neighbor neighbour cousin uncle aunt auntie grandma grandpa grandmother grandfather
    roommate flatmate teacher tutor doctor therapist manager landlord landlady ex kid baby
    child nephew niece stepson stepdaughter stepmom stepdad classmate buddy pal mate bestie
    """
)
_POSSESSIVES = word_set("my our your his her their best old little big")
_PARTICLES = word_set("van von de del della di da du der den la le bin ibn al el dos das st")


def _by_last_word(cues: tuple[tuple[str, ...], ...]) -> dict[str, list[tuple[str, ...]]]:
    index: dict[str, list[tuple[str, ...]]] = {}
    for cue in cues:
        index.setdefault(cue[-1], []).append(cue)
    return index


_STRONG_BY_LAST = _by_last_word(_STRONG_CUES)
_IM_BY_LAST = _by_last_word(_IM_CUES)
_THIS_IS_BY_LAST = _by_last_word(_THIS_IS_CUES)
_CONTEXT_WORDS = (
    _TITLES | _RELATIONS | set(_STRONG_BY_LAST) | set(_IM_BY_LAST) | set(_THIS_IS_BY_LAST)
)
# Words ending in "'s" that are not possessives.
_S_CONTRACTIONS = word_set(
    "it's that's what's there's here's he's she's who's let's name's where's how's"
)
# Capitalised words after a first name that make it a place or an organisation instead.
_NOT_NAME_NOUNS = word_set(
    """
    street st avenue ave road rd boulevard blvd lane drive way place square court park
    county city town village state river lake mountain mount island bay beach valley hill
    university college school academy institute hospital clinic church cathedral chapel
    airport station center centre hall museum library hotel bank foundation company inc llc
    ltd corp group airlines records studios memorial bridge tower day
    """
)
# A name right after these is part of a place ("San Jose", "St Helena", "Fort Collins").
_PLACE_PREFIXES = word_set(
    "san santa st saint fort port mount mt lake new los las el cape glen north south east west"
)


@dataclass(frozen=True, slots=True)
class Token:
    start: int
    end: int
    word: str
    key: str  # lexicon spelling
    lower: str  # with straight apostrophes


def tokenize(text: str) -> list[Token]:
    """Word tokens; a trailing possessive "'s" is left out of the token ("Anna's" -> "Anna")."""
    tokens = []
    for m in _TOKEN.finditer(text):
        word, end = m.group(), m.end()
        lower = word.lower().replace("\u2019", "'")
        if lower.endswith("'s") and len(word) > 2 and lower not in _S_CONTRACTIONS:
            word, end, lower = word[:-2], end - 2, lower[:-2]
        tokens.append(Token(m.start(), end, word, name_key(word), lower))
    return tokens


def is_capitalised(word: str) -> bool:
    """Title case like "Anna", "McDonald", "O'Brien"; not "NASA" (all capitals) nor "anna"."""
    return word[0].isupper() and (len(word) == 1 or not word[1:].isupper())


def first_part(key: str) -> str:
    return key.split("-", 1)[0]


def is_initial(tokens: list[Token], i: int, text: str) -> bool:
    """A middle initial: one capital letter followed by a full stop ("John F. Kennedy")."""
    tok = tokens[i]
    return len(tok.word) == 1 and tok.word.isupper() and text.startswith(".", tok.end)


class NameFinder:
    """Finds person names in one text; one instance per text (it holds the tokens)."""

    def __init__(self, text: str, lex: Lexicon) -> None:
        self.text = text
        self.lex = lex
        self.tokens = tokenize(text)

    def adjacent(self, i: int, j: int, gap: re.Pattern[str] = _GAP_WORD) -> bool:
        a, b = self.tokens[i], self.tokens[j]
        return gap.fullmatch(self.text, a.end, b.start) is not None

    def follows(self, i: int, cues: dict[str, list[tuple[str, ...]]]) -> bool:
        """Whether the words right before token i are one of the cue phrases."""
        if i == 0 or not self.adjacent(i - 1, i, _GAP_CUE):
            return False
        for cue in cues.get(self.tokens[i - 1].lower, ()):
            first = i - len(cue)
            if first < 0:
                continue
            words = tuple(self.tokens[k].lower for k in range(first, i))
            if words == cue and all(self.adjacent(k, k + 1) for k in range(first, i - 1)):
                return True
        return False

    def after_title(self, i: int) -> bool:
        prev = self.tokens[i - 1]
        gap = self.text[prev.end : self.tokens[i].start]
        return prev.lower in _TITLES and is_capitalised(prev.word) and gap in (" ", ". ")

    def after_relation(self, i: int) -> bool:
        if i < 2 or self.tokens[i - 1].lower not in _RELATIONS:
            return False
        if not self.adjacent(i - 1, i, _GAP_CUE):
            return False
        return any(self.tokens[k].lower in _POSSESSIVES for k in range(max(0, i - 3), i - 1))

    def after_place_prefix(self, i: int) -> bool:
        return i > 0 and self.tokens[i - 1].key in _PLACE_PREFIXES and self.adjacent(i - 1, i)

    def is_prefix_word(self, i: int) -> bool:
        """Titles and place prefixes come before a name; they do not start one."""
        tok = self.tokens[i]
        return tok.key in _PLACE_PREFIXES or tok.lower in _TITLES

    def plain_word(self, i: int) -> bool:
        """A capitalised word that could be part of a name (not a stop word)."""
        tok = self.tokens[i]
        return is_capitalised(tok.word) and tok.lower not in _STOP

    def next_is_surname(self, i: int, words_too: bool) -> bool:
        j = i + 1
        if j >= len(self.tokens) or not self.adjacent(i, j) or not self.plain_word(j):
            return False
        key = self.tokens[j].key
        return key in self.lex.surnames or (words_too and key in self.lex.surname_words)

    def start_kind(self, i: int) -> str | None:
        """Why token i starts a name: "context" (a cue or title), "lexicon", or None."""
        capitalised = self.plain_word(i)
        if i > 0 and self.tokens[i - 1].lower in _CONTEXT_WORDS and self.context_start(i):
            return "context"
        if not capitalised or self.after_place_prefix(i) or self.is_prefix_word(i):
            return None
        first = first_part(self.tokens[i].key)
        known = first in self.lex.first_names
        ambiguous = first in self.lex.ambiguous_first_names
        if known and not ambiguous:
            return "lexicon"
        if ambiguous and self.next_is_surname(i, words_too=True):
            return "lexicon"
        if not known and self.next_is_surname(i, words_too=False):
            return "lexicon"
        return None

    def context_start(self, i: int) -> bool:
        """A title, a relation, or a cue phrase right before token i makes it a name."""
        capitalised = self.plain_word(i)
        first = first_part(self.tokens[i].key)
        known = first in self.lex.first_names
        plain_known = known and first not in self.lex.ambiguous_first_names
        if capitalised and (self.after_title(i) or self.after_relation(i)):
            return True
        if self.follows(i, _STRONG_BY_LAST) and (capitalised or plain_known):
            return True
        if self.follows(i, _THIS_IS_BY_LAST):
            return plain_known
        return self.follows(i, _IM_BY_LAST) and ((capitalised and known) or plain_known)

    def extend(self, i: int, by_context: bool) -> int | None:
        """Index of the name's last token, or None when it turns out to be a place or firm."""
        last, parts = i, 1
        lowercase = not self.tokens[i].word[0].isupper()
        while parts < 4 and last + 1 < len(self.tokens):
            j = last + 1
            if not self.adjacent(last, j):
                break
            tok = self.tokens[j]
            if is_initial(self.tokens, j, self.text) and self.initial_then_word(j):
                last, parts = j + 1, parts + 2
            elif tok.lower in _PARTICLES and j + 1 < len(self.tokens) and self.adjacent(j, j + 1):
                if not self.plain_word(j + 1):
                    break
                last, parts = j + 1, parts + 2
            elif self.plain_word(j):
                if tok.key in _NOT_NAME_NOUNS:
                    return last if by_context and last > i else None
                if parts >= 2 and not self.known_name_part(tok.key):
                    break
                last, parts = j, parts + 1
            elif lowercase and by_context and self.lex.is_surname(tok.key):
                last, parts = j, parts + 1  # "my name is john smith"
            else:
                break
        return last

    def initial_then_word(self, j: int) -> bool:
        k = j + 1
        if k >= len(self.tokens):
            return False
        gap = self.text[self.tokens[j].end : self.tokens[k].start]
        return gap == ". " and self.plain_word(k)

    def known_name_part(self, key: str) -> bool:
        return self.lex.is_surname(key) or first_part(key) in self.lex.first_names

    def spans(self) -> Iterator[Span]:
        i = 0
        while i < len(self.tokens):
            kind = self.start_kind(i)
            last = self.extend(i, kind == "context") if kind else None
            if last is None:
                i += 1
                continue
            start, end = self.tokens[i].start, self.tokens[last].end
            yield Span(NAME, start, end, self.text[start:end])
            i = last + 1


def might_have_names(text: str) -> bool:
    """Cheap pre-check: names need a capital letter, or a cue for a lowercase name."""
    return not text.islower() or _LOWER_CUES.search(text) is not None


def find_names(text: str) -> Iterator[Span]:
    if not might_have_names(text):
        return iter(())
    return NameFinder(text, lexicon()).spans()
