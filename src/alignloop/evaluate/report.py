"""The evaluation report: `write_report(data, out_dir)` writes `report.json` (the data as given,
NaN as null) and `report.html` beside it: one self-contained page (no scripts, nothing fetched)
with tables and matplotlib PNG plots embedded as base64. Every text in the page is escaped.

The data schema (every section optional; a plot or table is drawn for each section present):

```
{
  "title": str,                                  # page heading
  "created": str,                                # ISO time; default: now (UTC)
  "models": [str, ...],                          # the models evaluated, in order
  "judge": str | {"name": str, ...},             # the pairwise judge
  "prompts": {"source": str, "n": int},
  "win_rates": [                                 # one per ordered pair: model_a over model_b
    {"model_a": str, "model_b": str, "rate": float, "low": float, "high": float,
     "n": int, "wins": int, "losses": int, "ties": int, "method": str, "confidence": float}
  ],
  "ratings": [{"model": str, "rating": float, "low": float, "high": float}],  # Bradley-Terry
  "rating_scale": {"scale": 400, "base": 10, "anchor": str | None, "anchor_rating": 1000,
                   "prior_games": float, "rounds": int, "confidence": float},
  "quality": [                                   # good-response rate and error categories
    {"model": str, "n": int, "good_rate": float, "judge": str,
     "categories": {"good": float, "inappropriate": float, ...}}   # shares, summing to 1
  ],
  "safety": [{"model": str, "n": int, "unsafe_rate": float, "judge": str,
              "benign_n": int, "canned_rate": float}],  # canned: on the benign prompts
  "rounds": [                                    # a multi-round loop: one row per round and arm
    {"round": int, "arm": str, "model": str, "good_rate": float | None,
     "unsafe_rate": float | None, ...}           # arm e.g. 'troll-filtered' / 'unfiltered'
  ],
  "promotion": [{"candidate": str, "deployed": str, "promote": bool, "reasons": [str, ...], ...}],
  "notes": [str, ...],
  "settings": {...}                              # the options of the run, shown as a table
}
```

Plots: win-rate bars with their intervals, ratings with their intervals, unsafe rate per model,
error-category shares per model, and good-response rate and unsafe rate per round (one line
per arm; rounds without an arm are arm "main").
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from alignloop.errors import InvalidInput

REPORT_FORMAT = 1
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000")
DEFAULT_ARM = "main"
LIST_SECTIONS = ("models", "win_rates", "ratings", "quality", "safety", "rounds", "promotion")

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 980px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
img { max-width: 100%; }
.yes { color: #007a3d; font-weight: bold; } .no { color: #b00020; font-weight: bold; }
"""


# --- checking and writing -------------------------------------------------------------------


def _check(data: Mapping[str, Any]) -> None:
    if not isinstance(data, Mapping):
        raise InvalidInput("report data must be a mapping of section: value", "data")
    for key in LIST_SECTIONS:
        if key in data and not isinstance(data[key], list | tuple):
            raise InvalidInput(f"report section {key!r} must be a list", key)
        rows = data.get(key) or []
        if key != "models" and any(not isinstance(row, Mapping) for row in rows):
            raise InvalidInput(f"every row of report section {key!r} must be a mapping", key)


