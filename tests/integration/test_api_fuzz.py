"""A bounded schemathesis pass over /openapi.json against the real server: no 5xx, ever.

The gateway runs on a loopback port against a SIMULATED upstream that always
answers; schemathesis generates requests for every operation of the public and
admin APIs from the served document (valid and invalid bodies alike), sent
with a valid API key and the admin token.  Any 5xx fails the test.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings

from tests.integration.gateway import add_persona, start_gateway, start_upstream, write_config

ADMIN = "fuzz-admin-token"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    upstream = start_upstream("fuzz-sim")
    (tmp / "allow.cedar").write_text('@id("allow-all")\npermit (principal, action, resource);\n')
    config = write_config(tmp, f"sqlite:///{tmp / 'clearance.db'}",
                          [{"name": "sim", "base_url": upstream.url + "/v1"},
                           {"name": "sim-a", "kind": "anthropic", "base_url": upstream.url}],
                          [{"name": "chat", "backends": ["sim", "sim-a"]}], policy={"files": ["allow.cedar"]})
    key = add_persona(config, "fuzzer", "acme")
    gw = start_gateway(config, env={"CLEARANCE_ADMIN_TOKEN": ADMIN})
    yield gw, key
    gw.stop()
    upstream.stop()


@pytest.fixture(scope="module")
def api_schema(gateway):
    gw, _ = gateway
    return schemathesis.openapi.from_url(gw.url + "/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=25, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_no_operation_answers_5xx(case, gateway):
    gw, key = gateway
    auth = f"Bearer {ADMIN}" if case.path.startswith("/admin/") else f"Bearer {key}"
    response = case.call(headers={"authorization": auth, "x-api-key": key}, timeout=30)
    assert response.status_code < 500, (case.method, case.path, case.body, response.status_code, response.text[:500])
    assert "x-request-id" in response.headers
