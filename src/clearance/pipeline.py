"""Where a request is decided: identity, guard, policy, routing, audit — in that order.

Each step is one short function taking and returning the plain values of
``types.py``.  Nothing here knows about HTTP: the ``api`` package parses the
wire format into a ``ChatRequest`` and renders what these functions return.
Every failure is an ``ApiError`` with the status and reason the client sees;
every decision, allowed or not, is written to the audit log before the
answer is released.

By default (``audit.answer_waits_for: decision``) a served request is
recorded by two entries: its decision entry is queued as soon as it is
admitted and committed while the upstream works, and the answer waits for
that commit; the completion entry (backend, fallbacks, usage, the answer's
digest) is queued when the answer is ready and committed with the next batch.
With ``completion``, one entry holding both is committed before the answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import anyio
import orjson

from clearance.api.errors import ApiError
from clearance.config import Config, ModelSettings
from clearance.guard.base import CATEGORIES as GUARD_CATEGORIES
from clearance.guard.context import policy_scores
from clearance.identity.keys import hash_key
from clearance.identity.tokens import looks_like_jwt
from clearance.policy.engine import PolicyContext
from clearance.routing.backends.base import UpstreamError
from clearance.routing.router import Attempts, OpenStream, Router
from clearance.snapshot import Snapshot, SnapshotHolder
from clearance.types import (AuditEntry, ChatChunk, ChatRequest, ChatResult, Decision, EmbeddingResult, GuardScores,
                             Principal, Reason, Usage)

if TYPE_CHECKING:
    from clearance.metrics import Metrics

log = logging.getLogger("clearance.pipeline")

CLIENT_GONE = "client disconnected"  # recorded with status 499, as proxies do
RESPONSE_WINDOW_CHARS = 4000  # streamed answers are screened in overlapping windows of this size


@dataclass
class Gateway:
    """Everything a request needs, built once by ``app.py``."""

    config: Config
    snapshots: SnapshotHolder
    router: Router
    metrics: Metrics
    guard: Any = None  # clearance.guard.GuardSet, or None when the guard is off
    audit: Any = None  # clearance.audit.AuditLog, or None when the audit log is off
    limiter: Any = None  # clearance.limits.enforce.Limiter
    tracing: Any = None  # clearance.tracing.Tracing when tracing is on
    traces: dict = field(default_factory=dict)  # request id -> its RequestTrace, until the request ends
    tokens: Any = None  # clearance.identity.tokens.TokenVerifier, or None when no OIDC issuer is configured
    refusals: Any = None  # clearance.audit.refused.RefusalRecorder, with the audit log


@dataclass
class Admitted:
    """A request that passed identity, guard and policy."""

    snapshot: Snapshot
    principal: Principal
    model: ModelSettings
    scores: GuardScores
    decision: Decision
    started: float
    prompt_sha256: str
    request: ChatRequest | None = None  # what the policy context was read from (tools, images)
    trace: Any = None  # tracing.RequestTrace when the request is traced
    limits: tuple = ()  # the usage limits (limits.rules.Rule) the answer's tokens count against


# --- 1. identity -------------------------------------------------------------

def identify(snapshot: Snapshot, api_key: str | None, now: datetime) -> Principal:
    if not api_key:
        raise ApiError(401, "missing API key: send 'Authorization: Bearer <key>' or 'x-api-key'",
                       type="authentication_error", code="missing_api_key")
    record = snapshot.keys.get(hash_key(api_key))
    if record is None:
        raise ApiError(401, "invalid API key", type="authentication_error", code="invalid_api_key")
    if record.revoked:
        raise ApiError(401, "API key has been revoked", type="authentication_error", code="revoked_api_key")
    if record.expires_at is not None and _aware(record.expires_at) <= now:
        raise ApiError(401, "API key has expired", type="authentication_error", code="expired_api_key")
    if record.refusal:
        raise refused(record.refusal, record.principal.user_id, record.principal.org_id)
    return record.principal


async def caller(gw: Gateway, credential: str | None, now: datetime) -> tuple[Snapshot, Principal]:
    """Who is calling, and the snapshot to decide with: an API key, or an OIDC token of a configured issuer
    (whose user may have just been provisioned into a newer snapshot)."""
    if gw.tokens is not None and looks_like_jwt(credential):  # API keys start "clr_"
        return await gw.tokens.identify(gw.snapshots, credential, now)
    snapshot = gw.snapshots.current
    return snapshot, identify(snapshot, credential, now)


def refused(refusal: str, user: str, org: str) -> ApiError:
    """The 403 for a disabled or deleted user, or a user of a disabled org."""
    what = {"user_disabled": f"user {user!r} is disabled", "user_deleted": f"user {user!r} has been deleted",
            "org_disabled": f"organisation {org!r} is disabled"}.get(refusal, f"user {user!r} may not use the gateway")
    return ApiError(403, what, type="permission_error", code=refusal)


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def find_model(snapshot: Snapshot, name: str) -> ModelSettings:
    model = snapshot.models.get(name)
    if model is None:
        raise ApiError(404, f"model {name!r} does not exist", type="not_found_error", code="model_not_found",
                       param="model")
    return model


# --- 2. guard ----------------------------------------------------------------

async def screen(gw: Gateway, model: ModelSettings, texts: list[str],
                 roles: list[str] | None = None) -> tuple[GuardScores, bool]:
    """Score texts (with their roles, for a guard that reads them) for a call to ``model``; the flag
    says a required guard could not decide (fail closed)."""
    if gw.guard is None:
        return GuardScores(scores={c: 0.0 for c in GUARD_CATEGORIES}, guard="off"), False
    started = time.perf_counter()
    try:
        scores, must_deny = await gw.guard.ascreen(model.name, texts, roles)
    except Exception as e:  # a guard must not raise, but if it does, it could not decide
        scores, must_deny = GuardScores(error=f"guard failed: {type(e).__name__}"), True
    gw.metrics.guard_latency.observe(time.perf_counter() - started)
    return scores, must_deny


class ResponseBlocked(Exception):
    """An answer crossed a line that policy forbids; it is withheld, or its stream is stopped."""

    def __init__(self, error: ApiError, reasons: list[str]):
        super().__init__(error.message)
        self.error = error
        self.message = error.message
        self.reasons = reasons


async def screen_response(gw: Gateway, adm: Admitted, text: str) -> ResponseBlocked | None:
    """Screen an answer (or the answer so far) through the guard and the same policy as the prompt."""
    if gw.guard is None or not gw.config.guard.screen_responses or not text:
        return None
    scores, failed = await screen(gw, adm.model, [text])
    merged = GuardScores(scores={c: max(float(adm.scores.scores.get(c, 0.0)), float(scores.scores.get(c, 0.0)))
                                 for c in GUARD_CATEGORIES}, flagged=scores.flagged, guard=scores.guard,
                         error=scores.error)
    decision = decide(adm.snapshot, adm.principal, adm.model, merged, failed, datetime.now(timezone.utc),
                      adm.request)
    if decision.allowed:
        return None
    err = denial(decision, merged, adm.model.name)
    err.message = "the model's answer was withheld: " + err.message
    return ResponseBlocked(err, decision.reason_ids)


# --- 3. policy ---------------------------------------------------------------

def decide(snapshot: Snapshot, principal: Principal, model: ModelSettings, scores: GuardScores,
           guard_failed: bool, now: datetime, req: ChatRequest | None = None) -> Decision:
    if guard_failed:
        return Decision(False, (Reason("guard-unavailable", "The required prompt guard could not decide", "system"),),
                        errors=(scores.error,), snapshot_hash=snapshot.hash)
    try:
        # Every category, read fail closed: a guard that knows only cyber_offense sets cyber_high_risk.
        guard = policy_scores(scores.scores)
        context = PolicyContext(now, principal.use_case, guard, req.tools, req.has_images) if req is not None \
            else PolicyContext(now, principal.use_case, guard)
        return snapshot.policy.decide(principal, model.name, context)
    except Exception as e:  # fail closed
        return Decision(False, (Reason("policy-error", "Policy evaluation failed", "system"),),
                        errors=(f"{type(e).__name__}: {e}",), snapshot_hash=snapshot.hash)


def _is_guard_block(decision: Decision, scores: GuardScores) -> bool:
    return any("guard" in r.id for r in decision.reasons) and (bool(scores.flagged) or bool(scores.error))


def denial(decision: Decision, scores: GuardScores, model: str) -> ApiError:
    reasons = [{"id": r.id, "title": r.title, "kind": r.kind} for r in decision.reasons]
    titles = "; ".join(f"{r.id}: {r.title}" if r.title else r.id for r in decision.reasons) or "no policy permits it"
    guard = _is_guard_block(decision, scores)
    kind = "guard_blocked" if guard else "policy_denied"
    what = "blocked by the prompt guard" if guard else "denied by policy"
    return ApiError(403, f"request to model {model!r} {what} ({titles})", type=kind, code=kind, reasons=reasons)


# --- 4. usage limits -----------------------------------------------------------

async def limit(gw: Gateway, adm: Admitted, req: ChatRequest) -> None:
    """Count the request against the usage limits that bind it; refused (429, audited) when one is reached."""
    rules = adm.snapshot.limits.binding(adm.principal, adm.model.name)
    if not rules or gw.limiter is None:
        return
    try:
        await gw.limiter.check(rules)
    except ApiError as err:
        gw.metrics.decisions.labels(adm.model.name, "rate_limited").inc()
        await record(gw, entry(req, kind="decision", decision="rate_limited", adm=adm, status=err.status,
                               error=err.message, reasons=[r["id"] for r in err.reasons]), req)
        raise
    adm.limits = rules


def account(gw: Gateway, adm: Admitted, usage: Usage | None) -> None:
    """Count an answer's tokens (metrics) and against the limits its request was counted against."""
    if usage is not None:
        gw.metrics.count_tokens(adm.principal.org_id, adm.model.name, usage)
    if adm.limits:
        gw.limiter.account(adm.limits, adm.model.name, usage)


