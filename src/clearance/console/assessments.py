"""The assessments page: the stored ``clearance assess`` reports, each opening its HTML report.

Reports are the JSON files in ``console.assessments_dir`` (relative to the
state dir; ``clearance assess --out`` writes them).  A report's HTML is
rendered from its JSON by ``assess/html.render_html`` and served on its own
locked-down policy: no script at all, styles inline only, sandboxed.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from clearance.console.web import Ctx, error_page, page, render

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.json$")
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox; frame-ancestors 'self'"


def reports_dir(c: Ctx) -> Path:
    config = c.console.config
    p = Path(c.console.settings.assessments_dir)
    return p if p.is_absolute() else config.state_dir / p


def _summary(path: Path) -> dict | None:
    try:
        r = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(r, dict) or "metrics" not in r:
        return None
    cjs = r.get("cjs") or {}
    return {"name": path.name, "created_at": r.get("created_at", ""), "model": (r.get("target") or {}).get("model", ""),
            "suite": (r.get("suite") or {}).get("name", ""), "verdict": r.get("verdict", ""),
            "risk_level": r.get("risk_level", ""), "complete": r.get("complete", False),
            "band": (cjs.get("overall") or {}).get("band", "") if isinstance(cjs.get("overall"), dict) else "",
            "requests": len(r.get("results") or [])}


def list_reports(folder: Path) -> list[dict]:
    if not folder.is_dir():
        return []
    found = [s for p in folder.glob("*.json") if _NAME.match(p.name) and (s := _summary(p))]
    return sorted(found, key=lambda s: s["created_at"], reverse=True)


async def assessments(request: Request, c: Ctx) -> Response:
    if not c.can("policy.read"):
        return error_page(request, 403, f"administrator {c.actor.name!r} ({c.actor.role}) may not read assessments", c)
    folder = reports_dir(c)
    reports = await asyncio.to_thread(list_reports, folder)
    return render(request, "assessments.html", c=c, page="assessments", reports=reports, folder=str(folder))


async def report(request: Request, c: Ctx) -> Response:
    from clearance.assess.html import render_html

    if not c.can("policy.read"):
        return error_page(request, 403, f"administrator {c.actor.name!r} ({c.actor.role}) may not read assessments", c)
    name = request.path_params["name"]
    path = reports_dir(c) / name
    if not _NAME.match(name) or not path.is_file():
        return error_page(request, 404, f"no stored assessment report {name!r}", c)
    try:
        data = json.loads(await asyncio.to_thread(path.read_text, encoding="utf-8"))
        html = render_html(data)
    except (OSError, ValueError, KeyError, TypeError) as e:
        return error_page(request, 422, f"{name} is not a readable assessment report ({type(e).__name__})", c)
    return HTMLResponse(html, headers={"content-security-policy": REPORT_CSP, "x-content-type-options": "nosniff",
                                       "referrer-policy": "no-referrer", "cache-control": "no-store"})


def routes() -> list[Route]:
    return [Route("/assessments", page(assessments), methods=["GET"]),
            Route("/assessments/{name}", page(report), methods=["GET"])]
