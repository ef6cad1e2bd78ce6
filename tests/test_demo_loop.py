"""The whole loop end to end on the tiny model (`alignloop demo --quick`): real servers on
loopback, simulated users over HTTP, curation, training, evaluation, the promotion decision,
and the report, with assertions on what each stage wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from alignloop.cli import app
from alignloop.loop.demo import ARMS, DemoConfig, run_demo_loop, troll_shares
from alignloop.store.db import make_engine
from alignloop.store.models import Conversation, CurationRun, Feedback, LoopRound, Message


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    lines: list[str] = []
    config = DemoConfig(quick=True, rounds=1, out=str(out), users=4)
    report = run_demo_loop(config, lines.append, lambda *_: None)
    return out, report, lines


def test_the_report_holds_every_round_of_both_arms(demo):
    out, report, lines = demo
    assert report == out / "report.html" and report.stat().st_size > 1000
    assert "data:image/png;base64," in report.read_text()
    data = json.loads((out / "report.json").read_text())
    assert [(r["arm"], r["round"]) for r in data["rounds"]] == [
        (arm, n) for arm in ARMS for n in (0, 1)
    ]
    for row in data["rounds"]:
        assert 0 <= row["good_rate"] <= 1 and 0 <= row["unsafe_rate"] <= 1 and row["n"] == 8
    assert set(data["targets"]) >= {"good_rate_gain", "unsafe_fell_by_a_third", "filtered_safer"}
    assert [p["arm"] for p in data["promotion"]] == list(ARMS)
    assert any("after round 0" in line for line in lines)


@pytest.mark.parametrize("arm", list(ARMS))
def test_each_stage_wrote_its_part(demo, arm):
    out, _, _ = demo
    folder = out / arm
    engine = make_engine(str(folder / "alignloop.db"))
    with Session(engine) as session:
        users = session.scalar(select(func.count(func.distinct(Conversation.user_id))))
        assert users >= 4  # the simulated users (and the measuring one) talked over HTTP
        assert session.scalar(select(func.count()).select_from(Feedback)) > 0
        assert session.scalar(select(func.count()).select_from(Message)) > 0
        run = session.scalars(select(CurationRun)).one()
        loop_round = session.scalars(select(LoopRound)).one()
        assert loop_round.status == "finished" and loop_round.curation_run_id == run.id
        assert loop_round.config["troll_filter"] is ARMS[arm]
    engine.dispose()
    simulated = (folder / "simulation-1" / "replies.jsonl").read_text().splitlines()
    assert len(simulated) >= 4
    state = json.loads((folder / "rounds" / arm / "round-1" / "state.json").read_text())
    assert "curate" in state and "data" in state and "promote" in state
    if "evaluate" in state:  # enough feedback to train on: candidate trained and judged
        assert Path(state["train"]["out"], "alignloop.json").exists()
        assert state["evaluate"]["win_rate"]["n"] == 8


def test_troll_shares_scale_to_the_adversarial_share():
    assert sum(troll_shares(0.3).values()) == pytest.approx(0.3, abs=1e-6)
    assert sum(troll_shares(0.5).values()) == pytest.approx(0.5, abs=1e-6)


def test_demo_cli_names_its_options():
    result = CliRunner().invoke(app, ["demo", "--help"])
    assert result.exit_code == 0
    for option in ("--quick", "--rounds", "--users", "--adversarial-share"):
        assert option in result.output
