"""Hostile clients and hostile upstreams against the real server on a loopback port.

Each test is the regression test of one defect found by probing the gateway as an
outsider: deep JSON, oversized or endless headers, half-sent requests, client-chosen
request ids, redirects built from the Host header, an open /metrics, upstream
redirects, endless streams and upstream details leaking to clients, and refused
requests missing from the audit log.  Timeouts are configured short and the tests
assert that the connection was closed, never how long it took.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from clearance.demo.run import start_in_thread
from tests.conftest import free_port
from tests.integration.gateway import add_persona, run_cli, start_gateway, start_upstream, write_config

SECRET_DETAIL = "internal-detail-7f3a"


def _hostile_upstream(target: str) -> Starlette:
    """An upstream that redirects, fails with a revealing body, or keeps a stream alive forever."""

    async def redirect(request: Request) -> Response:
        return Response(status_code=307, headers={"location": target + "/v1/chat/completions"})

    async def revealing(request: Request) -> Response:
        return Response(json.dumps({"error": {"message": SECRET_DETAIL}}), 500, media_type="application/json")

    async def endless(request: Request) -> Response:
        async def events():
            first = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "m",
                     "choices": [{"index": 0, "delta": {"role": "assistant", "content": "hello"}}]}
            yield f"data: {json.dumps(first)}\n\n".encode()
            while True:
                await asyncio.sleep(0.2)
                yield b": keep-alive\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[Route("/redirect/v1/chat/completions", redirect, methods=["POST"]),
                             Route("/revealing/v1/chat/completions", revealing, methods=["POST"]),
                             Route("/endless/v1/chat/completions", endless, methods=["POST"])])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    good = start_upstream("good-sim")
    hostile_port = free_port()
    hostile = start_in_thread(_hostile_upstream(good.url), hostile_port)
    base = f"http://127.0.0.1:{hostile_port}"
    backends = [
        {"name": "good", "base_url": good.url + "/v1"},
        {"name": "redirecting", "base_url": base + "/redirect/v1", "breaker_failures": 1000},
        {"name": "secret-backend-name", "base_url": base + "/revealing/v1", "breaker_failures": 1000},
        {"name": "endless", "base_url": base + "/endless/v1", "timeout_seconds": 5, "max_stream_seconds": 1.5,
         "breaker_failures": 1000},
    ]
    models = [{"name": "chat", "backends": ["good"]}, {"name": "redirected", "backends": ["redirecting"]},
              {"name": "revealing", "backends": ["secret-backend-name"]},
              {"name": "endless", "backends": ["endless"]}]
    (tmp / "allow.cedar").write_text('@id("allow-all")\npermit (principal, action, resource);\n')
    config = write_config(tmp, f"sqlite:///{tmp / 'clearance.db'}", backends, models, policy={"files": ["allow.cedar"]},
                          server={"header_timeout_seconds": 1, "body_timeout_seconds": 1,
                                  "keep_alive_timeout_seconds": 1, "max_header_bytes": 8192,
                                  "max_header_count": 40, "max_json_depth": 32,
                                  "metrics_token_env": "TEST_METRICS_TOKEN"},
                          audit={"refused_per_source_per_minute": 3})
    key = add_persona(config, "alice", "acme")
    gw = start_gateway(config, env={"TEST_METRICS_TOKEN": "metrics-secret-1"})
    yield {"gw": gw, "key": key, "config": config, "good": good, "tmp": tmp}
    gw.stop()
    good.stop()
    hostile.should_exit = True


def _audit_entries(world) -> list[dict]:
    import sqlite3

    with sqlite3.connect(world["tmp"] / "clearance.db") as conn:
        return [json.loads(b) for (b,) in conn.execute("SELECT body FROM audit_entries ORDER BY idx")]


def _wait_for(world, pred, n: int = 1) -> list[dict]:
    deadline = time.monotonic() + 10
    while True:
        got = [e for e in _audit_entries(world) if pred(e)]
        if len(got) >= n or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def _connect(world) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", world["gw"].port))
    s.settimeout(15)  # a safety net for the test, far above the configured timeouts
    return s


def _read_until_closed(s: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (raises on the safety timeout)."""
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def _chat(world, body: bytes, headers: dict | None = None) -> httpx.Response:
    return httpx.post(world["gw"].url + "/v1/chat/completions", content=body, timeout=30,
                      headers={"authorization": f"Bearer {world['key']}", "content-type": "application/json",
                               **(headers or {})})


# --- clients -------------------------------------------------------------------


