"""The console is off unless ``console.enabled``; when on, its pages carry the strict CSP and its errors are HTML."""

from __future__ import annotations

from starlette.testclient import TestClient

from clearance.app import create_app
from clearance.config import Config


def _app(tmp_path, enabled: bool):
    config = Config(state_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'c.db'}",
                    guard={"enabled": False}, audit={"enabled": False}, console={"enabled": enabled})
    return create_app(config)


def test_the_console_is_off_by_default(tmp_path):
    assert Config().console.enabled is False
    client = TestClient(_app(tmp_path, False))
    assert client.get("/console/login").status_code == 404


def test_the_console_pages_have_a_strict_csp(tmp_path):
    client = TestClient(_app(tmp_path, True))
    r = client.get("/console/login")
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert client.get("/console/overview", follow_redirects=False).headers["location"] == "/console/login"
    r = client.get("/console/static/htmx.min.js")
    assert r.status_code == 200 and "javascript" in r.headers["content-type"]
    r = client.get("/console/no-such-page")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