# --- 5. audit ----------------------------------------------------------------

def prompt_digest(req: ChatRequest) -> str:
    h = hashlib.sha256()
    for m in req.messages:
        h.update(m.role.encode())
        h.update(b"\x00")
        h.update(m.content.encode())
        h.update(b"\x00")
    return h.hexdigest()


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def entry(req: ChatRequest, *, kind: str, decision: str, principal: Principal | None = None,
          adm: Admitted | None = None, backend: str = "", attempts: Attempts | None = None,
          usage: Usage | None = None, completion: str | None = None, status: int = 200, error: str = "",
          reasons: list[str] | None = None, snapshot_hash: str = "", started: float | None = None) -> AuditEntry:
    p = adm.principal if adm else principal
    t0 = adm.started if adm else started
    return AuditEntry(
        time=_now_iso(), request_id=req.request_id, kind=kind,
        principal=p.user_id if p else "", org=p.org_id if p else "", model=req.model, decision=decision,
        backend=backend, reasons=reasons if reasons is not None else (adm.decision.reason_ids if adm else []),
        snapshot=adm.snapshot.hash if adm else snapshot_hash,
        guard=dict(adm.scores.scores) if adm else {},
        prompt_sha256=adm.prompt_sha256 if adm else prompt_digest(req),
        completion_sha256=hashlib.sha256(completion.encode()).hexdigest() if completion is not None else "",
        prompt_tokens=usage.prompt_tokens if usage else 0,
        completion_tokens=usage.completion_tokens if usage else 0,
        latency_ms=round((time.perf_counter() - t0) * 1000, 3) if t0 else 0.0,
        fallbacks=attempts.fallbacks if attempts else [], status=status, error=error,
        key=p.key_id if p else "", tools=list(req.tools), images=req.has_images,
        client_request_id=req.client_request_id,
    )


