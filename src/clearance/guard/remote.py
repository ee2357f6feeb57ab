"""Remote guards over HTTP: a Llama Guard-style chat model and a moderation endpoint.

Both use aiohttp with the configured timeout bounding the whole call.  Any
transport error, timeout, non-2xx status or unparseable answer becomes
``GuardScores(error=...)``; whether that denies the request is the caller's
``required`` setting.
API keys are read from the environment variable the settings name and are
never logged or included in error messages.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp

from clearance.guard.base import error_scores, flag
from clearance.guard.settings import RemoteGuardSettings
from clearance.types import GuardScores

# Llama Guard 3/4 hazard codes. S2 (non-violent crimes) covers cyber crime such
# as hacking, malware and spyware; S14 is code-interpreter abuse.
LLAMA_GUARD_CATEGORIES = {
    "S1": "violent_crimes", "S2": "cyber_offense", "S3": "sex_crimes", "S4": "child_exploitation",
    "S5": "defamation", "S6": "specialized_advice", "S7": "privacy", "S8": "intellectual_property",
    "S9": "indiscriminate_weapons", "S10": "hate", "S11": "self_harm", "S12": "sexual_content",
    "S13": "elections", "S14": "cyber_offense",
}
MODERATION_CATEGORIES = {
    "illicit": "cyber_offense", "jailbreak": "jailbreak", "prompt_injection": "jailbreak",
    "cyber_offense": "cyber_offense",
}
_CODE_RE = re.compile(r"\bS\d{1,2}\b")


def parse_llama_guard(text: str, category_map: Mapping[str, str]) -> dict[str, float]:
    """Scores from Llama Guard output such as ``safe`` or ``unsafe\\nS2,S14``."""
    t = text.strip()
    first = t.split(None, 1)[0].lower().strip(".,:") if t else ""
    if first == "safe":
        return {"unsafe": 0.0, **{c: 0.0 for c in ("jailbreak", "cyber_offense")}}
    if first != "unsafe":
        raise ValueError("guard answer is neither 'safe' nor 'unsafe'")
    scores = {"unsafe": 1.0, "jailbreak": 0.0, "cyber_offense": 0.0}
    for code in _CODE_RE.findall(t):
        scores[category_map.get(code, code.lower())] = 1.0
    return scores


def parse_moderation(body: Any, category_map: Mapping[str, str]) -> dict[str, float]:
    """Scores from a ``/v1/moderations``-style body: maximum per category over results."""
    results = body.get("results") if isinstance(body, Mapping) else None
    if not isinstance(results, list) or not results:
        raise ValueError("moderation answer has no results")
    scores: dict[str, float] = {"jailbreak": 0.0, "cyber_offense": 0.0}
    for r in results:
        if not isinstance(r, Mapping):
            raise ValueError("moderation result is not an object")
        cs = r.get("category_scores") or {}
        flags = r.get("categories") or {}
        for name in set(cs) | set(flags):
            v = cs.get(name)
            val = float(v) if isinstance(v, (int, float)) else (1.0 if flags.get(name) else 0.0)
            key = category_map.get(name, name)
            scores[key] = max(scores.get(key, 0.0), min(1.0, max(0.0, val)))
        if r.get("flagged"):
            scores["flagged"] = 1.0
    return scores


class RemoteGuard:
    """``Guard`` calling an HTTP endpoint; ``score`` is the blocking twin of ``ascore``.

    ``ascore`` uses ``session`` when one is given (its owner closes it, and it
    must belong to the loop ``ascore`` runs in); otherwise each call opens and
    closes its own.  ``score`` always uses a session of its own.
    """

    def __init__(self, name: str, settings: RemoteGuardSettings, thresholds: dict[str, float],
                 session: aiohttp.ClientSession | None = None) -> None:
        self.name = name
        self.settings = settings
        self.thresholds = dict(thresholds)
        default_map = LLAMA_GUARD_CATEGORIES if settings.kind == "llama_guard" else MODERATION_CATEGORIES
        self.category_map = {**default_map, **settings.category_map}
        self._session = session

    def _headers(self) -> dict[str, str]:
        key = os.environ.get(self.settings.api_key_env) if self.settings.api_key_env else None
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _payload(self, texts: list[str]) -> dict[str, Any]:
        if self.settings.kind == "llama_guard":
            convo = "\n\n".join(t for t in texts if t)
            return {"model": self.settings.model, "temperature": 0, "max_tokens": 20,
                    "messages": [{"role": "user", "content": convo}]}
        body: dict[str, Any] = {"input": [t for t in texts if t] or [""]}
        if self.settings.model:
            body["model"] = self.settings.model
        return body

    def _parse(self, body: Any) -> dict[str, float]:
        if self.settings.kind == "llama_guard":
            try:
                text = body["choices"][0]["message"]["content"]
            except (KeyError, IndexError, TypeError):
                raise ValueError("chat answer has no choices[0].message.content") from None
            if not isinstance(text, str):
                raise ValueError("chat answer content is not text")
            return parse_llama_guard(text, self.category_map)
        return parse_moderation(body, self.category_map)

    def _result(self, scores: dict[str, float]) -> GuardScores:
        return GuardScores(scores=scores, flagged=flag(scores, self.thresholds), guard=self.name)

    async def _post(self, session: aiohttp.ClientSession, texts: list[str]) -> GuardScores:
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout_seconds)
        async with session.post(self.settings.url, json=self._payload(texts), headers=self._headers(),
                                timeout=timeout, allow_redirects=False) as resp:
            status, raw = resp.status, await resp.read()
        if status // 100 != 2:
            return error_scores(self.name, f"guard endpoint answered HTTP {status}")
        return self._result(self._parse(json.loads(raw)))

    async def _score_with(self, session: aiohttp.ClientSession | None, texts: list[str]) -> GuardScores:
        try:
            if session is not None:
                return await self._post(session, texts)
            async with aiohttp.ClientSession(trust_env=True) as own:
                return await self._post(own, texts)
        except asyncio.TimeoutError:
            return error_scores(self.name, f"guard endpoint timed out after {self.settings.timeout_seconds}s")
        except aiohttp.ClientError as e:
            return error_scores(self.name, f"guard endpoint unreachable: {type(e).__name__}")
        except ValueError as e:
            return error_scores(self.name, f"guard answer not understood: {e}")
        except Exception as e:  # noqa: BLE001 - never raise to the pipeline
            return error_scores(self.name, f"guard failed: {type(e).__name__}")

    async def ascore(self, texts: list[str]) -> GuardScores:
        return await self._score_with(self._session, texts)

    def score(self, texts: list[str]) -> GuardScores:
        try:
            try:
                asyncio.get_running_loop()
            except RuntimeError:  # the usual case: no event loop in this thread
                return asyncio.run(self._score_with(None, texts))
            with ThreadPoolExecutor(max_workers=1) as pool:  # called from async code: use a loop of its own
                return pool.submit(asyncio.run, self._score_with(None, texts)).result()
        except Exception as e:  # noqa: BLE001
            return error_scores(self.name, f"guard failed: {type(e).__name__}")