@pytest.mark.parametrize("where", ["name", "tools", "response_format"])
def test_deeply_nested_json_is_a_400_at_parse_time(world, where):
    deep = "[" * 300 + "]" * 300
    msg = {"role": "user", "content": "hi"}
    body = {"model": "chat", "messages": [msg]}
    raw = json.dumps(body)
    if where == "name":
        raw = raw.replace('"role": "user"', f'"role": "user", "name": {deep}')
    else:
        raw = raw[:-1] + f', "{where}": {deep}}}'
    r = _chat(world, raw.encode())
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "json_too_deep" and err["request_id"] == r.headers["x-request-id"]
    # Nesting within the limit is fine.
    ok = _chat(world, json.dumps({**body, "metadata": {"a": {"b": {"c": [[["x"]]]}}}}).encode())
    assert ok.status_code != 400 or "nests" not in ok.text


def test_oversized_header_is_a_431_and_closes_the_connection(world):
    with _connect(world) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
        data = _read_until_closed(s)
    assert data.startswith(b"HTTP/1.1 431")
    assert b"x-request-id: req_" in data and b"request_header_fields_too_large" in data


def test_endless_header_is_refused_before_it_is_read_in_full(world):
    sent = 0
    with _connect(world) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        try:
            for _ in range(2000):  # up to 64 MB, never finishing the header
                s.sendall(b"b" * 32768)
                sent += 32768
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = _read_until_closed(s)
    assert sent < 2000 * 32768, "the server read a 64 MB header"
    assert data == b"" or data.startswith(b"HTTP/1.1 431")


def test_too_many_headers_is_a_431(world):
    with _connect(world) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(60)) + b"\r\n")
        data = _read_until_closed(s)
    assert data.startswith(b"HTTP/1.1 431")


@pytest.mark.parametrize("sent", [b"", b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-",
                                  b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"mo"],
                         ids=["nothing", "partial-headers", "partial-body"])
def test_half_sent_requests_are_closed(world, sent):
    with _connect(world) as s:
        s.sendall(sent)
        data = _read_until_closed(s)  # returns only once the server closes the connection
    assert data == b"" or data.startswith(b"HTTP/1.1 408") or data.startswith(b"HTTP/1.1 400")


def test_idle_keep_alive_connection_is_closed(world):
    with _connect(world) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        data = _read_until_closed(s)
    assert data.startswith(b"HTTP/1.1 200") and b'"status":"ok"' in data


def test_the_gateway_makes_its_own_request_id(world):
    entries = []
    for _ in range(2):
        r = _chat(world, json.dumps({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}).encode(),
                  {"x-request-id": "chosen-by-client"})
        assert r.status_code == 200
        assert r.headers["x-request-id"] != "chosen-by-client" and r.headers["x-request-id"].startswith("req_")
        assert r.headers["x-client-request-id"] == "chosen-by-client"
        entries.append(r.headers["x-request-id"])
    assert entries[0] != entries[1]
    got = _wait_for(world, lambda e: e["request_id"] in entries and e["kind"] == "decision", 2)
    assert {e["request_id"] for e in got} == set(entries)
    assert all(e["client_request_id"] == "chosen-by-client" for e in got)
    # A malformed client id is not kept (nor echoed).
    r = _chat(world, json.dumps({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}).encode(),
              {"x-request-id": "bad id with spaces"})
    assert "x-client-request-id" not in r.headers


def test_every_response_has_a_request_id_and_no_redirect_uses_the_host_header(world):
    with _connect(world) as s:
        s.sendall(b"POST /v1/chat/completions/ HTTP/1.1\r\nHost: evil.example.com\r\nContent-Length: 2\r\n"
                  b"Connection: close\r\n\r\n{}")
        data = _read_until_closed(s)
    head = data.split(b"\r\n\r\n")[0].lower()
    assert data.startswith(b"HTTP/1.1 404") and b"evil.example.com" not in head and b"location" not in head
    assert b"x-request-id: req_" in head
    for method, path, status in [("GET", "/v1/chat/completions", 405), ("GET", "/nope", 404),
                                 ("POST", "/v1/models", 405)]:
        r = httpx.request(method, world["gw"].url + path)
        assert r.status_code == status
        assert r.headers["x-request-id"].startswith("req_")
        assert r.json()["error"]["request_id"] == r.headers["x-request-id"]


