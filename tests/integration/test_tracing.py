"""OpenTelemetry traces through the real gateway, received by an OTLP/HTTP receiver on loopback.

The receiver is a TEST DOUBLE of a collector: it decodes what the gateway's
OTLP exporter posts with the OpenTelemetry protobuf definitions.  The upstream
is the SIMULATED demo model server, wrapped to record the headers it received.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import openai
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from clearance.demo.run import start_in_thread
from clearance.demo.upstream import create_upstream_app
from tests.conftest import free_port
from tests.integration.gateway import add_persona, start_gateway, write_config
from tests.integration.test_tools import Recording

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


class Receiver:
    """TEST DOUBLE: an OTLP/HTTP traces endpoint that keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                req = ExportTraceServiceRequest()
                req.ParseFromString(body)
                for rs in req.resource_spans:
                    for ss in rs.scope_spans:
                        receiver.spans.extend(ss.spans)
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.server = HTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tracing")
    receiver = Receiver()
    up = Recording(create_upstream_app("sim"))
    port = free_port()
    server = start_in_thread(up, port)
    (tmp / "allow.cedar").write_text('@id("allow-all")\npermit (principal, action, resource);\n')
    config = write_config(tmp, f"sqlite:///{tmp / 'c.db'}", [{"name": "sim", "base_url": f"http://127.0.0.1:{port}/v1"}],
                          [{"name": "m", "backends": ["sim"]}], policy={"files": ["allow.cedar"]},
                          tracing={"enabled": True, "endpoint": f"http://127.0.0.1:{receiver.port}/v1/traces"})
    key = add_persona(config, "alice", "acme")
    gw = start_gateway(config, env={"OTEL_BSP_SCHEDULE_DELAY": "50"})
    yield {"gw": gw, "key": key, "receiver": receiver, "up": up}
    gw.stop()
    server.should_exit = True
    receiver.server.shutdown()


def _spans_of(world, request_id: str, n: int = 7):
    import time

    deadline = time.monotonic() + 10
    while True:
        spans = list(world["receiver"].spans)
        root = [s for s in spans if s.name == "clearance.request" and any(
            a.key == "clearance.request_id" and a.value.string_value == request_id for a in s.attributes)]
        if root:
            mine = [s for s in spans if s.trace_id == root[0].trace_id]
            if len(mine) >= n or time.monotonic() > deadline:
                return root[0], mine
        assert time.monotonic() < deadline, "no trace arrived"
        time.sleep(0.05)


def _attrs(span) -> dict:
    out = {}
    for a in span.attributes:
        v = a.value
        out[a.key] = v.string_value or v.int_value or v.bool_value or list(x.string_value for x in v.array_value.values)
    return out


def test_a_request_is_one_trace_continuing_the_callers_with_a_span_per_stage(world):
    client = openai.OpenAI(base_url=world["gw"].url + "/v1", api_key=world["key"], max_retries=0,
                           default_headers={"traceparent": PARENT})
    raw = client.chat.completions.with_raw_response.create(
        model="m", messages=[{"role": "user", "content": "confidential quarterly numbers"}])
    rid = raw.headers["x-request-id"]
    root, spans = _spans_of(world, rid)
    assert root.trace_id.hex() == TRACE_ID and root.parent_span_id.hex() == "00f067aa0ba902b7"
    names = {s.name for s in spans}
    assert {"identity", "guard", "policy", "limits", "upstream", "audit.commit"} <= names
    assert all(s.parent_span_id == root.span_id for s in spans if s is not root)
    attrs = _attrs(root)
    assert attrs["gen_ai.request.model"] == "m" and attrs["gen_ai.operation.name"] == "chat"
    assert attrs["http.response.status_code"] == 200 and attrs["clearance.org"] == "acme"
    assert attrs["gen_ai.usage.output_tokens"] == raw.parse().usage.completion_tokens
    everything = repr([_attrs(s) for s in spans])
    assert "confidential" not in everything and world["key"] not in everything
    # The upstream call carried the request span's context.
    sent = world["up"].last["headers"]["traceparent"]
    assert sent.split("-")[1] == TRACE_ID and sent.split("-")[2] == root.span_id.hex()


def test_a_refused_request_is_traced_with_its_status(world):
    client = openai.OpenAI(base_url=world["gw"].url + "/v1", api_key="clr_knope_x", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as e:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    root, _ = _spans_of(world, e.value.response.headers["x-request-id"], n=1)
    assert _attrs(root)["http.response.status_code"] == 401


def test_a_stream_is_traced_until_it_ends(world):
    client = openai.OpenAI(base_url=world["gw"].url + "/v1", api_key=world["key"], max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="m", stream=True, messages=[{"role": "user", "content": "stream please"}])
    for _ in raw.parse():
        pass
    root, spans = _spans_of(world, raw.headers["x-request-id"], n=6)
    assert _attrs(root)["gen_ai.usage.output_tokens"] > 0 and "upstream" in {s.name for s in spans}
