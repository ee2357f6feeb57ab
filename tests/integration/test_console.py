"""The web console (`/console`) on a running `clearance demo`.

Without a browser (httpx): the security properties, each on the live server: the
Content-Security-Policy, the session cookie's flags, CSRF (a POST without the
session's token is 403), role enforcement on the server (an auditor cannot apply
a directive even with a valid form), and a console action recorded as a change
entry naming the administrator.

With a browser (Playwright for Python driving Debian's Chromium at
/usr/bin/chromium; skipped when it is absent, never downloaded): sign in; preview
then apply a suspension directive; watch intl-researcher's next request (the real
gateway, through the openai SDK) appear as denied in the live stream; approve an
access request; open an assessment report; run audit verification.  Screenshots
of each page go to $CLEARANCE_CONSOLE_SCREENSHOTS when set (docs/console/ is
made that way), else to the test's temporary folder.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import openai
import pytest
from sqlalchemy import create_engine, text

from tests.integration.gateway import run_cli, running_demo

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    with running_demo(tmp_path_factory.mktemp("console")) as d:
        d["token"] = (d["state"] / "demo-console-token").read_text().strip()
        yield d


def sign_in(demo, token: str | None = None) -> tuple[httpx.Client, str]:
    """A signed-in httpx client and the session's CSRF token."""
    c = httpx.Client(base_url=demo["url"], follow_redirects=False, timeout=60)
    page = c.get("/console/login")
    nonce = re.search(r'name="login_nonce" value="([^"]+)"', page.text).group(1)
    r = c.post("/console/login", data={"login_nonce": nonce, "token": token or demo["token"]})
    assert r.status_code == 303 and r.headers["location"] == "/console/overview", r.text
    r = c.get("/console/directives")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', r.text).group(1)
    return c, csrf


def change_entries(demo) -> list[dict]:
    engine = create_engine(f"sqlite:///{demo['state'] / 'clearance.db'}")
    with engine.connect() as conn:
        bodies = conn.execute(text("SELECT body FROM audit_entries ORDER BY idx")).scalars().all()
    engine.dispose()
    return [e for e in map(json.loads, bodies) if e.get("kind") == "change"]


# -- the demo prints the console ---------------------------------------------------------


def test_demo_prints_the_console_address_and_a_token(demo):
    log = (demo["state"] / "demo.log").read_text()
    assert f"Console:  {demo['url']}/console" in log
    assert demo["token"].startswith("clra_") and demo["token"] in log


# -- security properties, without a browser ------------------------------------------------


