"""The sensitive-topic classifier (SPEC §4): P(sensitive | utterance) for drugs, politics,
religion, medical advice and relationships/NSFW, used at the recommended threshold 0.55.

(Not to be confused with `topics.txt`: the SAFE topics the non-sequitur canned reply offers.)

It is a safety classifier kind trained on our own data, by default the embedding kind (a
logistic head on MiniLM sentence embeddings), with `kind: finetune` MiniLM fine-tuned end to
end; either plugs in wherever a `SafetyClassifier` is taken: `score(context, utterance)` is
P(the utterance is on a sensitive topic). It reads the utterance alone (features 'response',
no context turns): the topic is what the judged text is about.

Data
----
`sensitive_topics.jsonl` (package data, written for this package): `{"text", "topic"}` rows, the
topic one of `SENSITIVE_TOPICS` or "none". Labelling rules, applied throughout:

- drugs: recreational or illegal drugs, getting high or drunk, drinking problems, underage
  drinking, hangovers, smoking and vaping, misusing someone else's prescription drugs, dealing,
  rehab and relapse. Alcohol as food (a wine to go with salmon, a beer for a barbecue) is none.
- politics: governments, politicians, parties, elections and voting, ideologies, policy
  debates (abortion, guns, immigration, taxes, ...), protests, wars in the news; historical
  political questions too ("the worst president in history").
- religion: belief, God, worship, prayer, scripture, doctrine, religious practice, conversion,
  faith and doubt, debates about religion. Visiting a famous church as a tourist or a holiday
  as a date or a market ("What time does the Christmas market open?") is none.
- medical_advice: someone's symptom, illness, injury, diagnosis, test result, medication or
  supplement dose or interaction, treatment, pregnancy care or mental-health condition.
  General wellness without a condition or a dose question (sleep habits, a workout routine,
  "I take vitamin D every morning, is 2pm too late for coffee?") and hospitals or pharmacies
  as places (parking, opening hours) are none.
- relationships_nsfw: romance, dating, crushes, flirting, sex and sexual content, partners and
  spouses, cheating, breakups, marriage trouble and divorce, requests for erotic content or for
  the bot to be a partner. Family and friends in everyday matters (a sister's wedding outfit,
  a best friend's surprise party) and "love" of food or pets are none.
- Figurative uses are none: "this song is my new drug", "I'm addicted to this show",
  "that exam killed me".
- none: everything else (hobbies, food, travel, tech, sports, school, work, weather, pets,
  films, small talk), including the borderline-but-benign cases above.

Real rows from the `chatterbot_corpus` package (English) are added (`extra_positives`,
`extra_negatives`), each statement as one utterance without the conversation around it:

- 'politics': every statement is politics, except the replies that are political only through
  the question before them (`POLITICS_CONTEXT_ONLY`, e.g. "it changes every few years." after
  "who is the governor"), which are left out.
- 'health' is one short conversation about being ill; its statements about the illness or the
  medicine ("I have a fever", "Did you take medicine?", "I'm not feeling well") are
  medical_advice, the rest ("why?", "Yes.", "Get well soon dear") is left out.
- `NEGATIVE_CATEGORIES` (AI, bot profile, computers, conversations, emotion, food, gossip,
  greetings, history, humor, literature, money, movies, science, sports, tech support, trivia)
  give none rows: the opening statement of each conversation (the user's line), except those
  that touch a sensitive topic by `SENSITIVE_WORDS` (trivia about presidents, "i like wine,
  do you?", "Have you ever love"): they were not written as examples of either class and are
  left out rather than labelled. The corpus bot's replies are not used as negatives: measured
  while the data was built (three seeds), with them the head (balanced class weights) gives
  each of the many negatives less weight, and 10-17% of the held-out shipped none rows scored
  sensitive instead of 3-9%, held-out F1 0.82-0.86 instead of 0.86-0.89.
- 'psychology' (insults at the bot such as "you are an addict") and 'coding' (code listings,
  not utterances) are not used.
- Statements of more than one line are left out; a text already seen (case and spacing
  ignored) is used once, the shipped row first.

The split is stratified by (source, topic): in each group a seeded shuffle puts
`held_out_fraction` of the rows (rounded) in the held-out split, so both splits mix every topic
and every source but the tiniest, are disjoint, and are the same for the same seed.
"""

