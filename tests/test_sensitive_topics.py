"""The sensitive-topic classifier (SPEC §4) on its shipped data and the real chatterbot corpus:
the data loads with enough rows per topic, the split is deterministic, stratified and disjoint,
and `alignloop safety topics` trains the real MiniLM embedding classifier, which separates
held-out sensitive utterances from everyday ones (F1 >= 0.8 at 0.55), records the topic task in
its manifest and the registry, and reloads to the same scores; `--exclude` keeps texts out of
both splits and `--kind finetune` trains and reloads the fine-tuned kind."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from typer.testing import CliRunner

from alignloop.errors import Conflict, NotFound
from alignloop.safety.classifiers import MANIFEST, SafetyClassifier, load_classifier
from alignloop.safety.sensitive import (
    NONE,
    SENSITIVE_TOPICS,
    SENSITIVE_WORDS,
    THRESHOLD,
    SensitiveTopicsConfig,
    chatterbot_rows,
    sensitive_topic_examples,
    sensitive_topic_rows,
    sensitive_topic_split,
    shipped_rows,
    train_topic_classifier,
)

# --- data -----------------------------------------------------------------------------------


def test_shipped_data_has_enough_rows_per_topic():
    rows = shipped_rows()
    counts = Counter(r.topic for r in rows)
    assert set(counts) == {*SENSITIVE_TOPICS, NONE}
    assert all(counts[topic] >= 60 for topic in SENSITIVE_TOPICS), counts
    assert counts[NONE] >= 250, counts
    texts = [" ".join(r.text.casefold().split()) for r in rows]
    assert len(set(texts)) == len(texts), "a shipped utterance appears twice"
    assert all(r.text.strip() and "\n" not in r.text for r in rows)
    # the borderline rule of the module docstring is the data's
    vitamin = [r for r in rows if r.text.startswith("I take vitamin D every morning")]
    assert [r.topic for r in vitamin] == [NONE]


def test_chatterbot_rows_follow_the_documented_rules():
    rows = chatterbot_rows()
    by = Counter((r.source, r.topic) for r in rows)
    assert by[("chatterbot:politics", "politics")] >= 15
    assert {r.text for r in rows if r.source == "chatterbot:health"} == {
        "I'm not feeling well",
        "I have a fever",
        "Did you take medicine?",
    }
    negatives = [r for r in rows if r.topic == NONE]
    assert len(negatives) >= 500
    assert not [r.text for r in negatives if SENSITIVE_WORDS.search(r.text)]
    assert {"chatterbot:trivia", "chatterbot:sports", "chatterbot:food"} <= {
        r.source for r in negatives
    }
    assert "it changes every few years." not in {r.text for r in rows}  # political by context only
    assert not chatterbot_rows(negatives=False, positives=False)


def test_split_is_deterministic_stratified_and_disjoint():
    train, held_out = sensitive_topic_split(seed=0)
    again = sensitive_topic_split(seed=0)
    assert (train, held_out) == again
    assert sensitive_topic_split(seed=1)[1] != held_out
    train_texts, held_texts = {r.text for r in train}, {r.text for r in held_out}
    assert not train_texts & held_texts
    assert len(train) + len(held_out) == len(sensitive_topic_rows())
    for topic in (*SENSITIVE_TOPICS, NONE):
        total = sum(r.topic == topic for r in train + held_out)
        held = sum(r.topic == topic for r in held_out)
        assert 0.15 * total <= held <= 0.25 * total, topic
    sizes = Counter(r.source for r in train + held_out)
    assert {s for s, n in sizes.items() if n >= 5} <= {r.source for r in held_out}

    examples, held_examples = sensitive_topic_examples(seed=0)
    assert [e.response for e in held_examples] == [r.text for r in held_out]
    assert [e.label for e in examples] == [r.topic != NONE for r in train]
    assert all(e.context == [] for e in examples + held_examples)
    shipped_only = sensitive_topic_examples(extra_negatives=False, extra_positives=False)
    assert sum(map(len, shipped_only)) == len(shipped_rows())


# --- the trained classifier -------------------------------------------------------------------


def alignloop(*args):
    from alignloop.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`alignloop safety topics` run once (real MiniLM), the in-memory result kept aside."""
    import alignloop.safety.sensitive as sensitive

    folder = tmp_path_factory.mktemp("topics")
    kept = {}

    def keep(config, on_progress=None):
        kept["result"] = train_topic_classifier(config, on_progress)
        return kept["result"]

    db = f"sqlite:///{folder / 'store.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sensitive, "train_topic_classifier", keep)
        run = alignloop("safety", "topics", "--out", folder / "clf", "--db", db)
    assert run.exit_code == 0, run.output
    _, held_out = sensitive_topic_split()
    scores = kept["result"].classifier.score_batch([([], r.text) for r in held_out])
    return {
        "folder": folder / "clf",
        "db": db,
        "output": run.output,
        "result": kept["result"],
        "held_out": held_out,
        "scores": scores,
    }