def test_pages_need_a_session(demo):
    r = httpx.get(demo["url"] + "/console/overview", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/console/login"
    assert httpx.post(demo["url"] + "/console/directives/apply", data={"id": "X"}).status_code == 401


def test_csp_is_strict_and_the_session_cookie_is_httponly_and_strict(demo):
    r = httpx.get(demo["url"] + "/console/login")
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "<script>" not in r.text and " style=" not in r.text and " on" + "click=" not in r.text
    c = httpx.Client(base_url=demo["url"], follow_redirects=False)
    nonce = re.search(r'name="login_nonce" value="([^"]+)"', c.get("/console/login").text).group(1)
    r = c.post("/console/login", data={"login_nonce": nonce, "token": demo["token"]})
    cookie = next(v for v in r.headers.get_list("set-cookie") if v.startswith("clearance_console="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    assert demo["token"] not in cookie
    r = c.get("/console/overview")
    assert r.status_code == 200 and "unsafe-inline" not in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY" and r.headers["cache-control"] == "no-store"


def test_a_wrong_token_does_not_sign_in(demo):
    c = httpx.Client(base_url=demo["url"], follow_redirects=False)
    nonce = re.search(r'name="login_nonce" value="([^"]+)"', c.get("/console/login").text).group(1)
    r = c.post("/console/login", data={"login_nonce": nonce, "token": "clra_a000000000000_wrong"})
    assert r.status_code == 401 and "invalid admin token" in r.text
    assert "clearance_console=" not in "".join(r.headers.get_list("set-cookie"))
    # And the sign-in form itself needs its double-submit token.
    r = httpx.post(demo["url"] + "/console/login", data={"token": demo["token"]})
    assert r.status_code == 403


def test_a_post_without_the_csrf_token_is_refused(demo):
    c, csrf = sign_in(demo)
    form = {"org": "eu-lab", "model": "frontier-cyber", "reason": "no token"}
    r = c.post("/console/approvals", data=form)
    assert r.status_code == 403 and "CSRF" in r.text
    r = c.post("/console/approvals", data={**form, "csrf_token": "not-the-token"})
    assert r.status_code == 403
    assert "approval.request" not in {e["decision"] for e in change_entries(demo) if "no token" in json.dumps(e)}
    # htmx sends it as a header.
    r = c.post("/console/directives/validate", data={"text": "permit (principal, action, resource);"},
               headers={"x-csrf-token": csrf, "hx-request": "true"})
    assert r.status_code == 200 and "Valid" in r.text


def test_validation_shows_line_and_column(demo):
    c, csrf = sign_in(demo)
    r = c.post("/console/directives/validate", headers={"x-csrf-token": csrf, "hx-request": "true"},
               data={"text": "forbid (principal, action, resource)\nwhen { principal.no_such_attribute };"})
    assert r.status_code == 200
    assert re.search(r"line 2, column \d+: .*no_such_attribute", r.text), r.text


def test_an_auditor_sees_no_apply_and_is_refused_on_the_server(demo):
    out = run_cli(demo["config"], "admin", "add", "console-auditor", "--role", "auditor", "--json")
    token = json.loads(out.stdout)["token"]
    c, csrf = sign_in(demo, token)
    page = c.get("/console/directives").text
    assert 'action="/console/directives/preview"' not in page and "New directive" not in page
    text_ = 'forbid (principal, action, resource == Clearance::Model::"open-local");\n'
    digest = __import__("hashlib").sha256(text_.encode()).hexdigest()
    r = c.post("/console/directives/apply", data={"csrf_token": csrf, "text": text_, "id": "AUDITOR-1",
                                                   "title": "not allowed", "previewed": digest})
    assert r.status_code == 403 and "may not policy.write" in r.text
    assert "AUDITOR-1" not in run_cli(demo["config"], "directive", "list").stdout
    # Still reads: the audit page and a verify run are open to an auditor.
    assert c.get("/console/audit").status_code == 200


def test_a_console_action_is_a_change_entry_naming_the_administrator(demo):
    c, csrf = sign_in(demo)
    r = c.post("/console/approvals", data={"csrf_token": csrf, "org": "standards-lab", "model": "frontier-general",
                                           "reason": "change-entry check"})
    assert r.status_code == 303, r.text
    time.sleep(0.5)
    entries = change_entries(demo)
    req = [e for e in entries if e["decision"] == "approval.request" and e["org"] == "standards-lab"]
    assert req and req[-1]["principal"] == "admin:compliance-officer"
    assert any(e["decision"] == "console.signin" and e["principal"] == "admin:compliance-officer" for e in entries)


def test_signing_out_ends_the_session(demo):
    c, csrf = sign_in(demo)
    r = c.post("/console/logout", data={"csrf_token": csrf})
    assert r.status_code == 303
    assert c.get("/console/overview").status_code == 303  # back to sign-in


def test_an_error_is_a_page_not_a_traceback(demo):
    c, _ = sign_in(demo)
    r = c.get("/console/directives/NO-SUCH")
    assert r.status_code == 404 and "no directive" in r.text and "Traceback" not in r.text
    r = c.get("/console/assessments/..%2Fclearance.yaml")
    assert r.status_code == 404 and "Traceback" not in r.text


def _apply_template(c: httpx.Client, csrf: str, template: str, did: str) -> None:
    from clearance.console.directives import TEMPLATES, digest

    title, text_ = TEMPLATES[template]
    form = {"csrf_token": csrf, "text": text_, "id": did, "title": title, "since": "store"}
    preview = c.post("/console/directives/preview", data=form)
    assert preview.status_code == 200 and "invariants still hold" in preview.text, preview.text
    assert re.search(r'name="previewed" value="%s"' % digest(text_), preview.text)
    r = c.post("/console/directives/apply", data={**form, "previewed": digest(text_)})
    assert r.status_code == 303 and r.headers["location"] == f"/console/directives/{did}?done=applied", r.text


def _status(demo, persona: str, model: str) -> int:
    sdk = openai.OpenAI(base_url=demo["url"] + "/v1", api_key=demo["keys"][persona], max_retries=0)
    try:
        sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": "Status report?"}])
    except openai.PermissionDeniedError:
        return 403
    return 200


def test_redeployment_lifting_and_an_evaluator_window_through_the_console(demo):
    c, csrf = sign_in(demo)
    # Apply without a preview of this exact text: refused.
    r = c.post("/console/directives/apply", data={"csrf_token": csrf, "id": "NO-PREVIEW", "title": "t",
                                                   "text": "forbid (principal, action, resource);", "previewed": "0"})
    assert r.status_code == 400 and "Preview this exact text" in r.text
    # Redeploy frontier-cyber to critical infrastructure (and evaluators), then lift it.
    _apply_template(c, csrf, "redeploy-critical", "REDEPLOY-CONSOLE")
    time.sleep(1.0)
    assert _status(demo, "us-analyst", "frontier-cyber") == 403
    assert _status(demo, "us-defender", "frontier-cyber") == 200
    r = c.post("/console/directives/REDEPLOY-CONSOLE/revoke", data={"csrf_token": csrf, "reason": "lifted"})
    assert r.status_code == 303
    time.sleep(1.0)
    assert _status(demo, "us-analyst", "frontier-cyber") == 200
    page = c.get("/console/directives/REDEPLOY-CONSOLE").text
    assert "directive.apply" in page and "directive.revoke" in page and "admin:compliance-officer" in page
    # An evaluator window: open for a few hours, listed with its remaining time.
    ends = (datetime.now(timezone.utc) + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M")
    r = c.post("/console/grants", data={"csrf_token": csrf, "org": "standards-lab", "model": "frontier-cyber",
                                        "ends_at": ends, "reason": "pre-release evaluation"})
    assert r.status_code == 303, r.text
    grants = c.get("/console/access").text.split('id="grants"')[1].split("</table>")[0]
    assert "standards-lab" in grants and re.search(r"<td>\d+ h \d+ min</td>", grants)
    # A directive that would break an invariant is refused with its counterexample.
    form = {"csrf_token": csrf, "id": "OPEN-ALL", "title": "Everything for everyone",
            "text": "permit (principal, action, resource);\n"}
    preview = c.post("/console/directives/preview", data=form).text
    assert "frontier-cyber-verified-only" in preview and "counterexample" in preview
    from clearance.console.directives import digest

    r = c.post("/console/directives/apply", data={**form, "previewed": digest(form["text"])})
    assert r.status_code == 409 and "frontier-cyber-verified-only" in r.text
    assert "OPEN-ALL" not in run_cli(demo["config"], "directive", "list").stdout


# -- the browser: the demo's timeline without a terminal -------------------------------------


SUSPEND_ID = "SUSP-CONSOLE"


def _shots() -> Path | None:
    d = os.environ.get("CLEARANCE_CONSOLE_SCREENSHOTS")
    if not d:
        return None
    p = Path(d)
    p.mkdir(parents=True, exist_ok=True)
    return p


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (apt-get install chromium)")
def test_the_timeline_in_a_browser(demo, tmp_path):
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    sync_api = pytest.importorskip("playwright.sync_api")
    shots = _shots() or tmp_path
    url = demo["url"]
    researcher = openai.OpenAI(base_url=url + "/v1", api_key=demo["keys"]["intl-researcher"], max_retries=0)
    # Recorded traffic for the preview to replay, and a stored assessment report to open.
    assert researcher.chat.completions.create(model="frontier-general",
                                              messages=[{"role": "user", "content": "Hello"}]).choices
    (demo["state"] / "assessments").mkdir(exist_ok=True)
    subprocess.run([sys.executable, "-m", "clearance", "assess", "--base-url", url + "/v1",
                    "--api-key", demo["keys"]["us-analyst"], "--model", "frontier-general", "--suite", "smoke",
                    "--out", str(demo["state"] / "assessments" / "smoke-frontier-general.json"), "--quiet"],
                   check=True, capture_output=True, timeout=300)

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-background-networking"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(30_000)
            blocked: list[str] = []
            page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
            page.on("dialog", lambda d: d.accept())

            # Sign in.
            page.goto(url + "/console")
            page.wait_for_url("**/console/login")
            page.screenshot(path=str(shots / "sign-in.png"))
            page.fill("#token", demo["token"])
            page.click("button[type=submit]")
            page.wait_for_url("**/console/overview")
            assert page.locator("#who").inner_text() == "compliance-officer"
            page.wait_for_selector("#rates table")

            # The suspension: from its template, validated, previewed, then applied.
            page.goto(url + "/console/directives?template=suspend-non-us")
            page.fill("#d-id", SUSPEND_ID)
            page.fill("#d-authority", "Dept. of Commerce")
            page.click("#validate")
            page.wait_for_selector("#validation .valid")
            page.select_option("select[name=since]", "1h")
            page.click("#preview-button")
            page.wait_for_selector("#preview-result")
            preview = page.locator("#preview-result").inner_text()
            assert "intl-researcher" in preview and "lose" in preview
            assert "invariants still hold" in preview
            page.screenshot(path=str(shots / "directives-preview.png"), full_page=True)
            page.click("#apply-button")
            page.wait_for_url(f"**/console/directives/{SUSPEND_ID}?done=applied")
            assert "in_force" in page.locator("h1").inner_text()

            # The live stream, filtered to denials: intl-researcher's next request appears as denied.
            page.goto(url + "/console/overview?outcome=deny")
            page.wait_for_timeout(1500)  # the stream is open, and the directive has reached the gateway
            with pytest.raises(openai.PermissionDeniedError) as denied:
                researcher.chat.completions.create(model="frontier-general",
                                                   messages=[{"role": "user", "content": "Status report?"}])
            assert SUSPEND_ID in str(denied.value.body)
            row = page.locator("#decisions tr[data-principal=intl-researcher]").first
            row.wait_for()
            assert "deny" in row.inner_text() and SUSPEND_ID in row.inner_text()
            page.screenshot(path=str(shots / "overview.png"), full_page=True)
            page.goto(url + f"/console/directives/{SUSPEND_ID}")
            page.screenshot(path=str(shots / "directive.png"), full_page=True)

            # An access request, approved in the queue.
            page.goto(url + "/console/access")
            page.fill("form[action='/console/approvals'] input[name=org]", "acme-bank")
            page.select_option("form[action='/console/approvals'] select[name=model]", "frontier-cyber")
            page.fill("form[action='/console/approvals'] input[name=use_case]", "security-testing")
            page.fill("form[action='/console/approvals'] input[name=reason]", "red-team exercise")
            page.click("form[action='/console/approvals'] button")
            page.wait_for_url("**/console/access?done=*")
            req = page.locator("#approvals tr.requested", has_text="acme-bank").first
            req.locator("button.approve").click()
            page.wait_for_url("**/console/access?done=*")
            assert page.locator("#approvals tr.approved", has_text="acme-bank").count() == 1
            page.screenshot(path=str(shots / "access.png"), full_page=True)

            # An assessment report.
            page.goto(url + "/console/assessments")
            page.screenshot(path=str(shots / "assessments.png"), full_page=True)
            page.click("#reports a")
            page.wait_for_load_state()
            assert "frontier-general" in page.title()
            page.screenshot(path=str(shots / "assessment-report.png"))

            # Audit: verify, and the denied request with its inclusion proof.
            page.goto(url + "/console/audit")
            page.click("#verify-button")
            page.wait_for_selector("#verify-result")
            assert page.locator("#verify-result").inner_text().startswith("OK:")
            rid = row_request_id = None
            page.goto(url + "/console/overview?outcome=deny")
            row = page.locator("#decisions tr[data-principal=intl-researcher]").first
            row.wait_for()
            row_request_id = row.locator("code").inner_text()
            rid = row_request_id
            deadline = time.monotonic() + 30  # a checkpoint covering it is signed within seconds
            while True:
                page.goto(url + f"/console/audit?request_id={rid}")
                if page.locator(".proof").count() or time.monotonic() > deadline:
                    break
                page.wait_for_timeout(1000)
            assert page.locator(".proof").count() >= 1
            page.screenshot(path=str(shots / "audit.png"), full_page=True)
            assert not blocked, blocked  # nothing the CSP had to block
        finally:
            browser.close()


def test_an_org_admin_sees_its_own_org_only(demo):
    out = run_cli(demo["config"], "admin", "add", "eu-lab-admin", "--role", "org-admin", "--org", "eu-lab", "--json")
    c, csrf = sign_in(demo, json.loads(out.stdout)["token"])
    page = c.get("/console/access").text
    assert "intl-researcher" in page and "us-analyst" not in page and "gridco" not in page
    assert 'href="/console/directives"' not in c.get("/console/overview").text
    assert c.get("/console/directives").status_code == 403
    assert c.get("/console/audit").status_code == 403
    # Its stream is its own org's, whatever the filter asks.
    with c.stream("GET", "/console/stream?org=acme-bank") as s:
        for line in s.iter_lines():
            if line.startswith(": stream open"):
                break
            assert "acme-bank" not in line
    # It may not act on another org's users, even with a valid form.
    r = c.post("/console/users/us-analyst/disable", data={"csrf_token": csrf})
    assert r.status_code == 403 and "for org 'acme-bank'" in html.unescape(r.text)


def test_an_operator_adds_a_user_and_revokes_a_key_like_the_admin_api(demo):
    out = run_cli(demo["config"], "admin", "add", "console-operator", "--role", "operator", "--json")
    c, csrf = sign_in(demo, json.loads(out.stdout)["token"])
    r = c.post("/console/users", data={"csrf_token": csrf, "id": "new-analyst", "org": "acme-bank",
                                       "nationality": "us", "us_person": "yes", "email": "n@acme-bank.example"})
    assert r.status_code == 303, r.text
    r = c.post("/console/keys", data={"csrf_token": csrf, "user": "new-analyst", "use_case": "fraud-analytics"})
    assert r.status_code == 201
    key_id = re.search(r"Key (\w+) created for new-analyst", r.text).group(1)
    assert re.search(r"clr_\w+", r.text)  # shown once
    r = c.post(f"/console/keys/{key_id}/revoke", data={"csrf_token": csrf})
    assert r.status_code == 303
    time.sleep(0.5)
    mine = [(e["decision"], e["reasons"][0]) for e in change_entries(demo) if e["principal"] == "admin:console-operator"]
    assert ("user.add", "user:new-analyst") in mine and ("key.revoke", f"key:{key_id}") in mine, mine
    # An operator does not decide policy.
    r = c.post("/console/grants", data={"csrf_token": csrf, "org": "gridco", "model": "open-local",
                                        "ends_at": "2099-01-01T00:00"})
    assert r.status_code == 403 and "may not grant.write" in r.text


def test_verification_streams_its_progress_and_result(demo):
    c, _ = sign_in(demo)
    panel = c.get("/console/audit/verify", headers={"hx-request": "true"}).text
    assert 'sse-connect="/console/audit/verify/events"' in panel and 'sse-close="done"' in panel
    events = []
    with c.stream("GET", "/console/audit/verify/events") as s:
        for line in s.iter_lines():
            if line.startswith("event: "):
                events.append(line[7:])
            if line.startswith("data: ") and events[-1] == "done" and "OK:" in line:
                events.append("ok")
    assert events[-2:] == ["done", "ok"], events
