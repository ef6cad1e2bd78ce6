"""The typed configs of `alignloop synth queries | responses | comparisons | run`: every flag
(and YAML key) is one field; `run` takes the fields of all three steps."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from alignloop.config import Settings

QUERY_SYSTEM = (
    "You write questions and requests that people send to an AI assistant: one at a time, "
    "each on a new topic."
)
QUERY_INSTRUCTION = "Write one new question or request."
UNKNOWN_PHRASES = (
    "i don't know",
    "i do not know",
    "i'm not sure",
    "i am not sure",
    "i have no idea",
    "i don't have enough information",
    "i do not have enough information",
    "i cannot answer",
    "i can't answer",
    "i'm unable to answer",
    "i am unable to answer",
)
ROLE_MARKERS = ("Human:", "User:", "Assistant:")


def _comma_list(value: list[str] | tuple[str, ...] | str) -> list[str]:
    """The command line gives 'a,b,c'; YAML gives a list."""
    if isinstance(value, str):
        value = value.split(",")
    return [item.strip() for item in value if item.strip()]


class SynthCommon(Settings):
    out: str = Field(
        "runs/synth",
        description="Folder of the synthetic data: queries.jsonl, responses/, pairs.jsonl, "
        "pairs-nofilter.jsonl, rankings.jsonl, summary files. Reruns resume in it.",
    )
    seed: int = Field(0, description="Seed of example sampling and generation.")
    device: str = Field("cpu", description="Torch device of the local models.")
    batch_size: int = Field(8, ge=1, description="Prompts generated at once.")

    @property
    def out_dir(self) -> Path:
        return Path(self.out)


class SynthQueriesConfig(SynthCommon):
    """ALMoST step 1: generate user queries from seed queries with in-context examples, then
    drop the short, long, unpunctuated, repeated and too similar (ROUGE-L) ones."""

    seeds: str | None = Field(
        None,
        description="Seed query file, one query a line ('#' comments); default: the ~120 seeds "
        "shipped with alignloop.",
    )
    query_model: str = Field(
        "smollm2",
        description="Model that writes the queries: 'smollm2', 'tiny', SPEC:layers=N, a "
        "folder or a hub id.",
    )
    query_shots: int = Field(10, ge=1, description="Seed queries shown in each prompt.")
    query_temperature: float = Field(1.2, ge=0, le=2, description="Query sampling temperature.")
    query_top_p: float = Field(0.9, gt=0, le=1, description="Query nucleus sampling mass.")
    query_max_new_tokens: int = Field(64, ge=1, description="Longest query in tokens.")
    num_queries: int = Field(200, ge=1, description="Stop once this many queries are kept.")
    max_candidates: int = Field(
        2000, ge=1, description="Stop after generating this many candidates in any case."
    )
    min_query_chars: int = Field(30, ge=0, description="Drop queries shorter than this.")
    max_query_chars: int = Field(250, ge=1, description="Drop queries longer than this.")
    query_final_punctuation: str = Field(
        ".?!",
        min_length=1,
        description="A query must end with one of these characters (after closing quotes or "
        "brackets); one without was most often cut off.",
    )
    rouge_l_threshold: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Drop a query whose ROUGE-L F against any kept query or seed is at least this.",
    )
    keep_seeds: bool = Field(
        False, description="Write the seed queries to queries.jsonl too (ids s0001, ...)."
    )
    query_system: str = Field(
        QUERY_SYSTEM,
        description="System message of the query prompt ('' for none). The in-context "
        "examples follow as earlier turns: query_instruction, then a seed query as the "
        "assistant's answer, query_shots times, then query_instruction once more.",
    )
    query_instruction: str = Field(
        QUERY_INSTRUCTION,
        min_length=1,
        description="The user turn that asks for one query, before each example and at the end.",
    )


class SynthResponsesConfig(SynthCommon):
    """ALMoST step 2: every configuration of the rubric answers every query (resumable)."""

    queries: str | None = Field(
        None,
        description="Queries file: JSONL rows {id, query}; default <out>/queries.jsonl. "
        "`synth run` skips generating queries when this is set.",
    )
    rubric: str | None = Field(
        None,
        description="Rubric YAML declaring the configurations and their ranking; default: the "
        "packaged one (configs/synth-rubric.yaml shows it).",
    )
    responses_per_config: int = Field(
        1,
        ge=1,
        description="Responses sampled per configuration and query; the comparisons use the "
        "first that survives the response filter.",
    )
    response_temperature: float = Field(
        1.0,
        ge=0,
        le=2,
        description="Response sampling temperature (a configuration may override it).",
    )
    response_top_p: float = Field(
        0.9,
        gt=0,
        le=1,
        description="Response nucleus sampling mass (a configuration may override it).",
    )
    response_max_new_tokens: int = Field(
        256, ge=1, description="Longest response in tokens (a configuration may override it)."
    )
    max_queries: int | None = Field(
        None, ge=1, description="Answer only the first this many queries."
    )

    @property
    def queries_path(self) -> Path:
        return Path(self.queries) if self.queries else self.out_dir / "queries.jsonl"


class SynthComparisonsConfig(Settings):
    """ALMoST step 3: filter the responses, rank them by the rubric, write pairs and rankings."""

    out: str = SynthCommon.model_fields["out"]
    queries: str | None = SynthResponsesConfig.model_fields["queries"]
    rubric: str | None = SynthResponsesConfig.model_fields["rubric"]
    min_response_chars: int = Field(50, ge=0, description="Drop responses shorter than this.")
    unknown_phrases: list[str] = Field(
        list(UNKNOWN_PHRASES),
        description="Drop responses containing one of these (case-insensitive; comma-separated "
        "on the command line).",
    )
    role_markers: list[str] = Field(
        list(ROLE_MARKERS),
        description="Drop responses containing one of these (as written; comma-separated on the "
        "command line).",
    )
    length_std_factor: float = Field(
        0.5,
        ge=0,
        description="Pair filter: drop (better, worse) if better is shorter than worse and "
        "than mean - this x std of the query's surviving response lengths.",
    )
    min_ranking_size: int = Field(
        2, ge=2, description="Write a K-way ranking only for queries with this many survivors."
    )
    max_queries: int | None = SynthResponsesConfig.model_fields["max_queries"]

    @field_validator("unknown_phrases", "role_markers", mode="before")
    @classmethod
    def _split_lists(cls, value: list[str] | str) -> list[str]:
        return _comma_list(value)

    @property
    def out_dir(self) -> Path:
        return Path(self.out)

    @property
    def queries_path(self) -> Path:
        return Path(self.queries) if self.queries else self.out_dir / "queries.jsonl"


class SynthRunConfig(SynthQueriesConfig, SynthResponsesConfig, SynthComparisonsConfig):
    """ALMoST end to end: queries, then responses of every configuration, then comparisons
    (pairs with and without the length filter, K-way rankings), all in one folder, resumable."""
