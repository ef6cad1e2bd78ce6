"""Issue 8's targets over several demo seeds: the result files of `loop_demo.py --seed N` (one
per seed, the same settings otherwise) pooled into one JSON.

    python benchmarks/loop_seeds.py RESULT.json [RESULT.json ...] [--out FILE]

One seed's arm comparison rests on 30 prompts and on which candidate each arm's promotion test
let through, so its order flips from seed to seed. Here each seed's last rates and targets sit
beside the pooled ones: each arm's rates over every seed's prompts, and the troll-filtered minus
unfiltered difference with a 95% bootstrap interval that resamples the prompts within each seed.
That interval covers which prompts were drawn, not the training noise of seeds never run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from alignloop.evaluate.ratings import stratified_paired_difference
from alignloop.loop.demo import ARMS, RATES

HERE = Path(__file__).resolve().parent
FILTERED, UNFILTERED = ARMS  # the demo's arms: troll filter on, off
TARGETS = ("good_rate_gain_met", "unsafe_fell_by_a_third", "filtered_at_least_as_good",
           "filtered_safer")  # fmt: skip
SEED_ONLY = {"seed", "out"}  # settings that may differ between the pooled runs


def load_runs(paths: list[str]) -> list[dict]:
    """The result files, checked to differ in their seed alone (pooling other settings
    together would average two systems)."""
    runs = []
    for path in paths:
        try:
            run = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            sys.exit(f"{path}: cannot read it ({exc}); give loop_demo.py result files")
        if not isinstance(run, dict) or not {"settings", "rounds", "targets"} <= run.keys():
            sys.exit(f"{path}: not a loop_demo.py result (no settings, rounds or targets)")
        runs.append(run)
    first = runs[0]["settings"]
    for path, run in zip(paths[1:], runs[1:], strict=True):
        for field, value in run["settings"].items():
            if field not in SEED_ONLY and first.get(field) != value:
                sys.exit(
                    f"{path}: setting {field} is {value!r}, but {paths[0]} has "
                    f"{first.get(field)!r}; pool runs that differ in their seed only"
                )
    seeds = [run["settings"]["seed"] for run in runs]
    if len(set(seeds)) < len(seeds):
        sys.exit(f"seeds repeat ({seeds}); pool one result per seed")
    return runs


def arm_rows(run: dict, arm: str) -> list[dict]:
    """An arm's measured rows, round 0 first."""
    return [row for row in run["rounds"] if row["arm"] == arm]


def last_row(run: dict, arm: str) -> dict:
    return arm_rows(run, arm)[-1]


def seed_summary(run: dict) -> dict:
    first = arm_rows(run, FILTERED)[0]
    summary = {"seed": run["settings"]["seed"], "seconds": run["seconds"]}
    summary["round_0"] = {"good": first["good_rate"], "unsafe": first["unsafe_rate"],
                          "deflected": first["deflected_benign_rate"]}  # fmt: skip
    for arm in ARMS:
        row = last_row(run, arm)
        promoted = [r["round"] for r in arm_rows(run, arm) if r.get("promoted")]
        summary[arm] = {"model_of_round": max(promoted, default=0), "good": row["good_rate"],
                        "unsafe": row["unsafe_rate"], "deflected": row["deflected_benign_rate"]}  # fmt: skip
    summary["targets_met"] = {name: bool(run["targets"][name]) for name in TARGETS}
    return summary


def pooled_rate(rows: list[dict], rate: str) -> float:
    """A rate over every row's prompts; the deflected rate over the harmless prompts alone,
    as the demo reports it (the per-prompt flags cover every prompt, False where hostile)."""
    hits = sum(sum(row[f"{rate}_by_prompt"]) for row in rows)
    if rate == "deflected":
        return hits / sum(row["by_kind"]["benign"]["n"] for row in rows)
    return hits / sum(len(row[f"{rate}_by_prompt"]) for row in rows)


def pooled(runs: list[dict]) -> dict:
    """Each arm's last rates over all prompts of all seeds, the filtered arm's round 0, and
    the arms' paired difference per rate."""
    out: dict = {"prompts": sum(len(last_row(r, FILTERED)["good_by_prompt"]) for r in runs)}
    firsts = [arm_rows(r, FILTERED)[0] for r in runs]
    rows = {arm: [last_row(r, arm) for r in runs] for arm in ARMS}
    for rate in RATES:
        key = f"{rate}_by_prompt"
        out[f"round_0_{rate}"] = pooled_rate(firsts, rate)
        for arm in ARMS:
            out[f"{arm}_{rate}"] = pooled_rate(rows[arm], rate)
        pairs = [(a[key], b[key]) for a, b in zip(rows[FILTERED], rows[UNFILTERED], strict=True)]
        out[f"filtered_minus_unfiltered_{rate}"] = stratified_paired_difference(pairs)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", help="loop_demo.py result files, one per seed.")
    parser.add_argument("--out", default=str(HERE / "results" / "loop_seeds.json"))
    args = parser.parse_args()
    runs = load_runs(args.results)
    result = {
        "seeds": [seed_summary(run) for run in runs],
        "pooled": pooled(runs),
        "targets_met_in_seeds": {
            name: sum(bool(run["targets"][name]) for run in runs) for name in TARGETS
        },
        "settings": {k: v for k, v in runs[0]["settings"].items() if k not in SEED_ONLY},
        "files": args.results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    for summary in result["seeds"]:
        arms = "  ".join(
            f"{arm} {summary[arm]['good']:.3f} / {summary[arm]['unsafe']:.3f} (round "
            f"{summary[arm]['model_of_round']}'s model)" for arm in ARMS
        )  # fmt: skip
        met = sum(summary["targets_met"].values())
        print(f"seed {summary['seed']}: {arms}  targets met {met} of {len(TARGETS)}")
    print(json.dumps({"pooled": result["pooled"], "met": result["targets_met_in_seeds"]}, indent=1))


if __name__ == "__main__":
    main()
