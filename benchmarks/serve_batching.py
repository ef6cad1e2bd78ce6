"""Chat replies per second from the real server under concurrent users, with micro-batching on
(`max_batch_size` 16, the default) and off (1): the same prompts, greedy, a fixed length.
Writes benchmarks/results/serve_batching.json.

    .venv/bin/python benchmarks/serve_batching.py [--model smollm2] [--users 8] [--requests 32]

Each simulated user sends its requests one after another (a new conversation each), `users`
of them at once, as the demo's users and its measurement do.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from alignloop.serve.runner import ServerProcess
from common import device_name

RESULTS = Path(__file__).parent / "results"
TOPICS = ["cats", "the sea", "bread", "rain", "music", "trains", "chess", "tea", "maps", "bees"]


def drive(url: str, users: int, requests: int, max_tokens: int) -> dict:
    """`requests` chat turns spread over `users` concurrent users; throughput and latency."""
    latencies: list[float] = []

    def user(index: int) -> int:
        tokens = 0
        with httpx.Client(base_url=url, timeout=600) as client:
            headers = {"Authorization": f"Bearer bench-batching-{index}"}
            for turn in range(index, requests, users):
                topic = TOPICS[turn % len(TOPICS)]
                started = time.perf_counter()
                reply = client.post(
                    "/v1/chat/completions",
                    headers=headers,
                    json={
                        "messages": [{"role": "user", "content": f"Tell me about {topic}."}],
                        "max_tokens": max_tokens,
                        "temperature": 0,
                    },
                )
                reply.raise_for_status()
                latencies.append(time.perf_counter() - started)
                tokens += reply.json()["usage"]["completion_tokens"]
        return tokens

    started = time.perf_counter()
    with ThreadPoolExecutor(users) as pool:
        tokens = sum(pool.map(user, range(users)))
    seconds = time.perf_counter() - started
    return {
        "replies_per_second": round(requests / seconds, 3),
        "tokens_per_second": round(tokens / seconds, 1),
        "latency_median_s": round(statistics.median(latencies), 2),
        "latency_max_s": round(max(latencies), 2),
        "seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--out", default=str(RESULTS / "serve_batching.json"))
    args = parser.parse_args()
    runs = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, batch in (("batched", 16), ("one_at_a_time", 1)):
            server = ServerProcess(
                db=str(Path(folder) / f"{name}.db"),
                model=args.model,
                max_batch_size=batch,
                rate_limit_per_minute=100_000,
                rate_limit_burst=10_000,
            ).start()
            try:
                drive(server.url, 1, 1, args.max_tokens)  # warm up
                runs[name] = {"max_batch_size": batch} | drive(
                    server.url, args.users, args.requests, args.max_tokens
                )
            finally:
                server.stop()
            print(name, runs[name], flush=True)
    result = {
        "model": args.model,
        "users": args.users,
        "requests": args.requests,
        "max_tokens": args.max_tokens,
        "runs": runs,
        "speedup": round(
            runs["batched"]["replies_per_second"] / runs["one_at_a_time"]["replies_per_second"],
            2,
        ),
        "device": device_name(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
