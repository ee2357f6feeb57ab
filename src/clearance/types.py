"""Plain typed values that flow through the request pipeline.

Every stage of ``pipeline.py`` takes and returns these.  None of them knows
about HTTP, the database or a wire format: the ``api`` package translates the
OpenAI and Anthropic wire formats into a ``ChatRequest`` and renders a
``ChatResult`` (or a stream of ``ChatChunk``) back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class Message:
    """One turn of a conversation in the neutral (OpenAI-shaped) format.

    ``content`` is the turn's text with any multi-part content flattened;
    ``extra`` keeps fields a backend may need to pass through unchanged
    (``tool_calls``, ``tool_call_id``, ``name``).
    """

    role: str
    content: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A chat call as Clearance sees it, whatever wire format it came in."""

    request_id: str
    model: str
    messages: tuple[Message, ...]
    stream: bool = False
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    # Other sampling parameters forwarded to OpenAI-compatible backends as-is.
    params: dict[str, Any] = field(default_factory=dict)
    wire: Literal["openai", "anthropic"] = "openai"
    # The client's body and protocol headers as sent, for a backend that speaks the same wire
    # format to forward unchanged (tools, content blocks, ...); the fields above are what every
    # backend understands.  A backend of the other format refuses what it cannot translate.
    raw: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    # The names of the tools the client offers the model, and whether any turn holds an image:
    # read by policy (``context.tools``, ``context.has_images``) and recorded in the audit entry.
    tools: tuple[str, ...] = ()
    has_images: bool = False
    # The client's own x-request-id (well formed), kept beside the gateway's request_id.
    client_request_id: str = ""

    def texts(self) -> list[str]:
        """Every piece of text in the conversation, system prompt included."""
        return [m.content for m in self.messages if m.content]

    def roles(self) -> list[str]:
        """The role of each of ``texts()`` (``system``, ``user``, ``assistant``, ``tool``), in order."""
        return [m.role for m in self.messages if m.content]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: resolved from an API key by the identity stage."""

    key_id: str
    user_id: str
    org_id: str
    groups: tuple[str, ...] = ()
    nationality: str = ""
    us_person: bool = False
    verified: bool = False
    use_case: str = ""


@dataclass(frozen=True, slots=True)
class GuardScores:
    """Scores in 0..1 per category, and the categories over threshold.

    ``error`` is set when a guard could not decide; the policy stage then
    fails closed unless the route says the guard is optional.
    """

    scores: dict[str, float] = field(default_factory=dict)
    flagged: tuple[str, ...] = ()
    guard: str = ""
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Reason:
    """A rule that decided a request: a policy or directive id and its title."""

    id: str
    title: str = ""
    kind: str = "policy"  # "policy" | "directive" | "approval" | "system"


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of the policy stage for one principal, model and context."""

    allowed: bool
    reasons: tuple[Reason, ...] = ()
    errors: tuple[str, ...] = ()
    snapshot_hash: str = ""

    @property
    def reason_ids(self) -> list[str]:
        return [r.id for r in self.reasons]


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class ChatResult:
    """A complete (non-streamed) answer from a backend."""

    content: str
    finish_reason: str = "stop"
    usage: Usage = field(default_factory=Usage)
    backend: str = ""
    upstream_model: str = ""
    # The upstream's answer as it came (an OpenAI choice, or an Anthropic message) and its wire
    # format: rendered unchanged to a client of the same format (tool calls, logprobs, blocks).
    raw: dict[str, Any] | None = None
    raw_wire: str = ""
    # The arguments of the answer's tool calls, screened and recorded with its text.
    calls_text: str = ""
    # An OpenAI upstream's further choices when the client asked for several (``n``), as they came.
    others: tuple[dict[str, Any], ...] = ()

    @property
    def answer_text(self) -> str:
        """Everything the model said: its text and its tool calls' arguments, every choice's."""
        texts = [self.content, self.calls_text]
        for choice in self.others:
            message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
            texts.append(message.get("content") if isinstance(message.get("content"), str) else "")
            texts.append(orjson.dumps(message["tool_calls"]).decode() if message.get("tool_calls") else "")
        return "\n".join(t for t in texts if t)


@dataclass(frozen=True, slots=True)
class EmbeddingResult:
    """An upstream's embeddings answer: its JSON as it came (vectors and all), and its usage."""

    raw: dict[str, Any]
    usage: Usage = field(default_factory=Usage)
    backend: str = ""


@dataclass(frozen=True, slots=True)
class ChatChunk:
    """One piece of a streamed answer.  The last chunk carries finish and usage."""

    delta: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    # What the upstream sent for this piece, unchanged, when it was more than text (OpenAI
    # choices with tool-call deltas or logprobs; Anthropic content-block and message_delta
    # events), in ``raw_wire``'s format.  ``delta`` still holds the piece's text.
    raw: tuple[dict[str, Any], ...] = ()
    raw_wire: str = ""
    # Fragments of tool-call arguments in this piece, screened and recorded with the text.
    calls_text: str = ""


@dataclass(slots=True)
class AuditEntry:
    """One decision and its outcome, as written to the audit log.

    Prompts and completions are recorded only as SHA-256 hex digests.
    """

    time: str
    request_id: str
    kind: str  # "decision" | "completion" | "refused"
    principal: str
    org: str
    model: str
    decision: str  # "allow" | "deny" | "guard_block" | "error"
    backend: str = ""
    reasons: list[str] = field(default_factory=list)
    snapshot: str = ""
    guard: dict[str, float] = field(default_factory=dict)
    prompt_sha256: str = ""
    completion_sha256: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    fallbacks: list[str] = field(default_factory=list)
    status: int = 0
    error: str = ""
    key: str = ""  # the public id of the API key (never the key)
    tools: list[str] = field(default_factory=list)  # names of the tools offered to the model
    images: bool = False  # whether the prompt held an image (never its content)
    # The client's own x-request-id, when it sent a well-formed one (never the entry's key).
    client_request_id: str = ""
    # Refused entries: where the request came from (the peer address) and, for a summary of
    # refusals not recorded one by one, how many it stands for.
    source: str = ""
    count: int = 0
