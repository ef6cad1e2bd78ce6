"""Public corpora installed as packages and read offline.

chatterbot-corpus (BSD): short conversations in YAML, one file per category and language
(`chatterbot_corpus/data/<language>/<category>.yml`, a `conversations:` list of utterance lists).
Safety (topic negatives, baked-in mixing) and evaluation (benign prompts) read it through here.
"""

from __future__ import annotations

from pathlib import Path

from alignloop.errors import NotFound


def chatterbot_root() -> Path:
    try:
        from chatterbot_corpus.corpus import DATA_DIRECTORY
    except ImportError as exc:
        raise NotFound(
            "the chatterbot-corpus package is not installed (pip install chatterbot-corpus)",
            "chatterbot",
        ) from exc
    return Path(DATA_DIRECTORY)


def chatterbot_languages() -> list[str]:
    return sorted(p.name for p in chatterbot_root().iterdir() if p.is_dir())


def chatterbot_categories(language: str = "english") -> list[str]:
    """The categories of one language, sorted; NotFound naming the languages there are."""
    folder = chatterbot_root() / language
    if not folder.is_dir():
        raise NotFound(
            f"chatterbot-corpus has no language {language!r}; languages: "
            f"{', '.join(chatterbot_languages())}",
            "chatterbot",
        )
    return sorted(p.stem for p in folder.glob("*.yml"))


def chatterbot_conversations(category: str, language: str = "english") -> list[list[str]]:
    """The conversations of one category, in file order, each a list of utterances."""
    import yaml

    path = chatterbot_root() / language / f"{category}.yml"
    if not path.is_file():
        known = ", ".join(chatterbot_categories(language))
        raise NotFound(
            f"chatterbot-corpus has no {language}/{category}; {language} categories: {known}",
            "chatterbot",
        )
    loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    talks = (
        [str(turn) for turn in talk if turn is not None]
        for talk in loaded.get("conversations") or []
    )
    return [talk for talk in talks if talk]
