"""Training data files: each format parsed, every bad row reported with its number."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from alignloop.errors import InvalidInput
from alignloop.train.data import (
    BinaryExample,
    PairExample,
    RankingExample,
    SFTExample,
    TextExample,
    load_examples,
)
from conftest import SHARED

HH = SHARED / "data" / "hh-rlhf" / "harmless-base-dev.jsonl.gz"


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_each_format_is_parsed(tmp_path):
    cases = {
        "sft": (
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "hello"},
                ]
            },
            SFTExample(
                [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
            ),
        ),
        "pairs": (
            {"prompt": "q", "chosen": "good", "rejected": "bad", "margin": 1},
            PairExample([{"role": "user", "content": "q"}], "good", "bad", 1.0),
        ),
        "rankings": (
            {"prompt": "q", "responses": ["a", "b", "c"], "ranking": [2, 0, 1]},
            RankingExample([{"role": "user", "content": "q"}], ["c", "a", "b"]),
        ),
        "binary": (
            {
                "prompt": "q",
                "completion": [{"role": "assistant", "content": "a"}],
                "label": "dislike",
            },
            BinaryExample([{"role": "user", "content": "q"}], "a", False),
        ),
        "text": ({"text": "Once upon a time"}, TextExample("Once upon a time")),
    }
    for kind, (row, expected) in cases.items():
        assert load_examples(write_jsonl(tmp_path / f"{kind}.jsonl", [row]), kind) == [expected]


@pytest.mark.parametrize("label", [True, 1, 1.0, "like", "LIKED", "true"])
def test_thumbs_labels_in_common_spellings(tmp_path, label):
    row = {"prompt": "q", "completion": "a", "label": label}
    assert load_examples(write_jsonl(tmp_path / "b.jsonl", [row]), "binary")[0].label is True


def test_bad_rows_are_all_reported_with_their_line_and_reason(tmp_path):
    rows = [
        {"prompt": "q", "chosen": "a", "rejected": "b"},
        {"prompt": "q", "chosen": "a"},
        "",
        "{not json",
        {"prompt": [{"role": "assistant", "content": "x"}], "chosen": "a", "rejected": "b"},
        {"prompt": "q", "chosen": "a", "rejected": "b", "margin": "big"},
        [1, 2],
    ]
    with pytest.raises(InvalidInput) as err:
        load_examples(write_jsonl(tmp_path / "pairs.jsonl", rows), "pairs")
    message = err.value.message
    assert "5 bad pairs row(s)" in message
    assert "row 2: rejected must be a non-empty string" in message
    assert "row 4: row is not valid JSON" in message
    assert "row 5: prompt must end with a user message" in message
    assert "row 6: margin must be a number" in message
    assert "row 7: row must be an object" in message


def test_ranking_must_be_a_permutation(tmp_path):
    row = {"prompt": "q", "responses": ["a", "b"], "ranking": [0, 0]}
    with pytest.raises(
        InvalidInput, match=r"row 1: ranking must list each response index 0\.\.1 once"
    ):
        load_examples(write_jsonl(tmp_path / "r.jsonl", [row]), "rankings")


def test_parquet_json_and_datasets_folders(tmp_path):
    rows = [
        {"prompt": "q", "completion": "a", "label": True},
        {"prompt": "r", "completion": "b", "label": False},
    ]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "b.parquet")
    (tmp_path / "b.json").write_text(json.dumps(rows))
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "b-dataset"))
    for source in ("b.parquet", "b.json", "b-dataset"):
        examples = load_examples(tmp_path / source, "binary")
        assert [e.label for e in examples] == [True, False], source


def test_unknown_files_and_kinds_name_the_fix(tmp_path):
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(InvalidInput, match=r"use \.jsonl, \.jsonl\.gz, \.json, \.parquet"):
        load_examples(tmp_path / "x.csv", "pairs")
    with pytest.raises(InvalidInput, match="unknown data kind 'prefs'"):
        load_examples(tmp_path / "x.csv", "prefs")
    with pytest.raises(InvalidInput, match="does not exist"):
        load_examples(tmp_path / "missing.jsonl", "pairs")


def test_hh_rlhf_dialogues_become_prompt_and_two_replies(tmp_path):
    chosen = "\n\nHuman: How do I bake bread?\n\nAssistant: Mix flour.\n\nHuman: Then?\n\nAssistant: Knead it."
    rejected = "\n\nHuman: How do I bake bread?\n\nAssistant: Mix flour.\n\nHuman: Then?\n\nAssistant: Burn it."
    path = tmp_path / "hh.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write(json.dumps({"chosen": chosen, "rejected": rejected}) + "\n")
        f.write(json.dumps({"chosen": chosen, "rejected": "Assistant: nothing shared"}) + "\n")
    with pytest.raises(InvalidInput, match="row 2: rejected shares no dialogue with chosen"):
        load_examples(path, "pairs")
    example = load_examples(path, "pairs", limit=1)[0]
    assert example.prompt[-1] == {"role": "user", "content": "Then?"} and len(example.prompt) == 3
    assert (example.chosen, example.rejected) == ("Knead it.", "Burn it.")


def test_the_shared_hh_rlhf_file_parses_but_for_three_empty_replies(caplog):
    if not HH.exists():
        pytest.skip(f"{HH} is missing (../shared is not beside the repository)")
    with pytest.raises(InvalidInput, match="3 bad pairs row"):
        load_examples(HH, "pairs")
    pairs = load_examples(HH, "pairs", skip_bad=True)
    assert "row 68: chosen has an empty last Assistant turn" in caplog.text
    assert len(pairs) == 1822
    assert all(p.prompt[-1]["role"] == "user" and p.chosen and p.rejected for p in pairs)