async def record(gw: Gateway, e: AuditEntry, req: ChatRequest | None = None, completion: str | None = None,
                 final: bool = True) -> None:
    """Commit an audit entry; if the log cannot take it, the answer is not released.

    With ``audit.store_content`` on, ``req``'s prompt and the ``completion`` are
    kept encrypted in the same commit (otherwise only the entry's digests are).
    ``final``: the entry says how the request ended (it goes to the access log).
    """
    if final:
        ended(gw, e)
    if gw.audit is None:
        return
    try:
        await gw.audit.append(e, req.messages if req is not None else None, completion)
    except Exception:
        raise _audit_unavailable() from None


_access_log = logging.getLogger("clearance.access")
_ACCESS_FIELDS = ("request_id", "principal", "org", "key", "model", "backend", "decision", "status", "latency_ms",
                  "prompt_tokens", "completion_tokens", "fallbacks", "reasons", "error")


def ended(gw: Gateway, e: AuditEntry) -> None:
    """A request ended with the entry ``e``: its access-log line, and its trace's spans."""
    if gw.config.server.access_log:
        access(e)
    if gw.tracing is not None:
        trace = gw.traces.pop(e.request_id, None)
        if trace is not None:
            trace.end(e.status, {"gen_ai.usage.input_tokens": e.prompt_tokens,
                                 "gen_ai.usage.output_tokens": e.completion_tokens, "clearance.org": e.org,
                                 "clearance.key": e.key, "clearance.backend": e.backend,
                                 "clearance.decision": e.decision, "clearance.reasons": list(e.reasons),
                                 "error.type": e.error[:100]})


