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
from alignloop.loop.demo import (
    ARMS,
    DemoConfig,
    difference_notes,
    loop_config,
    measured_prompts,
    run_demo_loop,
    targets,
    troll_shares,
)
from alignloop.safety.classifiers import write_manifest
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
        replies = [json.loads(x) for x in Path(row["replies"]).read_text().splitlines()]
        assert len(replies) == 8  # the replies the rates count, each with its verdict
        assert sum(r["gold"]["unsafe"] for r in replies) / 8 == row["unsafe_rate"]
        benign = [r for r in replies if not r["adversarial"]]
        deflected = sum("needless_deflection" in r["gold"]["reasons"] for r in benign)
        assert row["deflected_benign_rate"] == deflected / len(benign)
        assert all(r["prompt"] and "reply" in r for r in replies)
    assert set(data["targets"]) >= {"good_rate_gain", "unsafe_fell_by_a_third", "filtered_safer"}
    assert [p["arm"] for p in data["promotion"]] == list(ARMS)
    for row in data["promotion"]:  # the trust scores against the simulation's truth file
        truth = (out / row["arm"] / "simulation-1" / "users.jsonl").read_text().splitlines()
        assert row["trolls"] == sum(json.loads(u)["user_type"] != "helper" for u in truth)
        assert 0 <= row["trolls_distrusted"] <= row["trolls"]
        assert 0 <= row["helpers_distrusted"] <= len(truth) - row["trolls"]
        assert row["troll_auc"] is None or 0 <= row["troll_auc"] <= 1
    assert "helpers scored past the troll filter" in report.read_text()
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
    summary = json.loads((folder / "simulation-1" / "summary.json").read_text())
    assert (
        summary["run"]["config"]["reserved_eval_prompts"]
        == DemoConfig(quick=True).sized().eval_limit
    )
    state = json.loads((folder / "rounds" / arm / "round-1" / "state.json").read_text())
    assert "curate" in state and "data" in state and "promote" in state
    if "evaluate" in state:  # enough feedback to train on: candidate trained and judged
        assert Path(state["train"]["out"], "alignloop.json").exists()
        assert state["evaluate"]["win_rate"]["n"] == 8


def test_the_measured_prompts_leave_out_the_promotions_evaluation_prompts(tmp_path):
    from alignloop.loop.evaluation import held_out_prompts
    from alignloop.simulate.live.prompts import heldout_prompts

    config = DemoConfig(out=str(tmp_path))
    evaluated = {
        prompt[-1]["content"]
        for prompt_set in held_out_prompts(loop_config(config, "unfiltered", tmp_path))
        for prompt in prompt_set.prompts
    }
    unreserved = heldout_prompts(config.measure_prompts, config.adversarial_share, seed=0)
    assert {p.text for p in unreserved} & evaluated  # what seed 0 measured before the reserve
    measured = measured_prompts(config)
    assert len(measured) == config.measure_prompts
    assert not {p.text for p in measured} & evaluated


def test_troll_shares_scale_to_the_adversarial_share():
    assert sum(troll_shares(0.3).values()) == pytest.approx(0.3, abs=1e-6)
    assert sum(troll_shares(0.5).values()) == pytest.approx(0.5, abs=1e-6)


def _rows(filtered: list[tuple[int, int]], unfiltered: tuple[int, int], n: int = 30):
    """Report rows from (good, unsafe) reply counts over `n` prompts."""
    made = [
        {"arm": "troll-filtered", "round": i, "good_rate": g / n, "unsafe_rate": u / n}
        for i, (g, u) in enumerate(filtered)
    ]
    good, unsafe = unfiltered
    other = {"arm": "unfiltered", "round": 1, "good_rate": good / n, "unsafe_rate": unsafe / n}
    return [*made, other]


def test_targets_count_exactly_a_third_fewer_unsafe_replies_as_met():
    met = targets(_rows([(2, 9), (14, 6)], (11, 7)))  # 6/30 > 9/30 * 2/3 in floats
    assert met["unsafe_fell_by_a_third"] and met["filtered_safer"]
    assert met["good_rate_gain_met"] and met["filtered_at_least_as_good"]
    missed = targets(_rows([(2, 6), (3, 5)], (3, 5)))
    assert not missed["unsafe_fell_by_a_third"]
    assert not missed["filtered_safer"]  # a tie is not safer
    assert not missed["good_rate_gain_met"]  # one reply of 30 is 3.3 points


def test_the_demo_hands_its_safety_classifier_to_curation_and_promotion(tmp_path):
    from alignloop.loop.demo import loop_config

    folder = tmp_path / "compliance"
    folder.mkdir()
    write_manifest(folder, {"name": "compliance", "kind": "profanity"})
    config = DemoConfig(safety_classifier=str(folder))
    settings = loop_config(config, "troll-filtered", tmp_path)
    assert (settings.safety_classifier, settings.safety_judge) == (str(folder),) * 2
    config = config.model_copy(update={"safety_judge": "profanity"})
    settings = loop_config(config, "unfiltered", tmp_path)
    assert (settings.safety_classifier, settings.safety_judge) == (str(folder), "profanity")


def test_the_demo_hands_its_trust_options_to_every_round(tmp_path):
    from alignloop.loop.demo import loop_config

    options = {"red_team_thumbs": "own_signal", "labels_judged_by": "peers",
               "judge_red_teaming": False, "min_scale": 0.05, "attack_answers": True}  # fmt: skip
    settings = loop_config(DemoConfig(**options), "troll-filtered", tmp_path)
    assert {name: getattr(settings, name) for name in options} == options
    with pytest.raises(ValueError, match="red_team_thumbs"):
        DemoConfig(red_team_thumbs="with_the_trolls")


def test_a_demo_with_an_unknown_classifier_is_refused_before_anyone_talks(tmp_path):
    with pytest.raises(ValueError, match=r"safety_judge: .*alignloop safety train"):
        DemoConfig(out=str(tmp_path / "demo"), safety_judge=str(tmp_path / "missing"))
    assert not (tmp_path / "demo").exists()


def test_demo_cli_names_its_options():
    result = CliRunner().invoke(app, ["demo", "--help"])
    assert result.exit_code == 0
    for option in ("--quick", "--rounds", "--users", "--adversarial-share"):
        assert option in result.output


def test_the_arms_last_rates_are_compared_prompt_by_prompt_with_an_interval():
    rows = _rows([(2, 3), (12, 2)], (14, 2))
    rows[-2]["good_by_prompt"] = [True] * 12 + [False] * 18
    rows[-1]["good_by_prompt"] = [True] * 14 + [False] * 16
    goals = targets(rows)
    good = goals["filtered_minus_unfiltered_good"]
    assert good["difference"] == pytest.approx(-2 / 30)
    assert good["low"] < good["difference"] < good["high"] <= 0  # 2 prompts apart, all one way
    assert "filtered_minus_unfiltered_unsafe" not in goals  # no per-prompt verdicts given
    assert "-0.067" in difference_notes(goals)[0]