from __future__ import annotations

import json
import random
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from alignloop.config import Settings
from alignloop.errors import InvalidInput
from alignloop.safety.classifiers import OnProgress, SafetyClassifier, read_manifest, write_manifest
from alignloop.safety.data import SafetyExample

SENSITIVE_TOPICS = ("drugs", "politics", "religion", "medical_advice", "relationships_nsfw")
NONE = "none"
TOPICS = (*SENSITIVE_TOPICS, NONE)
THRESHOLD = 0.55  # SPEC §4: the topic classifier fires at P(sensitive) >= 0.55
DATA_FILE = "sensitive_topics.jsonl"
SHIPPED = "shipped"
TASK = "sensitive_topics"

NEGATIVE_CATEGORIES = (
    "ai",
    "botprofile",
    "computers",
    "conversations",
    "emotion",
    "food",
    "gossip",
    "greetings",
    "history",
    "humor",
    "literature",
    "money",
    "movies",
    "science",
    "sports",
    "tech_support",
    "trivia",
)
POLITICS_CONTEXT_ONLY = frozenset(
    {
        "when a person's honor or reputation has been challenged or discredited.",
        "that is perfectly understandable.",
        "not especially. i am not into violence.",
        "andrew johnson.",
        "it changes every few years.",
        "that changes every few years.",
    }
)
MEDICAL_HEALTH_LINES = frozenset(
    {"i'm not feeling well", "i have a fever", "did you take medicine?"}
)
SENSITIVE_WORDS = re.compile(
    r"drug|drunk|tipsy|\bdrink|wine|beer|vodka|whisk|alcohol|liquor|smok|cigar|weed|marijuana"
    r"|cannabis|cocaine|heroin|\bgods?\b|church|bible|pope|relig|christ|jesus|pray|heaven|\bhell\b"
    r"|\bsin\b|devil|\bangels?\b|soul|spirit|faith|muslim|islam|jew|hindu|buddh|temple|mosque"
    r"|\bsex|love|kiss|\bdate\b|dating|boyfriend|girlfriend|husband|wife|marri|romanc|romantic"
    r"|crush|flirt|testicle|mating|doctor|\bdr\.|medic|disease|cancer|\bsick|\bill\b|illness"
    r"|\bpain|pill|hospital|nurse|health|symptom|president|politic|government|vote|elect"
    r"|senat|congress|parliament|minister|democra|republican|communis|socialis|capitalis"
    r"|\bwars?\b|assassin|fascis|nazi|dictator|obama|constitution|\blaws?\b|relationship"
    r"|hitler|intoxicat|priest|\bnuns?\b|\bblood\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class TopicRow:
    text: str
    topic: str  # one of TOPICS
    source: str  # 'shipped' or 'chatterbot:<category>'

    @property
    def sensitive(self) -> bool:
        return self.topic != NONE

    def example(self) -> SafetyExample:
        return SafetyExample([], self.text, self.sensitive)


def shipped_rows() -> list[TopicRow]:
    """The rows of `sensitive_topics.jsonl`, in file order; a bad row raises InvalidInput."""
    text = resources.files("alignloop.safety").joinpath(DATA_FILE).read_text(encoding="utf-8")
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if not isinstance(row.get("text"), str) or not row["text"].strip():
            raise InvalidInput(f"{DATA_FILE} row {number}: text must be a non-empty string", "data")
        if row.get("topic") not in TOPICS:
            raise InvalidInput(
                f"{DATA_FILE} row {number}: topic must be one of {', '.join(TOPICS)}", "data"
            )
        rows.append(TopicRow(row["text"], row["topic"], SHIPPED))
    return rows


def chatterbot_statements(category: str, openers_only: bool = False) -> list[str]:
    """The statements of the English chatterbot-corpus category, in file order: all of them,
    or with `openers_only` the first statement of each conversation (the user's line)."""
    from alignloop.corpora import chatterbot_conversations

    return [
        statement.strip()
        for conversation in chatterbot_conversations(category)
        for statement in (conversation[:1] if openers_only else conversation)
    ]


def chatterbot_rows(negatives: bool = True, positives: bool = True) -> list[TopicRow]:
    """Labelled chatterbot-corpus statements by the rules of the module docstring."""
    rows: list[TopicRow] = []
    if positives:
        for text in chatterbot_statements("politics"):
            if text.casefold() not in POLITICS_CONTEXT_ONLY:
                rows.append(TopicRow(text, "politics", "chatterbot:politics"))
        for text in chatterbot_statements("health"):
            if text.casefold() in MEDICAL_HEALTH_LINES:
                rows.append(TopicRow(text, "medical_advice", "chatterbot:health"))
    if negatives:
        for category in NEGATIVE_CATEGORIES:
            for text in chatterbot_statements(category, openers_only=True):
                if not SENSITIVE_WORDS.search(text):
                    rows.append(TopicRow(text, NONE, f"chatterbot:{category}"))
    return [row for row in rows if row.text and "\n" not in row.text]


def _key(text: str) -> str:
    return " ".join(text.casefold().split())


def sensitive_topic_rows(
    extra_negatives: bool = True, extra_positives: bool = True
) -> list[TopicRow]:
    """The shipped rows, then the chatterbot ones; each text (case and spacing ignored) once."""
    seen: set[str] = set()
    rows = []
    for row in shipped_rows() + chatterbot_rows(extra_negatives, extra_positives):
        if _key(row.text) not in seen:
            seen.add(_key(row.text))
            rows.append(row)
    return rows


def split_rows(
    rows: Sequence[TopicRow], held_out_fraction: float = 0.2, seed: int = 0
) -> tuple[list[TopicRow], list[TopicRow]]:
    """(train, held-out), stratified by (source, topic); the same rows for the same seed."""
    groups: dict[tuple[str, str], list[TopicRow]] = {}
    for row in rows:
        groups.setdefault((row.source, row.topic), []).append(row)
    train: list[TopicRow] = []
    held_out: list[TopicRow] = []
    for (source, topic), group in groups.items():
        order = list(group)
        random.Random(f"{seed}:{source}:{topic}").shuffle(order)
        cut = round(len(order) * held_out_fraction)
        held_out += order[:cut]
        train += order[cut:]
    return train, held_out


def sensitive_topic_split(
    extra_negatives: bool = True,
    seed: int = 0,
    held_out_fraction: float = 0.2,
    extra_positives: bool = True,
    exclude: Iterable[str] = (),
) -> tuple[list[TopicRow], list[TopicRow]]:
    """The labelled rows (with topic and source) split into (train, held-out); a row whose
    text is one of `exclude` (case and spacing ignored) is in neither."""
    skip = {_key(text) for text in exclude}
    rows = [
        r
        for r in sensitive_topic_rows(extra_negatives, extra_positives)
        if _key(r.text) not in skip
    ]
    return split_rows(rows, held_out_fraction, seed)


def sensitive_topic_examples(
    extra_negatives: bool = True,
    seed: int = 0,
    held_out_fraction: float = 0.2,
    extra_positives: bool = True,
) -> tuple[list[SafetyExample], list[SafetyExample]]:
    """(train, held-out) SafetyExamples: no context, the utterance as response, label True
    (sensitive) for every topic but none."""
    train, held_out = sensitive_topic_split(
        extra_negatives, seed, held_out_fraction, extra_positives
    )
    return [r.example() for r in train], [r.example() for r in held_out]


class SensitiveTopicsConfig(Settings):
    """Train the sensitive-topic classifier (drugs, politics, religion, medical advice,
    relationships/NSFW) on the shipped data and save it as a classifier folder."""

    out: str = Field(..., description="Folder to write the classifier to (must not exist yet).")
    db: str | None = Field(
        None, description="Store to register the classifier in (file path or URL)."
    )
    name: str | None = Field(
        None, description="Name of the registered version (default: 'sensitive-topics-<out name>')."
    )
    parent: str | None = Field(None, description="Registered version this one improves on.")
    threshold: float = Field(
        THRESHOLD,
        ge=0,
        le=1,
        description="P(sensitive) at or above which a row counts sensitive (the recommended "
        "threshold recorded in the manifest).",
    )
    held_out_fraction: float = Field(
        0.2, gt=0, lt=1, description="Share of each (source, topic) group held out for metrics."
    )
    seed: int = Field(0, description="Seed of the train/held-out split and of the solver.")
    extra_negatives: bool = Field(
        True,
        description="Add the opening statements of chatterbot-corpus conversations of "
        "non-sensitive categories as none.",
    )
    extra_positives: bool = Field(
        True,
        description="Add chatterbot-corpus 'politics' statements and the medical 'health' "
        "ones as sensitive.",
    )
    kind: Literal["embedding", "finetune"] = Field(
        "embedding",
        description="embedding: a logistic head on frozen MiniLM sentence embeddings (seconds "
        "to train); finetune: MiniLM fine-tuned end to end (a minute or two on a CPU; a "
        "slightly better held-out F1, see README.md's safety recipes).",
    )
    exclude: str | None = Field(
        None,
        description="Texts never trained or held out on, one a line (.txt) or one JSON string a "
        "line (.jsonl): an evaluation's or a calibration's prompts.",
    )
    inverse_regularization: float = Field(
        4.0, gt=0, description="Logistic regression's C (kind embedding; smaller: stronger L2 "
        "penalty).",
    )  # fmt: skip
    epochs: float = Field(
        3.0, gt=0, description="Fine-tuning passes over the data (kind finetune)."
    )
    max_length: int = Field(128, ge=8, description="Tokens per encoded utterance.")
    score_batch_size: int = Field(32, ge=1, description="Texts encoded at once.")
    device: str | None = Field(None, description="Torch device (default: cuda if any, else cpu).")


@dataclass
class TopicClassifier:
    classifier: SafetyClassifier
    folder: Path
    name: str
    metrics: dict[str, Any]
    version_id: int | None = None


def topic_metrics(
    rows: Sequence[TopicRow], scores: Sequence[float], threshold: float
) -> dict[str, Any]:
    """Sensitive-class F1, precision, recall and accuracy at `threshold`; each sensitive topic's
    recall; and the share of none rows, shipped and from chatterbot, scored sensitive."""
    import numpy as np

    from alignloop.safety.train import classification_metrics

    scores = np.asarray(scores, dtype=float)
    fired = scores >= threshold
    overall = classification_metrics([r.sensitive for r in rows], scores, threshold)
    metrics: dict[str, Any] = {
        key.replace("unsafe", "sensitive"): value for key, value in overall.items()
    }

    def share(picked: list[int]) -> float | None:
        return float(fired[picked].mean()) if picked else None

    metrics["topic_recall"] = {
        topic: share([i for i, r in enumerate(rows) if r.topic == topic])
        for topic in SENSITIVE_TOPICS
    }
    metrics["none_flagged"] = {
        "shipped": share(
            [i for i, r in enumerate(rows) if not r.sensitive and r.source == SHIPPED]
        ),
        "chatterbot": share(
            [i for i, r in enumerate(rows) if not r.sensitive and r.source != SHIPPED]
        ),
    }
    return metrics


def write_rows(path: Path, rows: Sequence[TopicRow]) -> Path:
    """Rows as safety data (context, response, label) plus their topic and source."""
    path.write_text(
        "".join(
            json.dumps(
                {
                    "context": [],
                    "response": r.text,
                    "label": "unsafe" if r.sensitive else "safe",
                    "topic": r.topic,
                    "source": r.source,
                },
                ensure_ascii=False,
            )
            + "\n"
            for r in rows
        ),
        encoding="utf-8",
    )
    return path


def train_topic_classifier(
    config: SensitiveTopicsConfig, on_progress: OnProgress | None = None
) -> TopicClassifier:
    """Split the data, train through `alignloop safety train`'s path (the config's kind, metrics
    on the held-out rows), record the topic task in the manifest and register the folder.

    The classifier is trained in a hidden sibling folder, with its train and held-out rows
    copied in (the manifest's `data` and `eval_data` point at them), and becomes `out` only
    when everything succeeded."""
    import shutil

    from alignloop.safety.config import SafetyTrainConfig
    from alignloop.safety.multitask import read_prompts
    from alignloop.safety.train import check_out_free, register, train_classifier
    from alignloop.store.versions import check_name_free

    out = Path(config.out)
    check_out_free(out)
    name = config.name or f"sensitive-topics-{out.resolve().name}"
    if config.db:
        check_name_free(config.db, name)
    exclude = read_prompts(config.exclude) if config.exclude else set()
    train, held_out = sensitive_topic_split(
        config.extra_negatives, config.seed, config.held_out_fraction, config.extra_positives,
        exclude,
    )  # fmt: skip
    if not train or not held_out:
        raise InvalidInput("held_out_fraction leaves no train or no held-out rows", "data")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.topics-", dir=out.parent) as work:
        staged = Path(work) / "classifier"
        data = write_rows(Path(work) / "train.jsonl", train)
        eval_data = write_rows(Path(work) / "held_out.jsonl", held_out)
        settings = SafetyTrainConfig(
            kind=config.kind,
            data=str(data),
            eval_data=str(eval_data),
            out=str(staged),
            name=name,
            parent=config.parent,
            seed=config.seed,
            context_turns=0,
            features="response",
            class_weight="balanced",
            threshold=config.threshold,
            inverse_regularization=config.inverse_regularization,
            epochs=config.epochs,
            max_length=config.max_length,
            score_batch_size=config.score_batch_size,
            device=config.device,
        )
        trained = train_classifier(settings, on_progress)
        # the rows were just embedded during evaluation: scoring them again hits the cache
        scores = trained.classifier.score_batch([([], r.text) for r in held_out])
        metrics = trained.metrics | {
            "task": TASK,
            "recommended_threshold": config.threshold,
            "eval_at_threshold": topic_metrics(held_out, scores, config.threshold),
            "eval_at_0.5": topic_metrics(held_out, scores, 0.5),
        }
        final = out.resolve()
        shutil.copy(data, staged / "train.jsonl")
        shutil.copy(eval_data, staged / "held_out.jsonl")
        manifest = read_manifest(staged) or {}
        manifest_config = manifest["config"] | {
            "data": str(final / "train.jsonl"),
            "eval_data": str(final / "held_out.jsonl"),
            "out": str(final),
        }
        manifest |= {
            "task": TASK,
            "topics": list(SENSITIVE_TOPICS),
            "recommended_threshold": config.threshold,
            "data": str(final / "train.jsonl"),
            "config": manifest_config,
            "topic_config": config.model_dump(mode="json"),
            "metrics": metrics,
        }
        manifest.pop("format", None)
        write_manifest(staged, manifest)
        check_out_free(out)
        if out.is_dir():
            out.rmdir()  # empty, checked just now
        staged.rename(out)
    result = TopicClassifier(trained.classifier, out, name, metrics)
    if config.db:
        result.version_id = register(config.db, manifest, out)
    return result
