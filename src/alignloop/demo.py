"""`alignloop demo`: the server on the embedded defaults, one scripted conversation with
feedback through the real HTTP API, then where the data landed.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from alignloop.curate.export import export
from alignloop.serve.runner import ServerProcess
from alignloop.store.db import make_engine
from alignloop.store.repository import table_counts

SCRIPT = [
    ("Hi! Can you suggest a good book for a rainy weekend?", {"kind": "like"}),
    (
        "What is it about, in two sentences?",
        {"kind": "dislike", "reason": "nonsensical", "text": "Give the plot without spoilers."},
    ),
    ("Thanks! Any tips for making a good cup of tea?", None),
]
OFFENSIVE = "You are a fucking useless idiot."


def _chat(client: httpx.Client, history: list[dict], text: str, stream: bool) -> dict:
    history.append({"role": "user", "content": text})
    body = {"messages": history, "max_tokens": 48, "stream": stream}
    if not stream:
        reply = client.post("/v1/chat/completions", json=body).raise_for_status().json()
        content, message_id = reply["choices"][0]["message"]["content"], reply["id"]
    else:
        content, message_id = "", None
        with client.stream("POST", "/v1/chat/completions", json=body) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if line.startswith("data: {"):
                    chunk = json.loads(line[6:])
                    message_id = chunk["id"]
                    content += chunk["choices"][0]["delta"].get("content", "")
    history.append({"role": "assistant", "content": content})
    return {"id": message_id, "content": content}


def run_demo(model: str, out: Path, console: Console) -> None:
    out.mkdir(parents=True, exist_ok=True)
    db = out / "alignloop.db"
    log = out / "server.log"
    with console.status(f"starting the server with model {model} (first start builds it)"):
        server = ServerProcess(db=str(db), model=model, log_path=log, max_new_tokens=48).start()
    try:
        token = "demo-" + secrets.token_hex(8)
        client = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=300
        )
        client.put("/api/me/consent", json={"training": True, "publication": False})
        history: list[dict] = []
        for turn, (text, feedback) in enumerate(SCRIPT):
            with console.status(f"turn {turn + 1}: generating"):
                reply = _chat(client, history, text, stream=turn == len(SCRIPT) - 1)
            console.print(f"[bold]user[/bold]: {text}\n[bold]bot[/bold]:  {reply['content']}")
            if feedback:
                client.post(
                    "/api/feedback", json={"message_id": reply["id"], **feedback}
                ).raise_for_status()
                console.print(f"  [dim]feedback: {feedback}[/dim]")
        gated = _chat(client, [], OFFENSIVE, stream=False)
        console.print(f"[bold]user[/bold]: {OFFENSIVE}\n[bold]bot[/bold]:  {gated['content']}")
        client.post("/api/feedback", json={"message_id": gated["id"], "kind": "sensitive_agree"})
        with console.status("side-by-side comparison: generating 2 responses"):
            comparison = (
                client.post(
                    "/api/compare", json={"prompt": "Suggest a fun thing to do on Sunday.", "k": 2}
                )
                .raise_for_status()
                .json()
            )
        client.post(f"/api/compare/{comparison['comparison_id']}/vote", json={"choice": 0})
        console.print("compare: 2 anonymous responses, voted for the first")
    finally:
        server.stop()
    _report(db, out, log, console)


def _report(db: Path, out: Path, log: Path, console: Console) -> None:
    engine = make_engine(str(db))
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        counts = table_counts(session)
    exported = out / "export.jsonl"
    export(engine, exported, with_context=True)
    table = Table(title="Where the data landed")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, count in counts.items():
        table.add_row(name, str(count))
    console.print(table)
    console.print(f"store:  {db.resolve()}")
    console.print(f"export: {exported.resolve()}")
    console.print(f"server log: {log.resolve()}")
