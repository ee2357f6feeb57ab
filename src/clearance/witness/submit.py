"""The gateway's side of witnessing: each new checkpoint goes to the configured witnesses.

``WitnessSubmitter.run`` (a task of each gateway worker) looks at the newest
checkpoint every ``audit.checkpoint_interval_seconds``; for every witness
that has not cosigned it yet, it sends the checkpoint with a consistency
proof from the size that witness last cosigned (learnt from a 409 answer the
first time), checks the returned cosignature against the witness's key, and
appends it to the stored checkpoint note (and to the published newest
checkpoint).  A witness that refuses, with 422 (the proof does not verify)
or by knowing a larger tree than the log holds, is reported as an error:
either means the log's history was rewritten.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from pathlib import Path

import aiohttp
from sqlalchemy import Engine, select, update

from clearance.audit.checkpoint import NoteError, parse_checkpoint, split_note
from clearance.audit.export import load_tree
from clearance.audit.merkle import consistency_proof
from clearance.audit.tables import AuditCheckpointRow
from clearance.witness.cosign import CosignatureVerifier

log = logging.getLogger("clearance.witness")
_checkpoints = AuditCheckpointRow.__table__


def _latest(engine: Engine) -> tuple[int, str] | None:
    with engine.connect() as conn:
        row = conn.execute(select(_checkpoints.c.size, _checkpoints.c.note)
                           .order_by(_checkpoints.c.size.desc()).limit(1)).first()
    return (int(row.size), row.note) if row is not None else None


def _proof(engine: Engine, old: int, size: int) -> list[bytes]:
    if old == 0 or old == size:
        return []
    return consistency_proof(old, size, load_tree(engine, size))


def _add_cosignature(engine: Engine, size: int, line: str) -> str | None:
    """Append a cosignature line to the stored note of checkpoint ``size``; the new note."""
    with engine.begin() as conn:
        note = conn.execute(select(_checkpoints.c.note).where(_checkpoints.c.size == size)).scalar()
        if note is None or line in note:
            return note
        note = note + line
        conn.execute(update(_checkpoints).where(_checkpoints.c.size == size).values(note=note))
        return note


class WitnessSubmitter:
    """Sends new checkpoints with consistency proofs to witnesses and keeps their cosignatures."""

    def __init__(self, engine: Engine, witnesses: list[tuple[str, CosignatureVerifier]], interval: float,
                 publish_dir: Path | None = None, timeout: float = 10.0) -> None:
        self.engine = engine
        self.witnesses = witnesses
        self.interval = interval
        self.publish_dir = publish_dir
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.known: dict[str, int] = {}  # witness URL -> the size it last cosigned (0: unknown yet)
        self.cosigned: dict[str, int] = {}  # witness URL -> the size whose cosignature is stored

    async def run(self, session: aiohttp.ClientSession) -> None:
        while True:
            try:
                await self.submit_latest(session)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("witness submission failed")
            await asyncio.sleep(self.interval)

    async def submit_latest(self, session: aiohttp.ClientSession) -> None:
        latest = await asyncio.to_thread(_latest, self.engine)
        if latest is None:
            return
        size, note = latest
        for url, verifier in self.witnesses:
            if self.cosigned.get(url) == size:
                continue
            line = await self._submit(session, url, verifier, size, note)
            if line is not None:
                stored = await asyncio.to_thread(_add_cosignature, self.engine, size, line)
                self.cosigned[url] = self.known[url] = size
                if stored is not None and self.publish_dir is not None:
                    from clearance.audit.publish import update_newest

                    await asyncio.to_thread(update_newest, self.publish_dir, stored)

    async def _submit(self, session: aiohttp.ClientSession, url: str, verifier: CosignatureVerifier, size: int,
                      note: str) -> str | None:
        """The witness's cosignature line for checkpoint ``size``, or None (logged)."""
        text = split_note(note)[0]
        # Only the log's own signature goes to the witness (not other witnesses' cosignatures).
        log_note = text + "\n" + "".join(line + "\n" for line in note[len(text) + 1:].splitlines()
                                           if line.split(" ")[1:2] == [parse_checkpoint(text).origin])
        for _ in range(3):
            old = self.known.get(url, 0)
            if old > size:
                log.error("witness %s has cosigned a tree of %d entries but the log's newest checkpoint has %d: "
                          "the log was truncated or rewritten", url, old, size)
                return None
            proof = await asyncio.to_thread(_proof, self.engine, old, size)
            body = f"old {old}\n" + "".join(base64.b64encode(h).decode() + "\n" for h in proof) + "\n" + log_note
            async with session.post(url.rstrip("/") + "/add-checkpoint", data=body.encode(), timeout=self.timeout,
                                    allow_redirects=False) as r:
                status, answer, ctype = r.status, await r.text(), r.headers.get("content-type", "")
            if status == 409 and ctype.startswith("text/x.tlog.size"):
                known = int(answer.strip())
                if known == old:  # same size, another root: the log showed two histories
                    log.error("witness %s holds another root for size %d: the log's history was rewritten", url, old)
                    return None
                self.known[url] = known
                continue
            if status != 200:
                level = logging.ERROR if status == 422 else logging.WARNING
                log.log(level, "witness %s refused checkpoint %d: %d %s", url, size, status, answer.strip()[:200])
                return None
            try:
                verifier.verify(log_note + answer)
            except NoteError as e:
                log.error("witness %s answered with an invalid cosignature: %s", url, e)
                return None
            return answer
        return None


def submitter_from_config(config, engine: Engine) -> WitnessSubmitter | None:
    """The submitter for ``audit.witnesses``, or None when none is configured."""
    if not config.audit.witnesses:
        return None
    witnesses = []
    for w in config.audit.witnesses:
        path = config.resolve(w.key)
        witnesses.append((w.url, CosignatureVerifier.parse(path.read_text() if path.is_file() else w.key)))
    publish_dir = config.resolve(config.audit.checkpoint_dir) if config.audit.checkpoint_dir else None
    return WitnessSubmitter(engine, witnesses, config.audit.checkpoint_interval_seconds, publish_dir)
