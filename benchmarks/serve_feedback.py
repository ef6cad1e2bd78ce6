"""Feedback writes through the real server vs. the raw SQLite limit, and the time the server
adds to a chat turn beyond generation. Writes benchmarks/results/serve_feedback.json.

    .venv/bin/python benchmarks/serve_feedback.py [--clients 32] [--seconds 10]

Raw limit: plain sqlite3 inserts of one feedback-sized row, one transaction each, with the
store's own durability settings (WAL, synchronous=FULL), on the same disk, in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from alignloop.serve.runner import ServerProcess

RESULTS = Path(__file__).parent / "results"


def raw_sqlite_limit(folder: Path, n: int = 5000) -> float:
    conn = sqlite3.connect(folder / "raw.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE feedback (id INTEGER PRIMARY KEY, message_id INT, user_id INT, kind TEXT,"
        " reason TEXT, text TEXT, created_at TEXT)"
    )
    started = time.perf_counter()
    for i in range(n):
        conn.execute("BEGIN")
        conn.execute(
            "INSERT INTO feedback (message_id, user_id, kind, reason, text, created_at)"
            " VALUES (?, ?, 'like', NULL, NULL, ?)",
            (i, i % 32, "2026-01-01T00:00:00+00:00"),
        )
        conn.execute("COMMIT")
    rate = n / (time.perf_counter() - started)
    conn.close()
    return rate


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def feedback_load(url: str, clients: int, seconds: float) -> dict:
    """`clients` users posting likes back to back; aiohttp, since the load generator shares
    the two cores with the server and httpx's async client tops out near 400 requests/s."""
    import aiohttp

    tokens = [f"bench-user-{i:03d}" for i in range(clients)]
    with httpx.Client(base_url=url, timeout=30) as http:
        message_ids = [
            http.post(
                "/v1/chat/completions",
                json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1},
                headers={"Authorization": f"Bearer {token}"},
            ).json()["id"]
            for token in tokens
        ]
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def client(i: int, http) -> None:
        nonlocal errors
        headers = {"Authorization": f"Bearer {tokens[i]}"}
        body = {"message_id": message_ids[i], "kind": "like"}
        while time.perf_counter() < deadline:
            sent = time.perf_counter()
            async with http.post("/api/feedback", json=body, headers=headers) as response:
                await response.read()
                errors += response.status != 201
            latencies.append((time.perf_counter() - sent) * 1000)

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(base_url=url, connector=connector) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(i, http) for i in range(clients)))
        elapsed = time.perf_counter() - started
    return {
        "clients": clients,
        "seconds": round(elapsed, 2),
        "writes": len(latencies),
        "errors": errors,
        "writes_per_s": round(len(latencies) / elapsed, 1),
        "latency_ms_p50": round(percentile(latencies, 0.50), 2),
        "latency_ms_p99": round(percentile(latencies, 0.99), 2),
    }


def chat_overhead(url: str, turns: int = 200) -> dict:
    """Client-observed latency of a chat turn minus the server's own generation time."""
    added: list[float] = []
    with httpx.Client(
        base_url=url, timeout=60, headers={"Authorization": "Bearer bench-chat"}
    ) as http:
        for i in range(turns + 10):
            body = {"messages": [{"role": "user", "content": f"hello {i}"}], "max_tokens": 1}
            sent = time.perf_counter()
            response = http.post("/v1/chat/completions", json=body)
            total = (time.perf_counter() - sent) * 1000
            timing = dict(
                part.strip().split(";dur=") for part in response.headers["server-timing"].split(",")
            )
            if i >= 10:  # warm-up turns excluded
                added.append(total - float(timing["gen"]))
    return {
        "turns": turns,
        "added_ms_median": round(statistics.median(added), 3),
        "added_ms_p99": round(percentile(added, 0.99), 3),
        "includes": "HTTP, auth, validation, input+output safety gate, logging with group commit",
    }


def _count_feedback(path: Path) -> int:
    conn = sqlite3.connect(path)
    count = conn.execute("SELECT count(*) FROM feedback").fetchone()[0]
    conn.close()
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=RESULTS) as tmp:
        folder = Path(tmp)
        raw = raw_sqlite_limit(folder)
        options = dict(
            db=str(folder / "store.db"),
            model="tiny",
            log_path=folder / "server.log",
            rate_limit_per_minute=10_000_000,
            rate_limit_burst=1_000_000,
        )
        with ServerProcess(**options) as server:
            load = asyncio.run(feedback_load(server.url, args.clients, args.seconds))
            overhead = chat_overhead(server.url)
        stored = _count_feedback(folder / "store.db")
    load["rows_stored"] = stored
    result = {
        "benchmark": "serve_feedback",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "raw_sqlite_writes_per_s": round(raw, 1),
        "feedback": load,
        "share_of_raw_limit": round(load["writes_per_s"] / raw, 3),
        "chat_turn_overhead": overhead,
        "targets": {
            "writes_per_s": 1000,
            "share_of_raw_limit": 0.30,
            "latency_ms_p99": 50,
            "added_ms_median": 5,
        },
    }
    result["targets_met"] = {
        "writes_per_s": load["writes_per_s"] >= 1000,
        "share_of_raw_limit": result["share_of_raw_limit"] >= 0.30,
        "latency_ms_p99": load["latency_ms_p99"] < 50,
        "added_ms_median": overhead["added_ms_median"] < 5,
        "no_errors": load["errors"] == 0,
        "nothing_lost": load["rows_stored"] == load["writes"],
    }
    out = RESULTS / "serve_feedback.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"result: {out}")


if __name__ == "__main__":
    main()
