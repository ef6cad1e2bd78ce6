"""ALMoST step 2: every configuration of the rubric answers every query (SPEC §5).

Generations are appended to <out>/responses/<configuration>.jsonl, one row per (query id,
configuration): {"query_id", "query", "config", "model", "responses": [text, ...],
"finish_reasons": [...], "seed"}. Each batch of rows is written at once and flushed, so a crash
loses at most the batch in flight; a rerun skips the (query, configuration) pairs already there.
Batches are fixed slices of the query list and batch b of configuration c samples with a seed
derived from (seed, c, b), so a resumed run ends with the same rows as one that never stopped
(exactly so when the crash fell between batches, where the writes happen).

Configurations of one model share one loaded model; each model is loaded once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from alignloop.backends import Backend, GenerationParams
from alignloop.errors import InvalidInput
from alignloop.synth.config import SynthResponsesConfig
from alignloop.synth.files import Query, ResumableLog, derived_seed, digest, read_queries
from alignloop.synth.queries import BackendFactory, Progress, default_backend
from alignloop.synth.rubric import Configuration, Rubric, load_rubric

RESPONSES_DIR = "responses"


@dataclass
class ResponsesResult:
    folder: Path
    generated: dict[str, int]  # configuration -> queries answered by this run
    reused: dict[str, int]  # configuration -> queries already answered before it


def responses_path(out: Path, config_name: str) -> Path:
    return out / RESPONSES_DIR / f"{config_name}.jsonl"


def sampling(settings: SynthResponsesConfig, config: Configuration) -> GenerationParams:
    """The configuration's own sampling settings, else the command's."""
    return GenerationParams(
        max_new_tokens=config.max_new_tokens or settings.response_max_new_tokens,
        temperature=settings.response_temperature
        if config.temperature is None
        else config.temperature,
        top_p=config.top_p or settings.response_top_p,
        n=settings.responses_per_config,
    )


def fingerprint(settings: SynthResponsesConfig, rubric: Rubric, config: Configuration) -> dict:
    """What the rows of one configuration depend on; a rerun must agree on all of it."""
    params = sampling(settings, config)
    return {
        "model": config.model,
        "demonstrations": digest(rubric.demonstrations[config.demonstrations].model_dump()),
        "shots": config.shots,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "max_new_tokens": params.max_new_tokens,
        "responses_per_config": params.n,
        "seed": settings.seed,
    }


def open_logs(settings: SynthResponsesConfig, rubric: Rubric, queries: list[Query]) -> dict:
    """Each configuration's log, checked against its settings and the current query texts."""
    texts = {q.id: q.text for q in queries}
    logs = {}
    for config in rubric.configurations:
        path = responses_path(settings.out_dir, config.name)
        log = ResumableLog.open(path, fingerprint(settings, rubric, config), "out")
        for row in log.rows:
            query_id = row.get("query_id")
            if query_id in texts and row.get("query") != texts[query_id]:
                raise InvalidInput(
                    f"{path}: query {query_id!r} was answered as {row.get('query')!r} but the "
                    f"queries file now says {texts[query_id]!r}; use a new --out folder",
                    "queries",
                )
        logs[config.name] = log
    return logs


def _batches(queries: list[Query], size: int) -> list[list[Query]]:
    return [queries[start : start + size] for start in range(0, len(queries), size)]


def answer_batch(
    backend: Backend,
    settings: SynthResponsesConfig,
    rubric: Rubric,
    config: Configuration,
    batch: tuple[int, list[Query]],
) -> list[dict]:
    """One batch of queries answered by `config`, as log rows."""
    index, queries = batch
    seed = derived_seed(settings.seed, config.name, index)
    params = replace(sampling(settings, config), seed=seed)
    outputs = backend.generate([rubric.prompt(config, q.text) for q in queries], params)
    return [
        {
            "query_id": q.id,
            "query": q.text,
            "config": config.name,
            "model": config.model,
            "responses": [c.text for c in completions],
            "finish_reasons": [c.finish_reason for c in completions],
            "seed": seed,
        }
        for q, completions in zip(queries, outputs, strict=True)
    ]


def load_inputs(settings: SynthResponsesConfig) -> tuple[list[Query], Rubric]:
    """The queries (up to max_queries) and the rubric, checked before anything is written."""
    rubric = load_rubric(settings.rubric)
    queries = read_queries(settings.queries_path)
    return queries[: settings.max_queries] if settings.max_queries else queries, rubric


def generate_responses(
    settings: SynthResponsesConfig,
    on_progress: Progress | None = None,
    make_backend: BackendFactory = default_backend,
) -> ResponsesResult:
    """Answer every query with every configuration, skipping what earlier runs answered."""
    queries, rubric = load_inputs(settings)
    logs = open_logs(settings, rubric, queries)
    progress = on_progress or (lambda stage, n, of: None)
    if make_backend is default_backend:
        prepare_models(rubric, progress)
    done = {name: {row["query_id"] for row in log.rows} for name, log in logs.items()}
    total = len(queries) * len(rubric.configurations)
    reused = {name: sum(q.id in done[name] for q in queries) for name in logs}
    generated = dict.fromkeys(logs, 0)
    finished = sum(reused.values())
    progress("responses", finished, total)
    batches = list(enumerate(_batches(queries, settings.batch_size)))
    for model, configs in _by_model(rubric.configurations).items():
        work = pending_batches(configs, batches, done)
        if not work:
            continue
        backend = make_backend(model, settings.device)
        try:
            for config, batch in work:
                rows = answer_batch(backend, settings, rubric, config, batch)
                logs[config.name].append(rows)
                generated[config.name] += len(rows)
                finished += len(rows)
                progress("responses", finished, total)
        finally:
            backend.close()
    return ResponsesResult(settings.out_dir / RESPONSES_DIR, generated, reused)


def pending_batches(
    configs: list[Configuration], batches: list[tuple[int, list[Query]]], done: dict[str, set]
) -> list[tuple[Configuration, tuple[int, list[Query]]]]:
    """(configuration, (batch index, its queries not answered yet)) for the unfinished batches."""
    work = [
        (config, (index, [q for q in batch if q.id not in done[config.name]]))
        for config in configs
        for index, batch in batches
    ]
    return [(config, batch) for config, batch in work if batch[1]]


def prepare_models(rubric: Rubric, progress: Progress) -> None:
    """Resolve (and build, once) every model before generating: a bad spec fails first."""
    from alignloop.backends.models import resolve_model

    models = list(_by_model(rubric.configurations))
    for done, model in enumerate(models):
        progress("preparing models", done, len(models))
        resolve_model(model)
    progress("preparing models", len(models), len(models))


def _by_model(configs: list[Configuration]) -> dict[str, list[Configuration]]:
    groups: dict[str, list[Configuration]] = {}
    for config in configs:
        groups.setdefault(config.model, []).append(config)
    return groups