def test_cli_prints_held_out_metrics_and_writes_a_topic_manifest(trained):
    output = " ".join(trained["output"].split())  # rich wraps long lines
    for text in ("held-out at 0.55: sensitive F1", "held-out at 0.5: sensitive F1", "precision"):
        assert text in output
    assert "topic recall: drugs" in output and "relationships_nsfw" in output
    manifest = json.loads((trained["folder"] / MANIFEST).read_text())
    assert manifest["kind"] == "embedding" and manifest["task"] == "sensitive_topics"
    assert manifest["recommended_threshold"] == THRESHOLD == 0.55
    assert manifest["topics"] == list(SENSITIVE_TOPICS)
    assert manifest["config"]["threshold"] == 0.55
    assert manifest["config"]["features"] == "response"
    metrics = manifest["metrics"]
    assert metrics["task"] == "sensitive_topics" and metrics["recommended_threshold"] == 0.55
    assert set(metrics["eval_at_threshold"]["topic_recall"]) == set(SENSITIVE_TOPICS)
    assert metrics["eval_unsafe_f1"] == metrics["eval_at_threshold"]["sensitive_f1"]
    # the rows it learned from and was measured on travel with it
    assert manifest["data"] == str((trained["folder"] / "train.jsonl").resolve())
    held = [json.loads(line) for line in (trained["folder"] / "held_out.jsonl").open()]
    assert [row["response"] for row in held] == [r.text for r in trained["held_out"]]


def test_held_out_sensitive_utterances_score_above_the_threshold(trained):
    held_out, scores = trained["held_out"], trained["scores"]
    sensitive = np.array([r.topic != NONE for r in held_out])
    assert scores[sensitive].mean() > THRESHOLD > scores[~sensitive].mean()
    shipped_none = np.array([r.topic == NONE and r.source == "shipped" for r in held_out])
    assert scores[shipped_none].mean() < THRESHOLD
    for topic in SENSITIVE_TOPICS:
        picked = np.array([r.topic == topic for r in held_out])
        assert scores[picked].mean() > THRESHOLD, topic
    metrics = trained["result"].metrics["eval_at_threshold"]
    assert metrics["sensitive_f1"] >= 0.8, metrics
    assert metrics["accuracy"] >= 0.9, metrics


def test_reloaded_classifier_gives_the_same_scores(trained):
    reloaded = load_classifier(trained["folder"])
    assert isinstance(reloaded, SafetyClassifier) and reloaded.kind == "embedding"
    assert reloaded.name == trained["result"].name == "sensitive-topics-clf"
    pairs = [([], r.text) for r in trained["held_out"]]
    np.testing.assert_allclose(reloaded.score_batch(pairs), trained["scores"], atol=1e-6)
    # context is ignored: the topic is the utterance's
    context = [{"role": "user", "content": "which church do you go to?"}]
    text = "What's a good recipe for banana bread?"
    assert reloaded.score(context, text) == pytest.approx(reloaded.score([], text), abs=1e-6)
    by_name = load_classifier("sensitive-topics-clf", db=trained["db"])
    np.testing.assert_allclose(by_name.score_batch(pairs[:20]), trained["scores"][:20], atol=1e-6)


