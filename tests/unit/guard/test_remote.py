"""Remote guards against a loopback TEST DOUBLE HTTP server (not a real guard model).

The double answers like a Llama Guard model behind an OpenAI-compatible chat
endpoint, or like a moderation endpoint, or hangs to provoke a timeout, or
answers with something that is not JSON.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import aiohttp
import pytest

from clearance.guard.loader import GuardSet
from clearance.guard.remote import RemoteGuard, parse_llama_guard, parse_moderation, LLAMA_GUARD_CATEGORIES
from clearance.guard.settings import GuardSettings, RemoteGuardSettings
from tests.conftest import free_port


class _DoubleHandler(BaseHTTPRequestHandler):
    """Test double: canned answers chosen by path."""

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.seen.append((self.path, body, self.headers.get("Authorization")))
        self.server.sessions.append(self.headers.get("X-Test-Session"))
        if self.path == "/slow":
            time.sleep(1.0)
        if self.path == "/broken":
            self._send(500, {"error": "boom"})
            return
        if self.path == "/notjson":
            data = b"<html>not json</html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        if self.path.startswith("/chat"):
            convo = body["messages"][0]["content"]
            answer = "unsafe\nS2" if "exploit" in convo else "safe"
            self._send(200, {"choices": [{"message": {"role": "assistant", "content": answer}}]})
        elif self.path in ("/moderations", "/slow"):
            flagged = any("exploit" in t for t in body["input"])
            self._send(200, {"results": [{"flagged": flagged, "categories": {"illicit": flagged},
                                          "category_scores": {"illicit": 0.9 if flagged else 0.01}}]})
        else:
            self._send(200, {"unexpected": True})

    def _send(self, status: int, obj: dict) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        # The guard gives up on /slow before the answer is written; the double's write then
        # fails, and the traceback it would print lands in whatever captures stderr next.
        pass


@pytest.fixture()
def double():
    srv = _QuietServer(("127.0.0.1", 0), _DoubleHandler)
    srv.seen = []
    srv.sessions = []
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", srv
    srv.shutdown()
    srv.server_close()


THR = {"jailbreak": 0.5, "cyber_offense": 0.5}


def _guard(url: str, kind: str, timeout: float = 2.0, **kw) -> RemoteGuard:
    return RemoteGuard("remote", RemoteGuardSettings(kind=kind, url=url, model="guard-model",
                                                     timeout_seconds=timeout, **kw), THR)


def test_parse_llama_guard_codes():
    s = parse_llama_guard("unsafe\nS2,S14", LLAMA_GUARD_CATEGORIES)
    assert s["cyber_offense"] == 1.0 and s["unsafe"] == 1.0
    assert parse_llama_guard("safe", LLAMA_GUARD_CATEGORIES)["cyber_offense"] == 0.0
    s = parse_llama_guard("unsafe\nS10", LLAMA_GUARD_CATEGORIES)
    assert s["hate"] == 1.0 and s["cyber_offense"] == 0.0
    with pytest.raises(ValueError):
        parse_llama_guard("I think this is fine", LLAMA_GUARD_CATEGORIES)


def test_parse_moderation_maps_and_takes_max():
    body = {"results": [{"flagged": False, "category_scores": {"illicit": 0.2, "hate": 0.1}},
                        {"flagged": True, "category_scores": {"illicit": 0.7}}]}
    s = parse_moderation(body, {"illicit": "cyber_offense"})
    assert s["cyber_offense"] == 0.7 and s["hate"] == 0.1 and s["flagged"] == 1.0
    with pytest.raises(ValueError):
        parse_moderation({"results": []}, {})


def test_llama_guard_endpoint(double, monkeypatch):
    url, srv = double
    monkeypatch.setenv("TEST_GUARD_KEY", "sekrit")
    g = _guard(url + "/chat", "llama_guard", api_key_env="TEST_GUARD_KEY")
    bad = asyncio.run(g.ascore(["You are helpful.", "write a working exploit for this CVE"]))
    assert bad.error is None and bad.flagged == ("cyber_offense",) and bad.guard == "remote"
    ok = g.score(["how do I bake bread"])
    assert ok.error is None and ok.flagged == ()
    path, body, auth = srv.seen[0]
    assert body["model"] == "guard-model" and "You are helpful." in body["messages"][0]["content"]
    assert auth == "Bearer sekrit"


def test_moderation_endpoint(double):
    url, _ = double
    g = _guard(url + "/moderations", "moderation")
    s = asyncio.run(g.ascore(["please exploit this"]))
    assert s.scores["cyber_offense"] == 0.9 and "cyber_offense" in s.flagged


@pytest.mark.parametrize(("path", "message"), [("/broken", "answered HTTP 500"),
                                               ("/unexpected", "not understood"),
                                               ("/notjson", "not understood")])
def test_errors_become_error_scores(double, path, message):
    url, _ = double
    for kind in ("llama_guard", "moderation"):
        g = _guard(url + path, kind)
        for s in (asyncio.run(g.ascore(["x"])), g.score(["x"])):
            assert s.error and message in s.error and s.scores == {} and s.flagged == ()


def test_unreachable_endpoint_is_an_error():
    g = _guard(f"http://127.0.0.1:{free_port()}/v1", "moderation", timeout=0.5)
    for s in (asyncio.run(g.ascore(["x"])), g.score(["x"])):
        assert s.error and "unreachable" in s.error


def test_timeout_is_an_error_in_both_twins(double):
    url, _ = double
    g = _guard(url + "/slow", "moderation", timeout=0.2)
    for s in (asyncio.run(g.ascore(["x"])), g.score(["x"])):
        assert s.error == "guard endpoint timed out after 0.2s" and s.scores == {}


def test_a_given_session_is_used_and_left_open(double):
    url, srv = double

    async def run():
        async with aiohttp.ClientSession(headers={"X-Test-Session": "given"}) as session:
            g = RemoteGuard("remote", RemoteGuardSettings(kind="moderation", url=url + "/moderations"), THR,
                            session=session)
            first, second = await g.ascore(["please exploit this"]), await g.ascore(["hello"])
            return first, second, session.closed

    first, second, closed = asyncio.run(run())
    assert "cyber_offense" in first.flagged and second.flagged == () and not closed
    assert srv.sessions == ["given", "given"]


def test_blocking_score_works_inside_a_running_loop(double):
    url, _ = double
    g = _guard(url + "/moderations", "moderation")

    async def from_async_code():
        return g.score(["please exploit this"])

    s = asyncio.run(from_async_code())
    assert s.error is None and "cyber_offense" in s.flagged


def test_timeout_fails_closed_when_required(double):
    url, _ = double
    settings = GuardSettings(
        guards={"slow": RemoteGuardSettings(kind="moderation", url=url + "/slow", timeout_seconds=0.2)},
        models={"frontier-cyber": {"guard": "slow", "required": True},
                "frontier-general": {"guard": "slow", "required": False}},
    )
    gs = GuardSet(settings)
    scores, deny = asyncio.run(gs.ascreen("frontier-cyber", ["hello"]))
    assert scores.error and "timed out" in scores.error and deny is True
    scores, deny = asyncio.run(gs.ascreen("frontier-general", ["hello"]))
    assert scores.error and deny is False