def access(e: AuditEntry) -> None:
    """One access-log line for a request that ended: who, which model and backend, status, time, tokens."""
    _access_log.info("request", extra={f: getattr(e, f) for f in _ACCESS_FIELDS})


def _audit_unavailable() -> ApiError:
    return ApiError(503, "the audit log is unavailable; the request was not served",
                    type="audit_unavailable", code="audit_unavailable")


def _waits_for_decision(gw: Gateway) -> bool:
    """True when answers wait only for their decision entry (``audit.answer_waits_for: decision``)."""
    return gw.audit is not None and gw.audit.settings.answer_waits_for == "decision"


def queue_decision(gw: Gateway, adm: Admitted, req: ChatRequest) -> asyncio.Future[int]:
    """Queue an admitted request's decision entry now; ``committed`` waits for it before the answer goes out."""
    try:
        return gw.audit.submit(entry(req, kind="decision", decision="allow", adm=adm), req.messages)
    except Exception:
        raise _audit_unavailable() from None


async def committed(decided: asyncio.Future[int]) -> None:
    """Wait for a queued decision entry's commit; if the log cannot take it, the answer is not released."""
    try:
        await decided
    except Exception:  # a cancellation (BaseException) passes through
        raise _audit_unavailable() from None


def record_later(gw: Gateway, e: AuditEntry, completion: str | None = None) -> None:
    """Queue a completion entry that no answer waits for (committed with the next batch)."""
    ended(gw, e)
    try:
        gw.audit.append_later(e, completion)
    except Exception as err:  # the log is closing or cannot seal the content; the decision is already in it
        log.error("audit completion entry of request %s not recorded: %s", e.request_id, err)


def _ended(gw: Gateway, adm: Admitted, req: ChatRequest, err: BaseException, decided: asyncio.Future[int]) -> None:
    """Record how a request ended when it left the pipeline by an exception other than an upstream error."""
    gone = isinstance(err, asyncio.CancelledError)
    record_later(gw, entry(req, kind="completion", decision="allow", adm=adm, status=499 if gone else 500,
                           error=CLIENT_GONE if gone else type(err).__name__))
    if not decided.done():
        decided.cancel()  # nobody will wait for it; its entry is still committed


# --- the request path --------------------------------------------------------

async def admit(gw: Gateway, req: ChatRequest, api_key: str | None, traceparent: str | None = None,
                operation: str = "chat") -> Admitted:
    """Identity, guard, policy and limits.  Raises ApiError (401/404/403/429) when the request may not go on."""
    started = time.perf_counter()
    trace = _begin_trace(gw, req, traceparent, operation)
    try:
        t = time.time_ns() if trace is not None else 0  # stage timing, only for a traced request
        now = datetime.now(timezone.utc)
        snapshot, principal = await caller(gw, api_key, now)
        model = find_model(snapshot, req.model)
        t = _stage(trace, "identity", t)
        scores, guard_failed = await screen(gw, model, req.texts(), req.roles())
        t = _stage(trace, "guard", t)
        decision = decide(snapshot, principal, model, scores, guard_failed, now, req)
        t = _stage(trace, "policy", t, **{"clearance.decision.allowed": decision.allowed})
        adm = Admitted(snapshot, principal, model, scores, decision, started, prompt_digest(req), req, trace=trace)
        label = "allow" if decision.allowed else ("guard_block" if _is_guard_block(decision, scores) else "deny")
        gw.metrics.decisions.labels(model.name, label).inc()
        if not decision.allowed:
            err = denial(decision, scores, model.name)
            await record(gw, entry(req, kind="decision", decision=label, adm=adm, status=403,
                                   error="; ".join(decision.errors)), req)
            raise err
        await limit(gw, adm, req)
        _stage(trace, "limits", t)
        return adm
    except ApiError as err:  # refused before an entry ended its trace (401, 404, ...)
        if trace is not None and gw.traces.pop(req.request_id, None) is not None:
            trace.end(err.status, {"error.type": err.code})
        raise


