"""What ``clearance audit verify --witness URL`` asks a witness: the latest checkpoint it cosigned."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from urllib.parse import quote

import aiohttp

from clearance.audit.checkpoint import NoteError
from clearance.witness.cosign import CosignatureVerifier


async def _get(urls: Sequence[str], origin: str) -> list[tuple[str, int, str]]:
    timeout = aiohttp.ClientTimeout(total=15)
    out = []
    async with aiohttp.ClientSession(timeout=timeout, trust_env=False) as session:
        for url in urls:
            async with session.get(url.rstrip("/") + "/latest/" + quote(origin, safe="/"),
                                   allow_redirects=False) as r:
                out.append((url, r.status, await r.text()))
    return out


def witnessed_checkpoints(urls: Sequence[str], keys: Sequence[str], origin: str) -> list[tuple[str, str]]:
    """``(label, note)`` of each witness's latest cosigned checkpoint of ``origin``.

    With witness keys given, every note must carry a valid cosignature of one of them.
    Raises NoteError when a witness does not know the log or its answer is not cosigned.
    """
    verifiers = [CosignatureVerifier.load(k) for k in keys]
    try:
        answers = asyncio.run(_get(urls, origin))
    except aiohttp.ClientError as e:
        raise NoteError(f"a witness could not be reached: {e}") from None
    out = []
    for url, status, note in answers:
        if status != 200:
            raise NoteError(f"witness {url} answered {status}: it has not cosigned a checkpoint of {origin}")
        if verifiers:
            errors = []
            for v in verifiers:
                try:
                    v.verify(note)
                    break
                except NoteError as e:
                    errors.append(str(e))
            else:
                raise NoteError(f"witness {url}: " + "; ".join(errors))
        out.append((f"witnessed by {url}", note))
    return out
