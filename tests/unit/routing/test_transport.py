"""The shared upstream session: what it carries from one call to the next."""

from __future__ import annotations

import asyncio

from aiohttp import web

from clearance.routing.backends.transport import make_session


def test_cookies_an_upstream_sets_are_not_sent_on_later_calls() -> None:
    """One session serves every user's calls; a cookie set in answer to one
    caller must not travel with another caller's request.  (A host name, not
    an IP address: aiohttp's default jar ignores cookies from IP hosts.)"""
    seen: list[str | None] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Cookie"))
        resp = web.json_response({"ok": True})
        resp.set_cookie("session", "user-a-secret", path="/")
        return resp

    async def run() -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            async with make_session() as session:
                for _ in range(2):
                    async with session.post(f"http://localhost:{port}/v1/chat/completions", json={}) as r:
                        assert r.status == 200
                        assert r.cookies.get("session") is not None  # the upstream did set it
                        await r.read()
        finally:
            await runner.cleanup()

    asyncio.run(run())
    assert seen == [None, None]