def _begin_trace(gw: Gateway, req: ChatRequest, traceparent: str | None, operation: str):
    if gw.tracing is None:
        return None
    trace = gw.traces[req.request_id] = gw.tracing.begin(operation, req.model, req.request_id, traceparent)
    return trace


def _stage(trace, name: str, start_ns: int, **attributes: Any) -> int:
    """Record a stage of a traced request that began at ``start_ns``; the time it ended (0 when not traced)."""
    if trace is None:
        return 0
    trace.stage(name, start_ns, **attributes)
    return time.time_ns()


async def permitted(gw: Gateway, req: ChatRequest, api_key: str | None) -> tuple[Principal, ModelSettings]:
    """Identity and policy, without the guard, for calls that send the model nothing to answer
    (``/v1/models/{id}``, ``count_tokens``): the decision a request with no guard flags would get."""
    now = datetime.now(timezone.utc)
    snapshot, principal = await caller(gw, api_key, now)
    model = find_model(snapshot, req.model)
    clear = GuardScores(scores={c: 0.0 for c in GUARD_CATEGORIES}, guard="none")
    decision = decide(snapshot, principal, model, clear, False, now, req)
    if not decision.allowed:
        raise denial(decision, clear, model.name)
    return principal, model


async def count_tokens(gw: Gateway, req: ChatRequest, api_key: str | None) -> tuple[int, str]:
    """The input tokens of a request, counted by the first backend of its route that can
    (``"upstream"``), or estimated (``"estimate"``); not a model call, so not in the audit log."""
    _, model = await permitted(gw, req, api_key)
    try:
        counted, _ = await gw.router.call(req, model, "count_tokens")
    except UpstreamError as err:
        raise _upstream_error(err, req) from None
    return counted


def _count_fallbacks(gw: Gateway, model: str, attempts: Attempts) -> None:
    for name in attempts.fallbacks:
        gw.metrics.fallbacks.labels(model, name).inc()


async def complete(gw: Gateway, adm: Admitted, req: ChatRequest) -> ChatResult:
    """Serve a non-streaming request; its decision is committed before the answer returns."""
    if _waits_for_decision(gw):
        return await _complete_overlapped(gw, adm, req)
    try:
        result, attempts = await gw.router.complete(req, adm.model)
    except UpstreamError as err:
        await record(gw, entry(req, kind="decision", decision="allow", adm=adm, status=err.status,
                               error=err.message), req)
        raise _upstream_error(err, req) from None
    _count_fallbacks(gw, adm.model.name, attempts)
    blocked = await screen_response(gw, adm, result.answer_text)
    if blocked is not None:
        gw.metrics.decisions.labels(adm.model.name, "response_block").inc()
    account(gw, adm, result.usage)
    await record(gw, _outcome(req, adm, "decision", result.backend, attempts, result.usage, result.answer_text,
                              blocked), req, result.answer_text)
    if blocked is not None:
        raise blocked.error
    return result


def _outcome(req: ChatRequest, adm: Admitted, kind: str, backend: str, attempts: Attempts, usage: Usage | None,
             text: str, blocked: ResponseBlocked | None, error: str | None = None) -> AuditEntry:
    """The entry recording what was answered and how it ended (``error``: why a stream broke off)."""
    return entry(req, kind=kind, decision="response_block" if blocked else "allow", adm=adm, backend=backend,
                 attempts=attempts, usage=usage, completion=text,
                 status=403 if blocked else 499 if error == CLIENT_GONE else 502 if error else 200,
                 error=error or "", reasons=blocked.reasons if blocked else None)


