"""ALMoST step 3: synthetic comparisons from the ranked configurations (SPEC §5).

For each query answered by every configuration, each configuration's first response that
survives the response filter stands for it; the survivors are ranked as the rubric ranks their
configurations. Written to <out> (each file whole or not at all):

- rankings.jsonl: {"prompt", "responses", "ranking", "query_id", "configs"}: the survivors in
  the rubric's declaration order, `ranking` their indices best first (train/data.py's rankings
  format), for queries with at least `min_ranking_size` survivors;
- pairs.jsonl: {"prompt", "chosen", "rejected", "query_id", "chosen_config",
  "rejected_config"} (train/data.py's pairs format): one pair per better configuration, the
  heuristic length filter on;
- pairs-nofilter.jsonl: the same without the length filter (each better survivor with the next
  one), for the ablation;
- summary.json: response drop counts per filter reason (overall and per configuration), the
  rankings written, and for both pair files the pairs considered, dropped by the length filter,
  dropped to keep one per better configuration, and written; plus queries-summary.json's counts
  when that file is there.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from alignloop.errors import InvalidInput
from alignloop.synth.config import SynthComparisonsConfig
from alignloop.synth.files import Query, read_log_rows, read_queries, write_json, write_jsonl
from alignloop.synth.filters import (
    RESPONSE_REASONS,
    ResponseRules,
    choose_pairs,
    response_drop_reason,
)
from alignloop.synth.queries import SUMMARY_FILE as QUERIES_SUMMARY
from alignloop.synth.queries import Progress
from alignloop.synth.responses import responses_path
from alignloop.synth.rubric import Rubric, load_rubric

PAIRS_FILE = "pairs.jsonl"
PAIRS_NOFILTER_FILE = "pairs-nofilter.jsonl"
RANKINGS_FILE = "rankings.jsonl"
SUMMARY_FILE = "summary.json"


@dataclass
class ComparisonsResult:
    files: dict[str, Path]
    summary: dict


def rules_of(settings: SynthComparisonsConfig) -> ResponseRules:
    return ResponseRules(
        settings.min_response_chars, tuple(settings.unknown_phrases), tuple(settings.role_markers)
    )


def read_responses(out: Path, rubric: Rubric) -> dict[str, dict[str, list[str]]]:
    """configuration -> query id -> responses, from the logs `synth responses` wrote."""
    found = {}
    for config in rubric.configurations:
        path = responses_path(out, config.name)
        if not path.exists():
            raise InvalidInput(
                f"{path} does not exist: configuration {config.name!r} has no responses; run "
                "`alignloop synth responses` with this rubric and --out first",
                "out",
            )
        rows, torn = read_log_rows(path, "out")
        if torn is not None:
            raise InvalidInput(
                f"{path}: its last line was cut short by an interrupted run; rerun "
                "`alignloop synth responses` to finish it",
                "out",
            )
        found[config.name] = {str(r.get("query_id")): _texts(r, path) for r in rows}
    return found


def _texts(row: dict, path: Path) -> list[str]:
    texts = row.get("responses")
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise InvalidInput(
            f"{path}: the row of query {row.get('query_id')!r} has no 'responses' list of "
            "strings; delete the file to regenerate it",
            "out",
        )
    return texts


def answered_queries(queries: list[Query], responses: dict, rubric: Rubric) -> list[Query]:
    """Queries every configuration answered; one answered by only some raises (resume first)."""
    answered = []
    for query in queries:
        have = [c.name for c in rubric.configurations if query.id in responses[c.name]]
        if have and len(have) < len(rubric.configurations):
            missing = [c.name for c in rubric.configurations if c.name not in have]
            raise InvalidInput(
                f"query {query.id!r} has no responses from configuration(s) "
                f"{', '.join(missing)}; rerun `alignloop synth responses` to finish them",
                "out",
            )
        if have:
            answered.append(query)
    return answered


class _Tally:
    """Drop counts per reason, overall and per configuration."""

    def __init__(self, names: list[str]):
        self.total = dict.fromkeys(names, 0)
        self.kept = dict.fromkeys(names, 0)
        self.dropped = {name: Counter() for name in names}

    def first_survivor(self, name: str, texts: list[str], rules: ResponseRules) -> str | None:
        """The first response that passes; every response is counted."""
        survivor = None
        for text in texts:
            self.total[name] += 1
            reason = response_drop_reason(text, rules)
            if reason is None:
                self.kept[name] += 1
                survivor = text.strip() if survivor is None else survivor
            else:
                self.dropped[name][reason] += 1
        return survivor

    def as_dict(self) -> dict:
        overall = sum(self.dropped.values(), Counter())
        return {
            "total": sum(self.total.values()),
            "kept": sum(self.kept.values()),
            "dropped": {reason: overall[reason] for reason in RESPONSE_REASONS},
            "per_config": {
                name: {
                    "total": self.total[name],
                    "kept": self.kept[name],
                    "dropped": {r: self.dropped[name][r] for r in RESPONSE_REASONS},
                }
                for name in self.total
            },
        }


class _PairFile:
    def __init__(self, length_filter: bool):
        self.length_filter = length_filter
        self.rows: list[dict] = []
        self.counts = Counter(considered=0, dropped_by_length=0, dropped_one_per_better=0)

    def add(self, query: Query, ranked: list[tuple[str, str]], std_factor: float) -> None:
        choice = choose_pairs([text for _, text in ranked], self.length_filter, std_factor)
        self.counts["considered"] += choice.considered
        self.counts["dropped_by_length"] += choice.dropped_by_length
        self.counts["dropped_one_per_better"] += choice.dropped_one_per_better
        for better, worse in choice.pairs:
            self.rows.append(
                {
                    "prompt": query.text,
                    "chosen": ranked[better][1],
                    "rejected": ranked[worse][1],
                    "query_id": query.id,
                    "chosen_config": ranked[better][0],
                    "rejected_config": ranked[worse][0],
                }
            )

    def summary(self) -> dict:
        return {**self.counts, "written": len(self.rows), "length_filter": self.length_filter}


def ranking_row(query: Query, ranked: list[tuple[str, str]], declared: list[str]) -> dict:
    """The survivors in declaration order, with their indices best first."""
    in_order = sorted(ranked, key=lambda item: declared.index(item[0]))
    names = [name for name, _ in in_order]
    return {
        "prompt": query.text,
        "responses": [text for _, text in in_order],
        "ranking": [names.index(name) for name, _ in ranked],
        "query_id": query.id,
        "configs": names,
    }


def build_comparisons(
    settings: SynthComparisonsConfig,
    on_progress: Progress | None = None,
) -> ComparisonsResult:
    """Filter, rank and pair the responses; write the four files of the module docstring."""
    rubric = load_rubric(settings.rubric)
    queries = read_queries(settings.queries_path)
    if settings.max_queries:  # the queries `synth responses --max-queries` answered
        queries = queries[: settings.max_queries]
    responses = read_responses(settings.out_dir, rubric)
    answered = answered_queries(queries, responses, rubric)
    if not answered:
        raise InvalidInput(
            f"no query of {settings.queries_path} has responses in {settings.out_dir}; run "
            "`alignloop synth responses` first",
            "out",
        )
    declared = list(rubric.declared)
    rules, tally = rules_of(settings), _Tally([c.name for c in rubric.configurations])
    filtered, unfiltered, rankings = _PairFile(True), _PairFile(False), []
    progress = on_progress or (lambda stage, n, of: None)
    for n, query in enumerate(answered, 1):
        ranked = [
            (c.name, text)
            for c in rubric.configurations
            if (text := tally.first_survivor(c.name, responses[c.name][query.id], rules))
        ]
        if len(ranked) >= settings.min_ranking_size:
            rankings.append(ranking_row(query, ranked, declared))
        filtered.add(query, ranked, settings.length_std_factor)
        unfiltered.add(query, ranked, settings.length_std_factor)
        progress("comparisons", n, len(answered))
    return _write(settings, answered, tally, filtered, unfiltered, rankings)


def _write(settings, answered, tally, filtered, unfiltered, rankings) -> ComparisonsResult:
    out = settings.out_dir
    files = {
        "pairs": out / PAIRS_FILE,
        "pairs_nofilter": out / PAIRS_NOFILTER_FILE,
        "rankings": out / RANKINGS_FILE,
        "summary": out / SUMMARY_FILE,
    }
    summary = {
        "queries_compared": len(answered),
        "responses": tally.as_dict(),
        "rankings": {"written": len(rankings), "min_size": settings.min_ranking_size},
        "pairs": filtered.summary(),
        "pairs_nofilter": unfiltered.summary(),
        "files": {key: path.name for key, path in files.items()},
    }
    queries_summary = out / QUERIES_SUMMARY
    if queries_summary.exists():
        summary["queries"] = json.loads(queries_summary.read_text(encoding="utf-8"))
    write_jsonl(files["pairs"], filtered.rows)
    write_jsonl(files["pairs_nofilter"], unfiltered.rows)
    write_jsonl(files["rankings"], rankings)
    write_json(files["summary"], summary)
    return ComparisonsResult(files, summary)
