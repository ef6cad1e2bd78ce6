"""The three safety classifiers on real DiaSafety rows: data checks, the embedding head learns
and reloads to identical scores, fine-tuning lowers its loss and reloads, the CLI trains and
scores in order, bad rows are named, and trained classifiers land in the model registry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from alignloop.errors import Conflict, InvalidInput, NotFound
from alignloop.safety.classifiers import (
    MANIFEST,
    ProfanityClassifier,
    SafetyClassifier,
    load_classifier,
)
from alignloop.safety.config import SafetyTrainConfig
from alignloop.safety.data import SafetyExample, load_safety_examples
from alignloop.safety.train import (
    classification_metrics,
    evaluate,
    ranking_auc,
    train_classifier,
)
from conftest import SHARED

DIASAFETY = SHARED / "data" / "diasafety"
TRAIN_ROWS, HELD_OUT_ROWS = 200, 200


def diasafety_rows(split: str) -> list[dict]:
    path = DIASAFETY / f"{split}.json"
    if not path.exists():
        pytest.skip(f"{path} is missing (../shared is not beside the repository)")
    return json.loads(path.read_text())


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def pairs_of(examples: list[SafetyExample]) -> list[tuple]:
    return [(e.context, e.response) for e in examples]


@pytest.fixture(scope="module")
def diasafety_files(tmp_path_factory) -> dict[str, Path]:
    """The first DiaSafety train rows as JSONL and held-out val rows as a JSON array (as is)."""
    folder = tmp_path_factory.mktemp("diasafety")
    train, val = diasafety_rows("train"), diasafety_rows("val")
    (folder / "val.json").write_text(json.dumps(val[:HELD_OUT_ROWS]))
    return {
        "train": write_jsonl(folder / "train.jsonl", train[:TRAIN_ROWS]),
        "val": folder / "val.json",
    }


# --- data -----------------------------------------------------------------------------------


def test_labels_and_contexts_in_every_accepted_form(tmp_path):
    rows = [
        {"context": "hi", "response": "a", "label": "Unsafe"},
        {"context": "hi", "response": "b", "label": "safe"},
        {"context": ["q", "a", "q2"], "response": "c", "label": True},
        {"context": [{"role": "user", "content": "x"}], "utterance": "d", "label": 0},
        {"response": "e", "label": 1.0},
        {"context": "", "response": "", "label": "__notok__"},
    ]
    examples = load_safety_examples(write_jsonl(tmp_path / "rows.jsonl", rows))
    assert [e.label for e in examples] == [True, False, True, False, True, True]
    assert [m["role"] for m in examples[2].context] == ["user", "assistant", "user"]
    assert examples[3] == SafetyExample([{"role": "user", "content": "x"}], "d", False)
    assert examples[4].context == [] and examples[5].response == ""
    unlabelled = load_safety_examples(
        write_jsonl(tmp_path / "u.jsonl", [{"response": "x"}]), require_label=False
    )
    assert unlabelled[0].label is None


def test_bad_rows_are_named_with_field_and_fix(tmp_path):
    rows = [
        {"context": "hi", "response": "ok", "label": "safe"},
        {"context": "hi", "label": "safe"},
        {"context": "hi", "response": "x", "label": "maybe"},
        "{not json",
        {"context": 3, "response": "x", "label": 1},
    ]
    with pytest.raises(InvalidInput) as err:
        load_safety_examples(write_jsonl(tmp_path / "bad.jsonl", rows))
    message = err.value.message
    assert "4 bad safety row(s)" in message
    assert "row 2: response must be a string" in message
    assert "row 3: label must be unsafe/safe" in message
    assert "row 4: row is not valid JSON" in message
    assert "row 5: context must be a string or a list" in message
    good = load_safety_examples(tmp_path / "bad.jsonl", skip_bad=True)
    assert len(good) == 1


def test_metrics_count_unsafe_as_the_positive_class():
    metrics = classification_metrics([True, True, False, False], np.array([0.9, 0.2, 0.6, 0.1]))
    assert metrics["unsafe_precision"] == metrics["unsafe_recall"] == metrics["unsafe_f1"] == 0.5
    assert metrics["accuracy"] == 0.5
    assert metrics["auc"] == 0.75  # 3 of the 4 (unsafe, safe) pairs ranked the right way
    assert ranking_auc([0.5, 0.5, 0.2], [True, False, False]) == 0.75  # a tie counts half
    assert ranking_auc([0.3, 0.4], [True, True]) is None  # no safe row: no ranking
    one_kind = classification_metrics([True, True], np.array([0.3, 0.4]))
    assert json.dumps(one_kind, allow_nan=False)  # storable in a PostgreSQL JSON column


# --- the classifiers --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def embedding(diasafety_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "embedding"
    config = SafetyTrainConfig(kind="embedding", data=str(diasafety_files["train"]), out=str(out))
    return train_classifier(config)


def test_embedding_classifier_beats_chance_on_held_out_rows(embedding, diasafety_files):
    held_out = load_safety_examples(diasafety_files["val"])
    metrics = evaluate(embedding.classifier, held_out)
    assert metrics["accuracy"] > 0.58, metrics
    assert metrics["unsafe_f1"] > 0.55, metrics


def test_embedding_classifier_reloads_to_identical_scores_and_caches(embedding, diasafety_files):
    pairs = pairs_of(load_safety_examples(diasafety_files["val"], limit=40))
    loaded = load_classifier(embedding.folder)
    assert isinstance(loaded, SafetyClassifier) and loaded.name == embedding.name
    np.testing.assert_array_equal(loaded.coef, embedding.classifier.coef)
    embedding.classifier.encoder.cache.clear()  # same texts in the same batches: same numbers
    scores = loaded.score_batch(pairs)
    np.testing.assert_array_equal(scores, embedding.classifier.score_batch(pairs))
    cached = len(loaded.encoder.cache)
    assert loaded.score(*pairs[3]) == pytest.approx(scores[3], abs=1e-12)
    assert len(loaded.encoder.cache) == cached  # nothing new was encoded
    assert not any(p.name.startswith(".") for p in embedding.folder.parent.iterdir())


def test_a_long_context_is_the_mean_of_its_messages_each_encoded_once(embedding):
    classifier = load_classifier(embedding.folder)
    say = [{"role": r, "content": t} for r, t in
           [("user", "hi there"), ("assistant", "hello!"), ("user", "how do I bake bread?")]]  # fmt: skip
    pairs = [(say[:1], "flour and water"), (say[:2], "you idiot"), (say, "knead it well")]
    features = classifier.featurize(pairs)
    texts = [m["content"] for m in say] + [u for _, u in pairs]
    assert len(classifier.encoder.cache) == len(texts)  # each message once, not each context
    vectors = {t: classifier.encoder.cache.get(t) for t in texts}
    mean = np.mean([vectors[m["content"]] for m in say], axis=0)
    np.testing.assert_allclose(features[2, :384], mean / np.linalg.norm(mean), atol=1e-6)
    np.testing.assert_allclose(features[0, :384], vectors["hi there"], atol=1e-6)
    np.testing.assert_allclose(features[2, 384:768], vectors["knead it well"], atol=1e-6)


def test_fine_tuning_lowers_the_loss_and_reloads(diasafety_files, tmp_path):
    rows = load_safety_examples(diasafety_files["train"], limit=8)
    data = write_jsonl(
        tmp_path / "small.jsonl",
        [{"context": e.context, "response": e.response, "label": e.label} for e in rows],
    )
    config = SafetyTrainConfig(
        kind="finetune",
        data=str(data),
        out=str(tmp_path / "ft"),
        epochs=6,
        batch_size=8,
        learning_rate=3e-4,
        warmup_fraction=0,
        max_length=48,
    )
    trained = train_classifier(config)
    assert trained.metrics["steps"] == 6
    assert trained.metrics["final_loss"] < 0.8 * trained.metrics["first_loss"], trained.metrics
    loaded = load_classifier(trained.folder)
    pairs = pairs_of(rows)
    np.testing.assert_allclose(
        loaded.score_batch(pairs), trained.classifier.score_batch(pairs), atol=1e-6
    )
    assert (trained.folder / "model.safetensors").exists()


def test_every_kind_has_one_interface(embedding):
    context = [{"role": "user", "content": "hi"}]
    for classifier in (ProfanityClassifier(), embedding.classifier):
        assert isinstance(classifier, SafetyClassifier)
        batch = classifier.score_batch([(context, "you idiot"), ([], "hello")])
        assert batch.shape == (2,) and ((batch >= 0) & (batch <= 1)).all()
        assert classifier.score(context, "you idiot") == pytest.approx(batch[0], abs=1e-9)
    assert isinstance(load_classifier("profanity"), ProfanityClassifier)
    with pytest.raises(NotFound, match="safety train"):
        load_classifier(embedding.folder.parent)  # a folder without a manifest


# --- command line and registry ----------------------------------------------------------------


def alignloop(*args: str):
    from alignloop.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_trains_and_scores_one_line_per_row_in_order(tmp_path, diasafety_files):
    run = alignloop(
        "safety",
        "train",
        "--kind",
        "profanity",
        "--data",
        diasafety_files["val"],
        "--out",
        tmp_path / "prof",
    )
    assert run.exit_code == 0, run.output
    assert json.loads((tmp_path / "prof" / MANIFEST).read_text())["kind"] == "profanity"
    rows = diasafety_rows("val")[:6]
    rows[1]["response"] = rows[4]["response"] = "shut up you fucking idiot"
    (tmp_path / "in.json").write_text(json.dumps(rows))  # DiaSafety's own JSON array
    run = alignloop(
        "safety",
        "score",
        "--classifier",
        tmp_path / "prof",
        "--data",
        tmp_path / "in.json",
        "--out",
        tmp_path / "scores.jsonl",
    )
    assert run.exit_code == 0, run.output
    scores = [json.loads(line)["p_unsafe"] for line in (tmp_path / "scores.jsonl").open()]
    assert len(scores) == 6
    assert [i for i, p in enumerate(scores) if p >= 0.5] == [1, 4]


def test_cli_bad_rows_leave_no_output(tmp_path):
    bad = write_jsonl(
        tmp_path / "bad.jsonl",
        [{"context": "a", "response": "b", "label": "safe"}, {"context": "a", "label": "x"}],
    )
    run = alignloop(
        "safety", "train", "--kind", "embedding", "--data", bad, "--out", tmp_path / "out"
    )
    assert isinstance(run.exception, InvalidInput)
    assert "row 2: response" in run.exception.message
    assert not (tmp_path / "out").exists()
    run = alignloop(
        "safety", "score", "--classifier", "profanity", "--data", bad, "--out", tmp_path / "s.jsonl"
    )
    assert isinstance(run.exception, InvalidInput)
    assert not (tmp_path / "s.jsonl").exists()


def test_registry_records_the_classifier_version(tmp_path, diasafety_files):
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from alignloop.store.db import make_engine
    from alignloop.store.models import ModelVersion

    db = f"sqlite:///{tmp_path / 'store.db'}"
    small = write_jsonl(tmp_path / "small.jsonl", diasafety_rows("train")[:40])
    run = alignloop(
        "safety",
        "train",
        "--kind",
        "embedding",
        "--data",
        small,
        "--out",
        tmp_path / "emb",
        "--eval-data",
        small,
        "--db",
        db,
    )
    assert run.exit_code == 0, run.output
    with Session(make_engine(db)) as session:
        [row] = session.scalars(select(ModelVersion)).all()
    assert (row.name, row.algorithm, row.weights) == (
        "safety-embedding-emb",
        "safety-embedding",
        "head",
    )
    assert row.path == str((tmp_path / "emb").resolve())
    assert row.data_version.startswith("sha256:") and row.config["kind"] == "embedding"
    assert 0 <= row.metrics["eval_unsafe_f1"] <= 1
    assert load_classifier("safety-embedding-emb", db=db).name == "safety-embedding-emb"
    again = SafetyTrainConfig(
        kind="embedding",
        data=str(small),
        out=str(tmp_path / "again"),
        db=db,
        name="safety-embedding-emb",
    )
    with pytest.raises(Conflict, match="safety-embedding-emb"):
        train_classifier(again)
    assert not (tmp_path / "again").exists()


def test_the_serving_gate_runs_a_trained_classifier(embedding):
    from alignloop.config import ServeConfig
    from alignloop.serve.app import build_gate

    gate = build_gate(ServeConfig(safety_gate=str(embedding.folder)))
    assert gate.classifier.kind == "embedding"
    check = gate.check_output([{"role": "user", "content": "hi"}], "have a nice day")
    assert 0.0 <= check.score <= 1.0
    with pytest.raises(ValueError, match="safety_gate"):
        ServeConfig(safety_gate="perspective")
