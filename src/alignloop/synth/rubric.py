"""Configurations, demonstration sets and the rubric that ranks the configurations.

A *configuration* is a model spec + a demonstration set + a number of shots + sampling settings.
Its prompt is the set's preamble as the system message, its first `shots` dialogues as earlier
turns, then the query as the last user turn (so a 1-shot prompt is a prefix of the 3-shot one).

A *demonstration set* is a YAML file: `name`, `quality` (higher is better), `preamble`, and
`dialogues` (each a list of {role: user|assistant, content} turns, ending with the assistant).
Two ship with the package: "short" (quality 1: a short helpful/honest/harmless preamble with six
short dialogues) and "long" (quality 2: a fuller preamble with three longer, better dialogues).

The rubric YAML declares the configurations and the ranking, best first::

    demonstrations:          # optional: more sets, name: file (relative to the rubric)
      mine: my-demos.yaml
    configurations:
      - {name: A, model: smollm2, demonstrations: long, shots: 3}
      - {name: B, model: "smollm2:layers=20", demonstrations: short, shots: 3}
    ranking: [A, B]

`name` is letters, digits, '.', '_' and '-' (it names the configuration's responses file);
`model` is any --model spec ('smollm2', 'tiny', SPEC:layers=N, a folder or a hub id). Optional
per configuration: `temperature`, `top_p`, `max_new_tokens` (default: the command's response
settings) and `size` (any number that orders models by size, e.g. parameters).

The ranking must follow ALMoST's rules of thumb wherever two configurations differ in exactly one
factor: a bigger model beats a smaller one, more shots beat fewer, better demonstrations beat
worse ones. Model sizes are compared by `size` when both configurations give it, else within one
family by spec: `X` is bigger than `X:layers=N`, and more layers are bigger than fewer; models of
different families without sizes are not compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from alignloop.backends.models import truncation_of
from alignloop.errors import ConfigError
from alignloop.synth.files import package_file

BUILTIN_DEMONSTRATIONS = {"short": "demos-short.yaml", "long": "demos-long.yaml"}
DEFAULT_RUBRIC = "rubric.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Turn(_Strict):
    role: Literal["user", "assistant"]
    content: str = Field(min_length=1)


class DemonstrationSet(_Strict):
    name: str
    quality: int = Field(description="Higher is better.")
    preamble: str = ""
    dialogues: list[list[Turn]]

    @field_validator("dialogues")
    @classmethod
    def _alternating(cls, dialogues: list[list[Turn]]) -> list[list[Turn]]:
        for i, dialogue in enumerate(dialogues):
            roles = [turn.role for turn in dialogue]
            expected = ["user", "assistant"] * (len(roles) // 2)
            if not roles or roles != expected:
                raise ValueError(
                    f"dialogue {i} must alternate user, assistant, ... and end with the assistant"
                )
        return dialogues

    def messages(self, shots: int) -> list[dict[str, str]]:
        """The preamble and the first `shots` dialogues as chat messages."""
        head = [{"role": "system", "content": self.preamble.strip()}] if self.preamble else []
        turns = [turn.model_dump() for dialogue in self.dialogues[:shots] for turn in dialogue]
        return head + turns


class Configuration(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    model: str = Field(min_length=1)
    demonstrations: str
    shots: int = Field(ge=0)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_new_tokens: int | None = Field(None, ge=1)
    size: float | None = Field(None, gt=0)


class RubricFile(_Strict):
    demonstrations: dict[str, str] = {}
    configurations: list[Configuration] = Field(min_length=2)
    ranking: list[str]


@dataclass(frozen=True)
class Rubric:
    path: Path
    configurations: list[Configuration]  # best first
    demonstrations: dict[str, DemonstrationSet]
    declared: tuple[str, ...]  # the names in the order the file lists them

    def prompt(self, config: Configuration, query: str) -> list[dict[str, str]]:
        """The chat messages `config` answers `query` from."""
        demos = self.demonstrations[config.demonstrations].messages(config.shots)
        return [*demos, {"role": "user", "content": query}]


def rubric_path(path: str | None) -> Path:
    return Path(path) if path else package_file(DEFAULT_RUBRIC)


def _read_yaml(path: Path, option: str) -> dict:
    if not path.is_file():
        raise ConfigError(f"{path} does not exist (option {option!r})", option)
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}", option) from exc
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path} must hold a mapping", option)
    return loaded


def _validated(cls: type[_Strict], data: dict, path: Path, option: str):
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        hint = "unknown field" if first["type"] == "extra_forbidden" else first["msg"]
        raise ConfigError(f"{path}: field {where}: {hint}", option) from exc


def load_demonstrations(path: Path) -> DemonstrationSet:
    return _validated(DemonstrationSet, _read_yaml(path, "rubric"), path, "rubric")


def load_rubric(path: str | None) -> Rubric:
    """The rubric at `path` (default: the packaged one), checked through and through."""
    file = rubric_path(path)
    spec: RubricFile = _validated(RubricFile, _read_yaml(file, "rubric"), file, "rubric")
    configs = {c.name: c for c in spec.configurations}
    if len(configs) != len(spec.configurations):
        raise ConfigError(f"{file}: configuration names must be unique", "rubric")
    demos = _demonstration_sets(spec, file)
    ranked = _ranked(spec.ranking, configs, file)
    check_rules_of_thumb(ranked, demos, file)
    return Rubric(file, ranked, demos, tuple(c.name for c in spec.configurations))


def _demonstration_sets(spec: RubricFile, file: Path) -> dict[str, DemonstrationSet]:
    """The sets the configurations use, each loaded once; unknown names and too many shots
    raise naming the configuration."""
    sources = {name: package_file(f) for name, f in BUILTIN_DEMONSTRATIONS.items()}
    sources |= {name: file.parent / Path(f).expanduser() for name, f in spec.demonstrations.items()}
    demos: dict[str, DemonstrationSet] = {}
    for config in spec.configurations:
        name = config.demonstrations
        if name not in sources:
            raise ConfigError(
                f"{file}: configuration {config.name!r} names demonstration set {name!r}; use "
                f"one of {', '.join(sorted(sources))} or declare it under 'demonstrations' "
                "(name: file)",
                "rubric",
            )
        if name not in demos:
            demos[name] = load_demonstrations(sources[name])
        available = len(demos[name].dialogues)
        if config.shots > available:
            raise ConfigError(
                f"{file}: configuration {config.name!r} asks {config.shots} shots but "
                f"demonstration set {name!r} has {available} dialogues; lower 'shots'",
                "rubric",
            )
    return demos


def _ranked(ranking: list[str], configs: dict[str, Configuration], file: Path) -> list:
    unknown = [name for name in ranking if name not in configs]
    if unknown:
        raise ConfigError(
            f"{file}: ranking names unknown configuration(s) {', '.join(map(repr, unknown))}; "
            f"declared: {', '.join(configs)}",
            "rubric",
        )
    if len(set(ranking)) != len(ranking) or set(ranking) != set(configs):
        missing = sorted(set(configs) - set(ranking))
        raise ConfigError(
            f"{file}: ranking must list every configuration exactly once, best first"
            + (f" (missing: {', '.join(missing)})" if missing else " (a name repeats)"),
            "rubric",
        )
    return [configs[name] for name in ranking]


def compare_model_size(a: Configuration, b: Configuration) -> int | None:
    """1 if a's model is bigger, -1 if smaller, 0 if the same, None if not comparable."""
    if a.model == b.model:
        return 0
    if a.size is not None and b.size is not None:
        return (a.size > b.size) - (a.size < b.size)
    (base_a, layers_a), (base_b, layers_b) = truncation_of(a.model), truncation_of(b.model)
    if base_a != base_b:
        return None
    if layers_a is None or layers_b is None:
        return 1 if layers_a is None else -1
    return (layers_a > layers_b) - (layers_a < layers_b)


