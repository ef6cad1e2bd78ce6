"""Curation throughput: the whole `alignloop curate` chain on a simulated deployment.

A store of MESSAGES messages from USERS users (alignloop.simulate.deployment, 30% trolls, made
once and cached under benchmarks/results/) is curated in a fresh subprocess with the embedding
safety classifier (MiniLM + logistic head trained on DiaSafety train, cached per unique text).
Reports seconds and messages/s per stage (load, safety scores, trust, labels, dataset building
with de-identification, recording) and the peak memory (max RSS) of the curating process, and
how well the trust scores find the simulated trolls (precision/recall against the truth).
Target: the chain on 1M messages in under 15 minutes on 2 cores, memory under 4 GB.

    python benchmarks/curate_throughput.py [--messages 1000000] [--users 20000] [--classifier DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from common import alignloop

HERE = Path(__file__).resolve().parent
DIASAFETY = HERE.parents[1] / "shared" / "data" / "diasafety" / "train.json"


def simulated_store(work: Path, users: int, messages: int) -> tuple[Path, Path]:
    from alignloop.simulate.deployment import simulate_into

    db, truth = work / f"store-{messages}.db", work / f"truth-{messages}.parquet"
    if not (db.exists() and truth.exists()):
        db.unlink(missing_ok=True)
        started = time.time()
        simulate_into(str(db), users, messages, seed=0, truth=truth)
        print(f"simulated {messages} messages in {time.time() - started:.0f} s", flush=True)
    from alignloop.store.db import make_engine, upgrade

    upgrade(make_engine(str(db)))  # a cached store made before a newer migration
    return db, truth


def embedding_classifier(work: Path) -> str:
    """The embedding classifier trained on DiaSafety train (or the profanity model without it)."""
    folder = work / "safety-embedding"
    if folder.exists():
        return str(folder)
    if not DIASAFETY.exists():
        print(f"{DIASAFETY} is missing: using the profanity classifier", flush=True)
        return "profanity"
    cmd = ["safety", "train", "--kind", "embedding", "--data", str(DIASAFETY)]
    alignloop(*cmd, "--out", str(folder))
    return str(folder)


def child(db: str, out: str, classifier: str) -> None:
    """One curation run in this process; prints its stage times and peak memory."""
    from alignloop.curate.config import CurateConfig
    from alignloop.curate.run import curate

    result = curate(CurateConfig(db=db, out=out, safety_classifier=classifier))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps({"seconds": result.seconds, "summary": result.summary,
                                  "run_id": result.run_id, "peak_memory_mb": peak}))  # fmt: skip


def troll_detection(db: Path, truth: Path, run_id: int) -> dict[str, float]:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from alignloop.simulate.deployment import Population
    from alignloop.store.db import make_engine
    from alignloop.store.models import CurationRun, TrustScore

    population = Population.load(truth)
    with Session(make_engine(str(db))) as session:
        rows = session.execute(
            select(TrustScore.user_id, TrustScore.troll_score).where(TrustScore.run_id == run_id)
        ).all()
        threshold = session.get_one(CurationRun, run_id).config["max_troll_score"]
    flagged = {u for u, score in rows if score > threshold}
    trolls = set(population.trolls) & {u for u, _ in rows}
    by_type = {}
    for kind in sorted(set(population.user_type.values()) - {"helper"}):
        members = set(population.users_of_type(kind)) & {u for u, _ in rows}
        by_type[kind] = len(members & flagged) / max(len(members), 1)
    return {
        "troll_precision": len(flagged & trolls) / max(len(flagged), 1),
        "troll_recall": len(flagged & trolls) / max(len(trolls), 1),
        "recall_by_type": by_type,
        "users_scored": len(rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--classifier", default=None, help="Safety classifier (default: trained).")
    parser.add_argument("--work", default=str(HERE / "results" / "curate"))
    parser.add_argument("--out", default=str(HERE / "results" / "curate_throughput.json"))
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    db, truth = simulated_store(work, args.users, args.messages)
    classifier = args.classifier or embedding_classifier(work)
    out = work / f"run-{int(time.time())}"
    started = time.time()
    run = subprocess.run(
        [sys.executable, __file__, "--child", str(db), str(out), classifier],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    wall = time.time() - started
    line = next((x for x in run.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        sys.exit(f"curation failed:\n{run.stderr[-4000:]}")
    result = json.loads(line[len("RESULT ") :])
    n = result["summary"]["messages"]
    report = {
        "messages": n,
        "users": args.users,
        "classifier": classifier,
        "seconds_by_stage": result["seconds"],
        "messages_per_second_by_stage": {
            stage: round(n / max(seconds, 1e-9)) for stage, seconds in result["seconds"].items()
        },
        "chain_seconds": round(sum(result["seconds"].values()), 1),
        "process_seconds": round(wall, 1),
        "peak_memory_mb": round(result["peak_memory_mb"]),
        "summary": result["summary"],
        "trust_vs_truth": troll_detection(db, truth, result["run_id"]),
        "targets": {"chain_seconds": 900, "peak_memory_mb": 4096},
        "cpus": os.cpu_count(),
    }
    report["meets_targets"] = report["chain_seconds"] < 900 and report["peak_memory_mb"] < 4096
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
