"""Settings: YAML files and flags map onto typed fields; bad values name the field."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from alignloop.config import ServeConfig, load_config
from alignloop.errors import ConfigError
from alignloop.store.db import head_revision


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "serve.yaml"
    path.write_text("port: 9000\nmodel: tiny\nrate-limit-burst: 5\n")
    config = load_config(ServeConfig, path, {"port": 9100})
    assert (config.port, config.model, config.rate_limit_burst) == (9100, "tiny", 5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("prot: 9000\n", "'prot': unknown option"),
        ("port: many\n", "'port'"),
        ("safety_gate: perspective\n", "'safety_gate'"),
        ("- a\n- b\n", "must hold a mapping"),
        ("port: [\n", "not valid YAML"),
    ],
)
def test_bad_config_files_name_the_field(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(ServeConfig, path)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "alignloop", *args], capture_output=True, text=True, timeout=120
    )


def test_cli_lists_every_command():
    out = _cli("--help").stdout
    for command in ("serve", "export", "demo", "db", "models"):
        assert command in out


def test_cli_rejects_a_bad_option_value_with_the_field_name(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("temperature: 7\n")
    result = _cli("serve", "--config", str(path))
    assert result.returncode == 2
    assert "temperature" in result.stderr and "less than or equal to 2" in result.stderr


def test_cli_db_upgrade(tmp_path):
    db = tmp_path / "cli.db"
    assert _cli("db", "upgrade", "--db", str(db)).returncode == 0
    assert _cli("db", "current", "--db", str(db)).stdout.strip() == head_revision()


@pytest.mark.parametrize(
    "stem, cls_path",
    [
        ("curate", "alignloop.curate.config:CurateConfig"),
        ("release", "alignloop.curate.config:ReleaseConfig"),
        ("safety-train", "alignloop.safety.config:SafetyTrainConfig"),
        ("safety-topics", "alignloop.safety.sensitive:SensitiveTopicsConfig"),
        ("simulate-deployment", "alignloop.simulate.settings:SimulateDeploymentConfig"),
        ("simulate", "alignloop.simulate.live.config:SimulateLiveConfig"),
        ("serve", "alignloop.config:ServeConfig"),
        ("safety-bake", "alignloop.safety.baked:BakeConfig"),
        ("safety-gate-data", "alignloop.safety.multitask:GateDataConfig"),
        ("evaluate-safety", "alignloop.evaluate.config:SafetyEvalConfig"),
        ("evaluate", "alignloop.evaluate.config:EvaluateConfig"),
        ("synth-rmsp", "alignloop.synth.rmsp:RmspConfig"),
        ("synth", "alignloop.synth.config:SynthRunConfig"),
        ("synth-queries", "alignloop.synth.config:SynthQueriesConfig"),
        ("synth-responses", "alignloop.synth.config:SynthResponsesConfig"),
        ("synth-comparisons", "alignloop.synth.config:SynthComparisonsConfig"),
        ("loop", "alignloop.loop.config:LoopConfig"),
    ],
)
def test_each_yaml_config_loads_and_names_every_option(stem, cls_path):
    import importlib
    from pathlib import Path

    from alignloop.config import load_config

    module, _, name = cls_path.partition(":")
    cls = getattr(importlib.import_module(module), name)
    path = Path(__file__).resolve().parents[1] / "configs" / f"{stem}.yaml"
    load_config(cls, path)
    lines = path.read_text().splitlines()
    keys = {line.split(":")[0] for line in lines if line and not line.startswith("#")}
    # an option left unset may be shown commented out ("# admin_token: ...")
    commented = {m[1] for line in lines if (m := re.match(r"#\s?([a-z_]+): ", line))}
    keys |= commented & set(cls.model_fields)
    assert keys == set(cls.model_fields)
