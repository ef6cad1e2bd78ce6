"""What registering a trained version needs before training starts, shared by every trainer
(models, reward models, safety classifiers): the data's digest, and a free version name."""

from __future__ import annotations

import hashlib
from pathlib import Path

from alignloop.errors import Conflict


def data_version(path: str | Path) -> str:
    """A digest of the training data's bytes (every file of a datasets folder)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        with open(file, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return f"sha256:{digest.hexdigest()[:16]}"


def check_name_free(db: str, name: str) -> None:
    """Refuse, before any training, a version name the store at `db` already holds."""
    from sqlalchemy import select

    from alignloop.store.db import make_engine, upgrade
    from alignloop.store.models import ModelVersion

    engine = make_engine(db)
    upgrade(engine)
    with engine.connect() as conn:
        if conn.scalar(select(ModelVersion.id).where(ModelVersion.name == name)):
            raise Conflict(f"a model version named {name!r} exists in {db}; set --name", "name")