def test_metrics_needs_its_bearer_token(world):
    url = world["gw"].url + "/metrics"
    r = httpx.get(url)
    assert r.status_code == 401 and "clearance" not in r.text.replace("request_id", "")
    assert httpx.get(url, headers={"authorization": "Bearer wrong"}).status_code == 401
    ok = httpx.get(url, headers={"authorization": "Bearer metrics-secret-1"})
    assert ok.status_code == 200 and "clearance_" in ok.text


# --- upstreams -----------------------------------------------------------------


def test_upstream_redirect_is_not_followed(world):
    before = world["good"].calls()
    r = _chat(world, json.dumps({"model": "redirected", "messages": [{"role": "user", "content": "secret"}]}).encode())
    assert r.status_code == 502
    assert world["good"].calls() == before, "the prompt was re-posted where the redirect pointed"
    assert "redirecting" not in r.text


def test_upstream_errors_reach_clients_as_a_generic_message(world):
    r = _chat(world, json.dumps({"model": "revealing", "messages": [{"role": "user", "content": "hi"}]}).encode())
    assert r.status_code == 502
    rid = r.headers["x-request-id"]
    assert SECRET_DETAIL not in r.text and "secret-backend-name" not in r.text and rid in r.json()["error"]["message"]
    # The detail is in the audit entry and the log.
    got = _wait_for(world, lambda e: e["request_id"] == rid and e["status"] == 502)
    assert got and SECRET_DETAIL in got[0]["error"]
    assert SECRET_DETAIL in world["gw"].log()


def test_an_endless_stream_is_cut_at_max_stream_seconds(world):
    out: dict = {}

    def consume():
        with httpx.stream("POST", world["gw"].url + "/v1/chat/completions", timeout=30,
                          headers={"authorization": f"Bearer {world['key']}"},
                          json={"model": "endless", "stream": True,
                                "messages": [{"role": "user", "content": "hi"}]}) as r:
            out["text"] = "".join(r.iter_text())

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    t.join(30)  # a safety net: without the deadline the stream never ends
    assert not t.is_alive(), "the stream was still open"
    assert '"code": "stream_interrupted"' in out["text"] or '"code":"stream_interrupted"' in out["text"]
    assert "endless" not in out["text"].replace('"model":"endless"', "")


# --- refused requests in the audit log -----------------------------------------


def _from(source: str) -> httpx.Client:
    """A client whose connections come from ``source`` (another loopback address: its own refusal budget)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=30)


def test_refused_requests_are_audited(world):
    chat = json.dumps({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}).encode()
    url, auth = world["gw"].url + "/v1/chat/completions", {"authorization": f"Bearer {world['key']}"}
    with _from("127.0.0.3") as c:
        unknown_key = c.post(url, content=chat, headers={"authorization": "Bearer clr_knotakey_xyz",
                                                         "x-request-id": "refused-401"})
        assert unknown_key.status_code == 401
        unknown_model = c.post(url, json={"model": "no-such", "messages": [{"role": "user", "content": "hi"}]},
                               headers={**auth, "x-request-id": "refused-404"})
        assert unknown_model.status_code == 404
        bad = c.post(url, content=b"{not json", headers={**auth, "x-request-id": "refused-400"})
        assert bad.status_code == 400
    got = {e["client_request_id"]: e for e in _wait_for(
        world, lambda e: e["kind"] == "refused" and e["client_request_id"].startswith("refused-"), 3)}
    assert got["refused-401"]["status"] == 401 and got["refused-401"]["principal"] == ""
    assert got["refused-401"]["reasons"] == ["invalid_api_key"] and got["refused-401"]["source"] == "127.0.0.3"
    assert got["refused-404"]["principal"] == "alice" and got["refused-404"]["model"] == "no-such"
    assert got["refused-400"]["status"] == 400 and got["refused-400"]["principal"] == "alice"
    assert got["refused-401"]["request_id"] == unknown_key.headers["x-request-id"]
    assert run_cli(world["config"], "audit", "verify").returncode == 0


def test_a_flood_of_refusals_is_bounded_per_source(world):
    with _from("127.0.0.2") as c:
        for i in range(12):
            r = c.post(world["gw"].url + "/v1/chat/completions", json={"model": "chat", "messages": [{"role": "user", "content": "x"}]},
                       headers={"authorization": "Bearer flood", "x-request-id": f"flood-{i}"})
            assert r.status_code == 401
    time.sleep(0.5)
    individual = [e for e in _audit_entries(world) if e["client_request_id"].startswith("flood-")]
    # At most 3 per minute (the flood may straddle a minute boundary), never all twelve.
    assert 0 < len(individual) <= 6