async def _while_deciding(gw: Gateway, adm: Admitted, req: ChatRequest, call: Any) -> tuple[asyncio.Future[int], Any]:
    """Queue the decision entry, then ``await call(req, model)`` while it commits.

    Returns the entry's future and what the call returned.  An upstream
    failure is answered once the decision is committed, with the failure as
    the request's completion entry.
    """
    decided = queue_decision(gw, adm, req)
    t = time.time_ns() if adm.trace is not None else 0
    try:
        got = await call(req, adm.model)
        if adm.trace is not None:  # got: an open stream, or (result, attempts)
            _stage(adm.trace, "upstream", t, **{"clearance.backend": (got[0] if isinstance(got, tuple) else got).backend})
        return decided, got
    except UpstreamError as err:
        _stage(adm.trace, "upstream", t, **{"error.type": "upstream_error"})
        await committed(decided)
        record_later(gw, entry(req, kind="completion", decision="allow", adm=adm, status=err.status,
                               error=err.message))
        raise _upstream_error(err, req) from None
    except BaseException as err:
        _ended(gw, adm, req, err, decided)
        raise


async def _complete_overlapped(gw: Gateway, adm: Admitted, req: ChatRequest) -> ChatResult:
    """``complete`` with the decision entry committed while the upstream answers."""
    decided, (result, attempts) = await _while_deciding(gw, adm, req, gw.router.complete)
    _count_fallbacks(gw, adm.model.name, attempts)
    blocked = await screen_response(gw, adm, result.answer_text)
    if blocked is not None:
        gw.metrics.decisions.labels(adm.model.name, "response_block").inc()
    t = time.time_ns() if adm.trace is not None else 0
    await committed(decided)
    _stage(adm.trace, "audit.commit", t)
    account(gw, adm, result.usage)
    record_later(gw, _outcome(req, adm, "completion", result.backend, attempts, result.usage, result.answer_text,
                              blocked), result.answer_text)
    if blocked is not None:
        raise blocked.error
    return result


async def embed(gw: Gateway, adm: Admitted, req: ChatRequest) -> EmbeddingResult:
    """Serve an embeddings request; recorded like a chat call, the vectors' digest as its answer."""
    if _waits_for_decision(gw):
        decided, (result, attempts) = await _while_deciding(gw, adm, req, gw.router.embed)
        _count_fallbacks(gw, adm.model.name, attempts)
        await committed(decided)
        account(gw, adm, result.usage)
        record_later(gw, _outcome(req, adm, "completion", result.backend, attempts, result.usage,
                                  _vectors(result), None))
        return result
    try:
        result, attempts = await gw.router.embed(req, adm.model)
    except UpstreamError as err:
        await record(gw, entry(req, kind="decision", decision="allow", adm=adm, status=err.status,
                               error=err.message), req)
        raise _upstream_error(err, req) from None
    _count_fallbacks(gw, adm.model.name, attempts)
    account(gw, adm, result.usage)
    await record(gw, _outcome(req, adm, "decision", result.backend, attempts, result.usage, _vectors(result), None),
                 req)
    return result


def _vectors(result: EmbeddingResult) -> str:
    """What an embeddings answer's digest is taken over: its ``data`` as compact JSON."""
    return orjson.dumps(result.raw.get("data")).decode()


_UPSTREAM_MESSAGES = {
    429: "the model's upstream is rate limiting requests; try again later",
    503: "no upstream is available for this model right now",
    504: "the model's upstream did not answer in time",
}


def _upstream_error(err: UpstreamError, req: ChatRequest) -> ApiError:
    """The error the client sees: generic (no backend names, no upstream bodies); the detail is
    logged here and recorded in the request's audit entry."""
    kind = {400: "invalid_request_error", 429: "rate_limited", 503: "no_backend_available", 504: "upstream_timeout"}.get(err.status, "upstream_error")
    log.warning("upstream failed", extra={"request_id": req.request_id, "model": req.model, "status": err.status,
                                          "detail": err.message})
    if err.status == 400:  # the request itself cannot be served as sent (names the field, not a backend)
        return ApiError(400, err.message, type=kind, code=kind)
    message = _UPSTREAM_MESSAGES.get(err.status, "the model's upstream failed to answer")
    return ApiError(err.status, f"{message} (request {req.request_id})", type=kind, code=kind)


