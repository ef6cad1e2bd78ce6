"""`synth run`: queries -> responses -> comparisons from one config, in one folder, resumable."""

from __future__ import annotations

from dataclasses import dataclass

from alignloop.errors import InvalidInput
from alignloop.synth.comparisons import ComparisonsResult, build_comparisons
from alignloop.synth.config import (
    SynthComparisonsConfig,
    SynthQueriesConfig,
    SynthResponsesConfig,
    SynthRunConfig,
)
from alignloop.synth.queries import (
    BackendFactory,
    Progress,
    QueriesResult,
    default_backend,
    generate_queries,
)
from alignloop.synth.responses import ResponsesResult, generate_responses
from alignloop.synth.rubric import load_rubric


@dataclass
class RunResult:
    queries: QueriesResult | None  # None when `queries` named an existing file
    responses: ResponsesResult
    comparisons: ComparisonsResult


def step_settings(settings: SynthRunConfig, cls: type):
    """The fields of one step's config, taken from the run's."""
    return cls(**{name: getattr(settings, name) for name in cls.model_fields})


def run_synth(
    settings: SynthRunConfig,
    on_progress: Progress | None = None,
    make_backend: BackendFactory = default_backend,
) -> RunResult:
    load_rubric(settings.rubric)  # a bad rubric fails before any generation
    queries = None
    if settings.queries is None:
        queries = generate_queries(
            step_settings(settings, SynthQueriesConfig), on_progress, make_backend
        )
        if not queries.queries:
            raise InvalidInput(
                f"no query survived the filters (see {settings.out_dir}/queries-summary.json); "
                "raise max_candidates, relax the filters, or set keep_seeds",
                "num_queries",
            )
    responses = generate_responses(
        step_settings(settings, SynthResponsesConfig), on_progress, make_backend
    )
    comparisons = build_comparisons(step_settings(settings, SynthComparisonsConfig), on_progress)
    return RunResult(queries, responses, comparisons)
