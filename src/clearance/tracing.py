"""OpenTelemetry traces of requests, exported over OTLP/HTTP (off by default).

One span per request (``clearance.request``, kind SERVER), a child of the
caller's W3C ``traceparent`` when it sends one, with child spans for the
stages: ``identity``, ``guard``, ``policy``, ``limits``, ``upstream`` and
``audit.commit``.  The stages are timed as the request runs and their spans are
written when the request ends, so the request path pays for tracing only when
it is on.  Attributes follow the GenAI semantic conventions
(``gen_ai.operation.name``, ``gen_ai.request.model``, ``gen_ai.usage.*``) plus
Clearance's own (request id, org, key id, decision, reasons); never a prompt,
an answer or a key.  The upstream call carries ``traceparent`` naming the
request span, so an instrumented model server continues the same trace.
"""

from __future__ import annotations

import contextvars
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# The traceparent an upstream call should carry (set while a traced request runs).
_TRACEPARENT: contextvars.ContextVar[str | None] = contextvars.ContextVar("clearance_traceparent", default=None)


class TracingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
    endpoint: str = "http://127.0.0.1:4318/v1/traces"  # an OTLP/HTTP traces endpoint
    service_name: str = "clearance"
    headers: dict[str, str] = Field(default_factory=dict)  # e.g. an auth header for the collector
    export_timeout_seconds: float = 5.0


def upstream_headers(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` plus the current request's ``traceparent`` when it is traced (the same dict otherwise)."""
    tp = _TRACEPARENT.get()
    return headers if tp is None else {**headers, "traceparent": tp}


@dataclass
class RequestTrace:
    """The spans of one request: its start, the stages' (name, start, end) in ns, and attributes."""

    tracer: Any
    parent: Any
    start_ns: int
    attributes: dict[str, Any]
    stages: list[tuple[str, int, int, dict[str, Any]]] = field(default_factory=list)
    span: Any = None
    token: Any = None

    def stage(self, name: str, start_ns: int, **attributes: Any) -> None:
        self.stages.append((name, start_ns, time.time_ns(), attributes))

    def end(self, status: int, attributes: dict[str, Any]) -> None:
        from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

        span = self.span
        span.set_attributes({**self.attributes, **{k: v for k, v in attributes.items() if v not in (None, "")}})
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        ctx = set_span_in_context(span)
        for name, start, end, attrs in self.stages:
            kind = SpanKind.CLIENT if name in ("upstream", "audit.commit") else SpanKind.INTERNAL
            child = self.tracer.start_span(name, context=ctx, kind=kind, start_time=start, attributes=attrs)
            child.end(end_time=end)
        span.end()
        if self.token is not None:
            try:
                _TRACEPARENT.reset(self.token)
            except ValueError:  # ended in another context (a stream's end): nothing to restore there
                pass


class Tracing:
    """The tracer provider and its OTLP exporter; ``begin`` starts a request's trace."""

    def __init__(self, settings: TracingSettings) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name}))
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(
            endpoint=settings.endpoint, headers=settings.headers, timeout=settings.export_timeout_seconds)))
        self.tracer = self.provider.get_tracer("clearance")
        self.propagator = TraceContextTextMapPropagator()

    def begin(self, operation: str, model: str, request_id: str, traceparent: str | None) -> RequestTrace:
        from opentelemetry.trace import SpanKind

        parent = self.propagator.extract({"traceparent": traceparent}) if traceparent else None
        attrs = {"gen_ai.operation.name": operation, "gen_ai.request.model": model,
                 "clearance.request_id": request_id}
        span = self.tracer.start_span("clearance.request", context=parent, kind=SpanKind.SERVER, attributes=attrs)
        trace = RequestTrace(self.tracer, parent, time.time_ns(), attrs, span=span)
        carrier: dict[str, str] = {}
        from opentelemetry.trace import set_span_in_context

        self.propagator.inject(carrier, context=set_span_in_context(span))
        trace.token = _TRACEPARENT.set(carrier.get("traceparent"))
        return trace

    def shutdown(self) -> None:
        self.provider.shutdown()
