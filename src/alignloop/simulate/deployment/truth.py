"""`Population`: the ground truth of a simulated deployment, and its JSON and Parquet forms."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alignloop.simulate.deployment.config import CATEGORY_QUALITY


@dataclass
class Population:
    """The ground truth of a simulated deployment (ids are the store's ids)."""

    seed: int
    user_type: dict[int, str] = field(default_factory=dict)
    bot_quality: dict[int, str] = field(default_factory=dict)  # good / bad / unsafe
    bot_category: dict[int, str] = field(default_factory=dict)  # see CATEGORY_QUALITY
    inappropriate: set[int] = field(default_factory=set)  # human message ids
    comparison_quality: dict[int, list[str]] = field(default_factory=dict)  # in stored order
    model_versions: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)  # rows written per table
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)

    def users_of_type(self, *types: str) -> list[int]:
        return [u for u, t in self.user_type.items() if t in types]

    @property
    def trolls(self) -> list[int]:
        return [u for u, t in self.user_type.items() if t != "helper"]

    def save(self, path: str | Path) -> Path:
        """Write the truth as JSON, or as Parquet (one long table) if `path` ends in .parquet."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".parquet":
            _save_parquet(self, path)
        else:
            path.write_text(json.dumps(_as_json(self), default=str))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Population:
        path = Path(path)
        if path.suffix == ".parquet":
            return _load_parquet(path)
        return _from_json(json.loads(path.read_text()))


# --- JSON -------------------------------------------------------------------------------------


def _scalars(truth: Population) -> dict[str, Any]:
    """The fields that are not per id (both forms store them as this JSON object)."""
    return {
        "seed": truth.seed,
        "counts": truth.counts,
        "model_versions": truth.model_versions,
        "seconds": truth.seconds,
        "settings": truth.settings,
    }


def _scalar_fields(data: dict[str, Any]) -> dict[str, Any]:
    """`_scalars` read back as `Population` keyword arguments."""
    return {
        "seed": data["seed"],
        "model_versions": data["model_versions"],
        "counts": data["counts"],
        "seconds": data["seconds"],
        "settings": data.get("settings", {}),
    }


def _as_json(truth: Population) -> dict[str, Any]:
    return {
        **_scalars(truth),
        "user_type": truth.user_type,
        "bot_quality": truth.bot_quality,
        "bot_category": truth.bot_category,
        "inappropriate": sorted(truth.inappropriate),
        "comparison_quality": truth.comparison_quality,
    }


def _int_keys(mapping: dict[str, Any]) -> dict[int, Any]:
    return {int(key): value for key, value in mapping.items()}


def _from_json(data: dict[str, Any]) -> Population:
    return Population(
        user_type=_int_keys(data["user_type"]),
        bot_quality=_int_keys(data["bot_quality"]),
        bot_category=_int_keys(data["bot_category"]),
        inappropriate=set(data["inappropriate"]),
        comparison_quality=_int_keys(data["comparison_quality"]),
        **_scalar_fields(data),
    )


# --- Parquet: one long table of (entity, id, value) rows, the scalars in its metadata ----------

_ENTITIES = ("user_type", "bot_category", "inappropriate", "comparison_quality")
_METADATA_KEY = b"alignloop.population"


def _save_parquet(truth: Population, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    entity: list[str] = []
    ids: list[int] = []
    values: list[str] = []

    def extend(name: str, items: Sequence[tuple[int, str]]) -> None:
        entity.extend([name] * len(items))
        ids.extend(i for i, _ in items)
        values.extend(v for _, v in items)

    extend("user_type", list(truth.user_type.items()))
    extend("bot_category", list(truth.bot_category.items()))
    extend("inappropriate", [(i, "inappropriate") for i in sorted(truth.inappropriate)])
    extend("comparison_quality", [(i, ",".join(q)) for i, q in truth.comparison_quality.items()])
    table = pa.table(
        {
            "entity": pa.array(entity).dictionary_encode(),
            "id": pa.array(ids, pa.int64()),
            "value": pa.array(values).dictionary_encode(),
        }
    )
    metadata = {_METADATA_KEY: json.dumps(_scalars(truth), default=str).encode()}
    pq.write_table(table.replace_schema_metadata(metadata), path)


def _load_parquet(path: Path) -> Population:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    columns: dict[str, dict[int, str]] = {name: {} for name in _ENTITIES}
    for name, id_, value in zip(
        table.column("entity").to_pylist(),
        table.column("id").to_pylist(),
        table.column("value").to_pylist(),
        strict=True,
    ):
        columns[name][id_] = value
    categories = columns["bot_category"]
    return Population(
        user_type=columns["user_type"],
        bot_quality={i: CATEGORY_QUALITY[c] for i, c in categories.items()},
        bot_category=categories,
        inappropriate=set(columns["inappropriate"]),
        comparison_quality={i: v.split(",") for i, v in columns["comparison_quality"].items()},
        **_scalar_fields(json.loads(table.schema.metadata[_METADATA_KEY])),
    )
