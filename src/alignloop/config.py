"""Typed settings. Every option is one pydantic field with a help text; YAML files and CLI flags
map onto the fields one to one (`config_command` builds the flags from the fields).
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

import typer
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from alignloop.errors import ConfigError

C = TypeVar("C", bound=BaseModel)


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ServeConfig(Settings):
    db: str = Field("alignloop.db", description="SQLite file path or SQLAlchemy URL of the store.")
    model: str = Field(
        "smollm2",
        description="'smollm2' (embedded default), 'tiny' (random test model), a model folder or "
        "a hub id; with --base-url, the model name the remote server expects.",
    )
    base_url: str | None = Field(
        None, description="Serve through an OpenAI-compatible server at this URL (…/v1)."
    )
    api_key: str = Field("alignloop", description="Bearer token for --base-url.")
    model_version: str | None = Field(
        None, description="Name the replies are logged under (default: derived from --model)."
    )
    device: str = Field("cpu", description="Torch device of the local backend.")
    max_batch_size: int = Field(
        16,
        ge=1,
        description="Most replies the local backend generates in one batch: requests that "
        "arrive while it is busy share the next batch.",
    )
    host: str = Field("127.0.0.1", description="Interface to listen on.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port (0 picks a free one).")
    max_body_bytes: int = Field(
        262_144, ge=1024, description="Largest request body accepted; larger ones get 413."
    )
    rate_limit_per_minute: float = Field(
        120, gt=0, description="Sustained write requests per user per minute (429 beyond)."
    )
    rate_limit_burst: int = Field(
        30, ge=1, description="Write requests a user may send at once before the limit applies."
    )
    max_new_tokens: int = Field(128, ge=1, description="Default reply length in tokens.")
    max_tokens_limit: int = Field(1024, ge=1, description="Largest max_tokens a client may ask.")
    temperature: float = Field(0.7, ge=0, le=2, description="Default sampling temperature.")
    top_p: float = Field(0.9, gt=0, le=1, description="Default nucleus sampling mass.")
    max_compare_k: int = Field(4, ge=2, le=8, description="Most responses one comparison may ask.")
    safety_gate: str = Field(
        "profanity",
        description="Classifier of the safety gate on input and output: 'profanity', 'off', "
        "a folder written by `alignloop safety train`, the name of a classifier registered in "
        "the store, or 'promoted' (the classifier of the last promoted red-team round).",
    )
    safety_threshold: float = Field(
        0.5, ge=0, le=1, description="P(unsafe) at or above which the gate answers a canned reply."
    )
    topic_gate: str = Field(
        "off",
        description="Sensitive-topic classifier gating input and output beside the safety one: "
        "'off', a folder written by `alignloop safety topics`, or a registered name.",
    )
    topic_threshold: float = Field(
        0.55, ge=0, le=1, description="P(sensitive topic) at or above which the gate fires."
    )
    canned_reply: Literal["non_sequitur", "safe_response"] = Field(
        "non_sequitur", description="What the gate answers: a topic change, or an apology."
    )
    follow_arm: str | None = Field(
        None,
        description="Serve the version `alignloop loop` last promoted in this arm (e.g. 'main'), "
        "swapped in without a restart when a round promotes a new one.",
    )
    follow_seconds: float = Field(
        10, gt=0, description="How often the store is checked for a new promotion."
    )
    loop_config: str | None = Field(
        None,
        description="A YAML file of `alignloop loop` options: rounds can then be started from "
        "the admin page (and on a schedule), each in its own process, on this server's store.",
    )
    loop_every_minutes: float = Field(
        0, ge=0, description="With loop_config: start a round every N minutes (0: on demand only)."
    )
    exit_with_parent: int | None = Field(
        None,
        ge=1,
        description="Stop when the process with this id, the one that started the server, ends "
        "(however it ends: the demo and benchmarks set it so that none leaves a server behind).",
    )

    @model_validator(mode="after")
    def _known_gates(self) -> ServeConfig:
        from alignloop.safety.classifiers import checked_source

        for field in ("safety_gate", "topic_gate"):
            value = getattr(self, field)
            if value != "off":
                checked_source(field, value, self.db)
        if self.loop_config and not Path(self.loop_config).is_file():
            raise ValueError(
                f"loop_config: {self.loop_config} is not a file; write one like configs/loop.yaml"
            )
        return self

    admin_token: str | None = Field(
        None,
        min_length=12,
        description="Token that opens the admin dashboard (/admin); unset, the dashboard is off. "
        "Prefer a config file to a flag: flags show in the process list.",
    )
    log_level: str = Field("warning", description="Server log level.")


def load_config(cls: type[C], path: Path | None = None, overrides: dict | None = None) -> C:
    """Defaults, then the YAML file, then CLI overrides; errors name the field and the fix."""
    values: dict[str, Any] = {}
    if path is not None:
        if not path.exists():
            raise ConfigError(f"config file {path} does not exist", "config")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}", "config") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping of option: value", "config")
        values.update({k.replace("-", "_"): v for k, v in loaded.items()})
    values.update(overrides or {})
    try:
        return cls(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        if not field:  # a check across options: its message starts with "field: "
            message = first["msg"].removeprefix("Value error, ")
            field, _, hint = message.partition(": ")
            raise ConfigError(f"option {field!r}: {hint}", field) from exc
        hint = "unknown option; see --help" if first["type"] == "extra_forbidden" else first["msg"]
        raise ConfigError(f"option {field!r}: {hint} (got {first.get('input')!r})", field) from exc


def _cli_type(annotation: Any) -> type:
    """The plain type Typer parses for a field (Literals become strings checked by pydantic)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return _cli_type(args[0])
    if origin is Literal:
        return type(args[0])
    return annotation if isinstance(annotation, type) else str


def config_command(
    app: typer.Typer, name: str, cls: type[C], help: str
) -> Callable[[Callable[[C], None]], Callable[[C], None]]:
    """Register `name` on `app` with one --flag per field of `cls`, plus --config FILE.yaml."""

    def register(run: Callable[[C], None]) -> Callable[[C], None]:
        params = [
            inspect.Parameter(
                "config",
                inspect.Parameter.KEYWORD_ONLY,
                default=typer.Option(None, "--config", help="YAML file of options."),
                annotation=Path | None,
            )
        ]
        for field_name, field in cls.model_fields.items():
            flag = "--" + field_name.replace("_", "-")
            kind = _cli_type(field.annotation)
            decl = f"{flag}/--no-{flag[2:]}" if kind is bool else flag
            choices = typing.get_args(field.annotation)
            extra = (
                f" One of: {', '.join(map(str, choices))}."
                if typing.get_origin(field.annotation) is Literal
                else ""
            )
            help_text = f"{field.description}{extra} [default: {field.default}]"
            params.append(
                inspect.Parameter(
                    field_name,
                    inspect.Parameter.KEYWORD_ONLY,
                    default=typer.Option(None, decl, help=help_text, show_default=False),
                    annotation=kind | None,
                )
            )

        def command(**kwargs: Any) -> None:
            path = kwargs.pop("config")
            run(load_config(cls, path, {k: v for k, v in kwargs.items() if v is not None}))

        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__doc__ = help
        app.command(name, help=help)(command)
        return run

    return register