def test_registry_records_the_topic_classifier(trained, tmp_path):
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from alignloop.store.db import make_engine
    from alignloop.store.models import ModelVersion

    with Session(make_engine(trained["db"])) as session:
        [row] = session.scalars(select(ModelVersion)).all()
    assert (row.name, row.algorithm, row.weights) == (
        "sensitive-topics-clf",
        "safety-embedding",
        "head",
    )
    assert row.path == str(trained["folder"].resolve())
    assert row.metrics["task"] == "sensitive_topics"
    assert row.metrics["recommended_threshold"] == 0.55
    assert row.data_version.startswith("sha256:")
    # a taken name or a used folder is refused before any training, leaving nothing behind
    config = SensitiveTopicsConfig(out=str(tmp_path / "again"), db=trained["db"], name=row.name)
    with pytest.raises(Conflict, match="sensitive-topics-clf"):
        train_topic_classifier(config)
    with pytest.raises(Conflict, match="not empty"):
        train_topic_classifier(SensitiveTopicsConfig(out=str(trained["folder"])))
    assert not (tmp_path / "again").exists()
    assert not [p for p in tmp_path.iterdir() if ".topics-" in p.name]


# --- options: texts left out, the fine-tuned kind ---------------------------------------------


def test_excluded_texts_are_in_neither_split():
    rows = sensitive_topic_rows()
    picked = [rows[0].text, rows[-1].text, "not a row at all"]
    spelled = [f"  {picked[0].upper()} ", " ".join(picked[1].split()), picked[2]]
    train, held_out = sensitive_topic_split(exclude=spelled)  # case and spacing ignored
    kept = {r.text for r in train + held_out}
    assert picked[0] not in kept and picked[1] not in kept
    assert len(kept) == len(rows) - 2


def test_finetune_kind_trains_without_the_excluded_texts(tmp_path):
    """A short fine-tune (a tenth of an epoch: the manifest, the exclusions and the loaded
    kind are what is checked, not the classifier's quality)."""
    rows = sensitive_topic_rows()
    left_out = [r.text for r in rows if r.source.startswith("chatterbot:")][:5]
    (tmp_path / "exclude.jsonl").write_text("".join(json.dumps(t) + "\n" for t in left_out))
    args = ("--kind", "finetune", "--epochs", "0.1", "--exclude", tmp_path / "exclude.jsonl")
    run = alignloop("safety", "topics", "--out", tmp_path / "clf", *args)
    assert run.exit_code == 0, run.output
    manifest = json.loads((tmp_path / "clf" / MANIFEST).read_text())
    assert manifest["kind"] == "finetune" and manifest["task"] == "sensitive_topics"
    assert manifest["topic_config"]["exclude"] == str(tmp_path / "exclude.jsonl")
    seen = [
        json.loads(line)["response"]
        for name in ("train.jsonl", "held_out.jsonl")
        for line in (tmp_path / "clf" / name).open()
    ]
    assert len(seen) == len(rows) - 5 and not set(seen) & set(left_out)
    reloaded = load_classifier(tmp_path / "clf")
    assert reloaded.kind == "finetune"
    assert 0 <= reloaded.score([], "Is it safe to mix weed and alcohol?") <= 1


def test_a_missing_exclude_file_is_refused_before_training(tmp_path):
    run = alignloop("safety", "topics", "--out", tmp_path / "clf", "--exclude", tmp_path / "no.txt")
    assert isinstance(run.exception, NotFound) and run.exception.field == "exclude"
    assert "no.txt is not a file" in run.exception.message
    assert not (tmp_path / "clf").exists()
    assert not [p for p in tmp_path.iterdir() if ".topics-" in p.name]