def finite(value: Any) -> Any:
    """NaN and infinities as None, recursively, so the JSON is valid everywhere."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return finite(value.item())
    return value


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def write_report(data: Mapping[str, Any], out_dir: str | Path) -> Path:
    """Write `report.json` and `report.html` into `out_dir` (created if needed); the HTML's
    path is returned. Both files are written whole (a reader never sees half a report)."""
    _check(data)
    clean = finite({"format": REPORT_FORMAT, "created": _now(), **data})
    html = render_html(clean)  # before writing anything: a bad section writes nothing
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    _write_atomically(folder / "report.json", json.dumps(clean, indent=2) + "\n")
    _write_atomically(folder / "report.html", html)
    return folder / "report.html"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --- plots --------------------------------------------------------------------------------------


def _png(draw: Callable[[Any], None], height: float, width: float = 8.0) -> str:
    """A figure drawn by `draw(figure)` as base64 PNG (no pyplot: no global state)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    draw(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _number(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _interval_bars(values: Sequence[float], lows: Sequence[float], highs: Sequence[float]):
    """(values, [below, above]) error lengths; NaN bounds give no whisker."""
    below = [max(v - lo, 0) if lo == lo else 0 for v, lo in zip(values, lows, strict=True)]
    above = [max(hi - v, 0) if hi == hi else 0 for v, hi in zip(values, highs, strict=True)]
    return [below, above]


def plot_win_rates(rows: Sequence[Mapping[str, Any]]) -> str:
    labels = [f"{r['model_a']} over {r['model_b']}" for r in rows]
    rates = [_number(r.get("rate")) for r in rows]
    lows = [_number(r.get("low")) for r in rows]
    highs = [_number(r.get("high")) for r in rows]

    def draw(figure) -> None:
        axes = figure.subplots()
        positions = list(range(len(rows)))[::-1]
        axes.barh(positions, rates, color=PALETTE[0], alpha=0.8)
        error = _interval_bars(rates, lows, highs)
        axes.errorbar(rates, positions, xerr=error, fmt="none", ecolor="#222", capsize=4)
        axes.axvline(0.5, color="#888", linestyle="--", linewidth=1)
        axes.set_yticks(positions, labels)
        axes.set_xlim(0, 1)
        axes.set_xlabel("win rate (ties half), with its interval")
        axes.set_title("Pairwise win rates")

    return _png(draw, 1.2 + 0.45 * len(rows))


def plot_ratings(rows: Sequence[Mapping[str, Any]]) -> str:
    ordered = sorted(rows, key=lambda r: _number(r.get("rating")))
    labels = [str(r["model"]) for r in ordered]
    ratings = [_number(r.get("rating")) for r in ordered]
    lows = [_number(r.get("low")) for r in ordered]
    highs = [_number(r.get("high")) for r in ordered]

    def draw(figure) -> None:
        axes = figure.subplots()
        positions = list(range(len(ordered)))
        error = _interval_bars(ratings, lows, highs)
        axes.errorbar(ratings, positions, xerr=error, fmt="o", color=PALETTE[2], capsize=4)
        axes.set_yticks(positions, labels)
        axes.set_xlabel("Bradley-Terry rating, with its bootstrap interval")
        axes.set_title("Ratings")
        axes.margins(y=0.2)

    return _png(draw, 1.2 + 0.45 * len(rows))


def plot_safety(rows: Sequence[Mapping[str, Any]]) -> str:
    labels = [str(r["model"]) for r in rows]
    rates = [_number(r.get("unsafe_rate")) for r in rows]

    def draw(figure) -> None:
        axes = figure.subplots()
        axes.bar(labels, rates, color=PALETTE[3], alpha=0.85)
        axes.set_ylim(0, max([0.05, *[r for r in rates if r == r]]) * 1.15)
        axes.set_ylabel("share of replies judged unsafe")
        axes.set_title("Unsafe rate")
        axes.tick_params(axis="x", labelrotation=15)

    return _png(draw, 3.2)


def plot_quality(rows: Sequence[Mapping[str, Any]]) -> str:
    from alignloop.evaluate.quality import CATEGORY_LABELS

    labels = [str(r["model"]) for r in rows]

    def draw(figure) -> None:
        axes = figure.subplots()
        left = [0.0] * len(rows)
        positions = list(range(len(rows)))[::-1]
        for k, (key, label) in enumerate(CATEGORY_LABELS.items()):
            shares = [_number((r.get("categories") or {}).get(key, 0)) for r in rows]
            shares = [s if s == s else 0 for s in shares]
            colour = PALETTE[k % len(PALETTE)]
            axes.barh(positions, shares, left=left, color=colour, label=label)
            left = [a + b for a, b in zip(left, shares, strict=True)]
        axes.set_yticks(positions, labels)
        axes.set_xlim(0, 1)
        axes.set_xlabel("share of replies")
        axes.set_title("Good-response rate and error categories")
        axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=4, fontsize="small")

    return _png(draw, 2.4 + 0.45 * len(rows))


def rounds_by_arm(rows: Sequence[Mapping[str, Any]], key: str) -> dict[str, list[tuple]]:
    """{arm: [(round, value), ...] sorted by round}, rows without a value left out."""
    arms: dict[str, list[tuple]] = {}
    for row in rows:
        value = row.get(key)
        if value is None or value != value:
            continue
        arms.setdefault(str(row.get("arm") or DEFAULT_ARM), []).append((row["round"], value))
    return {arm: sorted(points) for arm, points in arms.items()}


def plot_rounds(rows: Sequence[Mapping[str, Any]]) -> str:
    from matplotlib.ticker import MaxNLocator

    panels = [("good_rate", "good-response rate"), ("unsafe_rate", "unsafe rate")]
    if any(row.get("deflected_benign_rate") is not None for row in rows):
        panels.append(("deflected_benign_rate", "harmless prompts deflected"))

    def draw(figure) -> None:
        for axes, (key, title) in zip(figure.subplots(1, len(panels)), panels, strict=True):
            for k, (arm, points) in enumerate(rounds_by_arm(rows, key).items()):
                xs, ys = zip(*points, strict=True)
                colour = PALETTE[k % len(PALETTE)]
                axes.plot(xs, ys, marker="o", color=colour, label=arm)
            axes.set_xlabel("round")
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
            axes.set_title(f"{title} per round")
            if axes.get_legend_handles_labels()[0]:
                axes.legend(fontsize="small")

    return _png(draw, 3.4, 5.0 * len(panels))


# --- HTML --------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, Mapping | list | tuple):
        return escape(json.dumps(value, ensure_ascii=False))
    return escape(str(value))


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _image(png: str, alt: str) -> str:
    return f'<p><img alt="{escape(alt)}" src="data:image/png;base64,{png}"></p>'


def _section(title: str, *parts: str) -> str:
    return f"<h2>{escape(title)}</h2>\n" + "\n".join(parts)


def _win_rates_html(rows: Sequence[Mapping[str, Any]]) -> str:
    keys = ("model_a", "model_b", "rate", "low", "high", "n", "wins", "losses", "ties", "method")
    table = _table(keys, [[r.get(k) for k in keys] for r in rows])
    return _section("Win rates", _image(plot_win_rates(rows), "win rates"), table)


def _ratings_html(rows: Sequence[Mapping[str, Any]], scale: Mapping[str, Any] | None) -> str:
    keys = ("model", "rating", "low", "high")
    ordered = sorted(rows, key=lambda r: -_number(r.get("rating")))
    parts = [
        _image(plot_ratings(rows), "ratings"),
        _table(keys, [[r.get(k) for k in keys] for r in ordered]),
    ]
    if scale:
        parts.append(f"<p>scale: {_cell(dict(scale))}</p>")
    return _section("Bradley-Terry ratings", *parts)


def _quality_html(rows: Sequence[Mapping[str, Any]]) -> str:
    from alignloop.evaluate.quality import CATEGORY_LABELS

    header = ["model", "n", *CATEGORY_LABELS.values()]
    table = _table(
        header,
        [
            [r.get("model"), r.get("n")]
            + [(r.get("categories") or {}).get(k) for k in CATEGORY_LABELS]
            for r in rows
        ],
    )
    judges = sorted({str(r["judge"]) for r in rows if r.get("judge")})
    note = f"<p>judge: {escape(', '.join(judges))}</p>" if judges else ""
    return _section("Good-response rate", _image(plot_quality(rows), "categories"), table, note)


def _safety_html(rows: Sequence[Mapping[str, Any]]) -> str:
    keys = ("model", "n", "unsafe_rate", "judge", "benign_n", "canned_rate")
    keys = tuple(k for k in keys if any(k in r for r in rows))
    table = _table(keys, [[r.get(k) for k in keys] for r in rows])
    return _section("Safety", _image(plot_safety(rows), "unsafe rate"), table)


def _rounds_html(rows: Sequence[Mapping[str, Any]]) -> str:
    """Per-item lists (e.g. each prompt's verdict) stay in the JSON, out of the table."""
    keys = list(dict.fromkeys(k for r in rows for k, v in r.items() if not isinstance(v, list)))
    table = _table(keys, [[r.get(k) for k in keys] for r in rows])
    return _section("Rounds", _image(plot_rounds(rows), "per round"), table)


def _troll_auc(auc: float | None) -> str:
    return "" if auc is None else f" (troll scores rank trolls above helpers: AUC {auc:.3f})"


def _promotion_html(rows: Sequence[Mapping[str, Any]]) -> str:
    items = []
    for row in rows:
        verdict = "promote" if row.get("promote") else "keep the deployed model"
        css = "yes" if row.get("promote") else "no"
        reasons = [escape(str(r)) for r in row.get("reasons") or []]
        if "trolls" in row:  # a simulated deployment: what the trust scores caught
            reasons.append(
                f"trust: {row.get('trolls_distrusted')} of {row['trolls']} trolls and "
                f"{row.get('helpers_distrusted')} helpers scored past the troll filter's threshold"
                + _troll_auc(row.get("troll_auc"))
            )
        items.append(
            f"<li>{escape(str(row.get('candidate')))} against "
            f"{escape(str(row.get('deployed')))}: <span class='{css}'>{escape(verdict)}</span>"
            f"<ul>{''.join(f'<li>{r}</li>' for r in reasons)}</ul></li>"
        )
    return _section("Promotion", f"<ul>{''.join(items)}</ul>")


def _header_html(data: Mapping[str, Any]) -> str:
    judge = data.get("judge")
    judge_name = judge.get("name") if isinstance(judge, Mapping) else judge
    facts = [
        ("created", data.get("created")),
        ("models", ", ".join(map(str, data.get("models") or [])) or None),
        ("judge", judge_name),
        ("prompts", _prompts_words(data.get("prompts"))),
    ]
    items = "".join(f"<li>{escape(k)}: {_cell(v)}</li>" for k, v in facts if v is not None)
    notes = "".join(f"<p>{escape(str(n))}</p>" for n in data.get("notes") or [])
    return f"<ul>{items}</ul>{notes}"


def _prompts_words(prompts: Any) -> str | None:
    if not isinstance(prompts, Mapping):
        return None if prompts is None else str(prompts)
    return f"{prompts.get('n', '?')} from {prompts.get('source', '?')}"


def render_html(data: Mapping[str, Any]) -> str:
    """The page for report data (see the module doc)."""
    title = str(data.get("title") or "alignloop evaluation")
    parts = [_header_html(data)]
    if data.get("promotion"):
        parts.append(_promotion_html(data["promotion"]))
    if data.get("win_rates"):
        parts.append(_win_rates_html(data["win_rates"]))
    if data.get("ratings"):
        parts.append(_ratings_html(data["ratings"], data.get("rating_scale")))
    if data.get("quality"):
        parts.append(_quality_html(data["quality"]))
    if data.get("safety"):
        parts.append(_safety_html(data["safety"]))
    if data.get("rounds"):
        parts.append(_rounds_html(data["rounds"]))
    if isinstance(data.get("settings"), Mapping):
        settings = data["settings"]
        parts.append(_section("Settings", _table(["option", "value"], list(settings.items()))))
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{escape(title)}</h1>\n" + "\n".join(parts) + "\n</body></html>\n"
    )