async def open_stream(gw: Gateway, adm: Admitted, req: ChatRequest) -> tuple[str, AsyncIterator[ChatChunk]]:
    """Start a stream: the decision entry is committed before the first byte is released.

    Returns the serving backend's name and the stream's chunks; when the
    chunks end (finished, broken or abandoned by the client) the completion
    entry is committed.
    """
    if _waits_for_decision(gw):
        return await _open_stream_overlapped(gw, adm, req)
    try:
        opened = await gw.router.open_stream(req, adm.model)
    except UpstreamError as err:
        await record(gw, entry(req, kind="decision", decision="allow", adm=adm, status=err.status,
                               error=err.message), req)
        raise _upstream_error(err, req) from None
    _count_fallbacks(gw, adm.model.name, opened.attempts)
    await record(gw, entry(req, kind="decision", decision="allow", adm=adm, backend=opened.backend,
                           attempts=opened.attempts), req, final=False)  # its completion entry follows

    async def on_end(text: str, usage: Usage | None, error: str | None, blocked: ResponseBlocked | None) -> None:
        account(gw, adm, usage)
        try:  # the prompt went with the decision entry
            await record(gw, _outcome(req, adm, "completion", opened.backend, opened.attempts, usage, text, blocked,
                                      error), completion=text)
        except ApiError:
            pass  # the stream has already been sent; the failure is logged by the audit log

    return opened.backend, _tracked(gw, adm, req, opened, on_end)


async def _open_stream_overlapped(gw: Gateway, adm: Admitted, req: ChatRequest
                                  ) -> tuple[str, AsyncIterator[ChatChunk]]:
    """``open_stream`` with the decision entry committed while the upstream opens the stream."""
    decided, opened = await _while_deciding(gw, adm, req, gw.router.open_stream)
    _count_fallbacks(gw, adm.model.name, opened.attempts)
    try:
        await committed(decided)
    except BaseException as err:
        await _close(opened.rest)
        if not isinstance(err, ApiError):
            _ended(gw, adm, req, err, decided)
        raise

    async def on_end(text: str, usage: Usage | None, error: str | None, blocked: ResponseBlocked | None) -> None:
        account(gw, adm, usage)
        record_later(gw, _outcome(req, adm, "completion", opened.backend, opened.attempts, usage, text, blocked, error),
                     text)

    return opened.backend, _tracked(gw, adm, req, opened, on_end)


async def _close(chunks: AsyncIterator[ChatChunk]) -> None:
    """Close an opened upstream stream that will not be sent (its connection goes back or is dropped)."""
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        with anyio.CancelScope(shield=True):
            try:
                await aclose()
            except Exception:
                pass


async def _tracked(gw: Gateway, adm: Admitted, req: ChatRequest, opened: OpenStream,
                   on_end) -> AsyncIterator[ChatChunk]:
    """The stream's chunks, screened as they pass when response screening is on; ``on_end`` runs once at the end."""
    parts: list[str] = []
    usage: Usage | None = None
    error: str | None = None
    blocked: ResponseBlocked | None = None
    every = gw.config.guard.response_screen_every_chars
    screening = gw.guard is not None and gw.config.guard.screen_responses
    unscreened = 0

    async def check(final: bool) -> None:
        nonlocal unscreened, blocked
        if unscreened and (final or unscreened >= every):
            unscreened = 0
            # Overlapping windows: every span shorter than the window is screened whole at some check.
            blocked = await screen_response(gw, adm, "".join(parts)[-RESPONSE_WINDOW_CHARS:])
            if blocked is not None:
                gw.metrics.decisions.labels(adm.model.name, "response_block").inc()
                raise blocked

    try:
        first = [opened.first]
        async for c in _chain(first, opened.rest):
            if piece := c.delta + c.calls_text:  # text and tool-call arguments alike
                parts.append(piece)
                if screening:
                    unscreened += len(piece)
                    await check(final=c.finish_reason is not None)
            if c.usage is not None:
                usage = c.usage
            if screening and c.finish_reason is not None:
                await check(final=True)
            yield c
    except (GeneratorExit, anyio.get_cancelled_exc_class()):
        error = CLIENT_GONE
        raise
    except Exception as e:
        error = getattr(e, "message", None) or type(e).__name__
        if not isinstance(e, ResponseBlocked):
            log.warning("stream broke off", extra={"request_id": req.request_id, "backend": opened.backend,
                                                  "detail": error})
        raise
    finally:
        # Shielded: when the client disconnects the stream's task is cancelled, and the
        # completion entry must still be committed.
        with anyio.CancelScope(shield=True):
            await on_end("".join(parts), usage, error, blocked)


async def _chain(first: list[ChatChunk], rest: AsyncIterator[ChatChunk]) -> AsyncIterator[ChatChunk]:
    for c in first:
        yield c
    async for c in rest:
        yield c