def _factors(config: Configuration) -> dict[str, object]:
    sampling = (config.temperature, config.top_p, config.max_new_tokens)
    return {
        "model": config.model,
        "demonstrations": config.demonstrations,
        "shots": config.shots,
        "sampling": sampling,
    }


def rule_verdict(
    a: Configuration, b: Configuration, demos: dict[str, DemonstrationSet]
) -> tuple[int, str] | None:
    """(1 if the rules of thumb put a above b, -1 if below, the rule) when a and b differ in
    exactly one factor that a rule orders; None otherwise."""
    fa, fb = _factors(a), _factors(b)
    differing = [key for key in fa if fa[key] != fb[key]]
    if len(differing) != 1:
        return None
    factor = differing[0]
    if factor == "model":
        order = compare_model_size(a, b)
        rule = "a bigger model beats a smaller one"
    elif factor == "shots":
        order = (a.shots > b.shots) - (a.shots < b.shots)
        rule = "more shots beat fewer"
    elif factor == "demonstrations":
        qa, qb = demos[a.demonstrations].quality, demos[b.demonstrations].quality
        order = (qa > qb) - (qa < qb)
        rule = "better demonstrations beat worse ones"
    else:
        return None
    return (order, rule) if order else None


def check_rules_of_thumb(
    ranked: list[Configuration], demos: dict[str, DemonstrationSet], file: Path
) -> None:
    """Raise naming the first two configurations whose declared order breaks a rule."""
    for i, higher in enumerate(ranked):
        for lower in ranked[i + 1 :]:
            verdict = rule_verdict(higher, lower, demos)
            if verdict is not None and verdict[0] < 0:
                raise ConfigError(
                    f"{file}: ranking puts {higher.name!r} above {lower.name!r}, but they "
                    f"differ only in one factor and {verdict[1]}: rank {lower.name!r} above "
                    f"{higher.name!r}",
                    "rubric",
                )
