"""``clearance witness serve``: a small C2SP tlog-witness.

The witness follows the logs whose verifier keys it is given.  For each (by
origin) it keeps the latest checkpoint it cosigned, in a JSON state file
written atomically before it answers.  ``POST /add-checkpoint`` takes
``old <size>``, a consistency proof (one base64 hash a line), a blank line and
the signed checkpoint; the witness cosigns it only when the log's signature
verifies, ``old`` is the size it last cosigned, and the proof shows the new
tree extends that one:

- 404 unknown origin; 403 no valid signature of the log; 400 malformed, or an
  old size above the checkpoint's;
- 409 (``text/x.tlog.size``: the size it knows) when ``old`` is not that size,
  or when the same size comes with another root;
- 422 when the consistency proof does not verify: the log rewrote its history.

``GET /latest/<origin>`` returns the latest checkpoint it cosigned, with the
log's signature and its cosignature, for auditors (``clearance audit verify
--witness URL``).  Checks and the state update run without yielding to other
requests, so two submissions cannot roll the state back.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from clearance.audit.checkpoint import NoteError, NoteVerifier, parse_checkpoint
from clearance.audit.merkle import ProofError, verify_consistency
from clearance.witness.cosign import Cosigner

log = logging.getLogger("clearance.witness")

MAX_BODY = 65_536
MAX_PROOF = 63


@dataclass(frozen=True)
class Answer:
    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"


class WitnessState:
    """The latest cosigned checkpoint of each log: ``{origin: {"size", "root", "note"}}`` in a JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.logs: dict[str, dict] = json.loads(path.read_text()) if path.exists() else {}

    def latest(self, origin: str) -> tuple[int, bytes, str] | None:
        got = self.logs.get(origin)
        return (got["size"], base64.b64decode(got["root"]), got["note"]) if got else None

    def record(self, origin: str, size: int, root: bytes, note: str) -> None:
        self.logs[origin] = {"size": size, "root": base64.b64encode(root).decode(), "note": note}
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with open(tmp, "w") as f:
            json.dump(self.logs, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


def _parse(body: bytes) -> tuple[int, list[bytes], str]:
    """``(old size, proof, signed note)`` of an add-checkpoint body; raises ValueError when malformed."""
    text = body.decode("utf-8")
    cut = text.find("\n\n")
    if cut < 0:
        raise ValueError("no blank line before the checkpoint")
    lines, note = text[:cut].split("\n"), text[cut + 2:]
    old = lines[0].removeprefix("old ")
    if lines[0] == old or not old.isdigit() or (old != "0" and old.startswith("0")):
        raise ValueError("the first line must be 'old <size>'")
    if len(lines) - 1 > MAX_PROOF:
        raise ValueError(f"more than {MAX_PROOF} consistency proof lines")
    try:
        proof = [base64.b64decode(h, validate=True) for h in lines[1:]]
    except binascii.Error:
        raise ValueError("a consistency proof line is not base64") from None
    if any(len(h) != 32 for h in proof):
        raise ValueError("a consistency proof hash is not 32 bytes")
    return int(old), proof, note


class Witness:
    """The witness's decisions, apart from HTTP: see the module docstring."""

    def __init__(self, cosigner: Cosigner, logs: list[NoteVerifier], state: WitnessState) -> None:
        self.cosigner = cosigner
        self.logs = {v.name: v for v in logs}
        self.state = state

    def add_checkpoint(self, body: bytes) -> Answer:
        try:
            old, proof, note = _parse(body)
            text_part = note[: note.find("\n\n") + 1] if "\n\n" in note else note
            cp = parse_checkpoint(text_part)
        except (ValueError, NoteError, UnicodeDecodeError) as e:
            return Answer(400, f"malformed request: {e}\n")
        verifier = self.logs.get(cp.origin)
        if verifier is None:
            return Answer(404, "unknown log\n")
        try:
            text = verifier.verify(note)
        except NoteError:
            return Answer(403, "no valid signature of the log\n")
        if old > cp.size:
            return Answer(400, "old size is above the checkpoint's size\n")
        known = self.state.latest(cp.origin)
        known_size, known_root = (known[0], known[1]) if known else (0, b"")
        if old != known_size:
            return Answer(409, f"{known_size}\n", "text/x.tlog.size")
        if known is not None and old == cp.size:
            if cp.root != known_root:
                log.error("log %s showed two roots for size %d", cp.origin, cp.size)
                return Answer(409, f"{known_size}\n", "text/x.tlog.size")
        elif old > 0:
            try:
                verify_consistency(old, cp.size, proof, known_root, cp.root)
            except (ProofError, ValueError) as e:
                log.error("log %s: checkpoint %d is not consistent with %d: %s", cp.origin, cp.size, old, e)
                return Answer(422, "the consistency proof does not verify\n")
        elif proof:
            return Answer(400, "the proof must be empty when the old size is 0\n")
        cosignature = self.cosigner.cosign(text)
        self.state.record(cp.origin, cp.size, cp.root, note + cosignature)
        return Answer(200, cosignature)

    def latest(self, origin: str) -> Answer:
        known = self.state.latest(origin)
        return Answer(200, known[2]) if known else Answer(404, "unknown log\n")


def create_witness_app(witness: Witness) -> Starlette:
    async def add_checkpoint(request: Request) -> Response:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return PlainTextResponse("request too large\n", 413)
        answer = witness.add_checkpoint(body)  # no await between the check and the state update
        return Response(answer.body, answer.status, media_type=answer.content_type)

    async def latest(request: Request) -> Response:
        answer = witness.latest(request.path_params["origin"])
        return Response(answer.body, answer.status, media_type=answer.content_type)

    return Starlette(routes=[Route("/add-checkpoint", add_checkpoint, methods=["POST"]),
                             Route("/latest/{origin:path}", latest, methods=["GET"])])
