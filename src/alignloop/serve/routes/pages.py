"""The web UI: plain HTML, CSS and JavaScript from the package (no build step, no CDN).

Each page is the shared layout (head, navigation, error box) around its own body fragment,
composed once at import.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from string import Template

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from alignloop.store.vocab import DISLIKE_REASONS

HERE = Path(__file__).resolve().parents[1]
STATIC = HERE / "static"
TEMPLATES = HERE / "templates"


@dataclass(frozen=True)
class Page:
    title: str
    body: str  # fragment in templates/
    script: str  # module in static/
    mode: str | None = None  # data-mode on <body>


PAGES = {
    "/": Page("Chat", "chat.html", "chat.js"),
    "/redteam": Page("Red team", "chat.html", "chat.js", mode="redteam"),
    "/compare": Page("Compare", "compare.html", "compare.js"),
    "/privacy": Page("Privacy", "privacy.html", "privacy.js"),
    "/admin": Page("Admin", "admin.html", "admin.js"),
}

router = APIRouter(tags=["pages"])


def render(page: Page) -> str:
    layout = Template((TEMPLATES / "layout.html").read_text(encoding="utf-8"))
    return layout.substitute(
        title=page.title,
        script=page.script,
        body=(TEMPLATES / page.body).read_text(encoding="utf-8"),
        body_attrs=f' data-mode="{page.mode}"' if page.mode else "",
    )


def _route(html: str):
    async def page() -> HTMLResponse:
        return HTMLResponse(html, headers={"Cache-Control": "no-cache"})

    return page


for path, spec in PAGES.items():
    router.add_api_route(
        path, _route(render(spec)), methods=["GET", "HEAD"], include_in_schema=False
    )


@router.get("/api/ui")
async def ui_config(request: Request):
    """What the pages need to know: the dislike reasons, the compare limit, the model."""
    services = request.app.state.services
    return {
        "dislike_reasons": [{"slug": s, "label": label} for s, label in DISLIKE_REASONS.items()],
        "max_compare_k": services.settings.max_compare_k,
        "model": services.backend.model_name if services.backend else None,
        "admin": services.settings.admin_token is not None,
    }
