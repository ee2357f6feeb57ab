"""The built-in guard's score cache: exact scores, bounded size, no prompt text kept."""

from __future__ import annotations

import random
import threading

import pytest

from clearance.guard import load_guard
from clearance.guard.cache import ScoreCache
from clearance.guard.dataset import load_rows
from clearance.guard.linear import LinearGuard
from clearance.guard.settings import DEFAULT_SCORE_CACHE_ENTRIES, GuardSettings


def test_cache_computes_each_text_once_while_kept():
    calls: list[str] = []
    cache: ScoreCache[int] = ScoreCache(2)

    def compute(t: str) -> int:
        calls.append(t)
        return len(t)

    assert cache.get_or_compute("aa", compute) == 2
    assert cache.get_or_compute("aa", compute) == 2
    assert calls == ["aa"] and (cache.hits, cache.misses) == (1, 1)
    cache.get_or_compute("bbb", compute)
    cache.get_or_compute("aa", compute)  # now the most recently used
    cache.get_or_compute("cccc", compute)  # evicts "bbb", the least recently used
    assert len(cache) == 2
    cache.get_or_compute("aa", compute)
    cache.get_or_compute("bbb", compute)
    assert calls == ["aa", "bbb", "cccc", "bbb"]


def test_cache_holds_digests_not_texts():
    cache: ScoreCache[int] = ScoreCache(10)
    secret = "my system prompt with a secret: hunter2"
    cache.get_or_compute(secret, len)
    (key,) = cache._entries  # noqa: SLF001 - what the cache holds is the point of this test
    assert isinstance(key, bytes) and len(key) == 16
    assert b"hunter2" not in key
    # Keyed per process: another cache gives the same text another digest.
    assert ScoreCache(10).digest(secret) != cache.digest(secret)


def test_zero_entries_turns_the_cache_off():
    cache: ScoreCache[int] = ScoreCache(0)
    calls = []
    for _ in range(3):
        cache.get_or_compute("x", lambda t: calls.append(t) or 1)
    assert len(calls) == 3 and len(cache) == 0
    with pytest.raises(ValueError):
        ScoreCache(-1)


def _conversations(n: int, seed: int = 0) -> list[list[str]]:
    """Growing conversations built from corpus rows of every kind, resent turn after turn."""
    rows = [r.text for r in load_rows()]
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        msgs = [rng.choice(rows)]
        for _turn in range(rng.randint(1, 6)):
            msgs.append(rng.choice(rows))
            out.append(list(msgs))
    return out


def test_cached_scores_equal_uncached_scores(guard):
    cached = LinearGuard(guard.model, guard.thresholds, cache_entries=1000)
    uncached = LinearGuard(guard.model, guard.thresholds, cache_entries=0)
    convs = _conversations(40)
    for texts in convs + convs:  # the second pass is served from the cache
        assert cached.score(texts) == uncached.score(texts)
    assert cached.cache.hits > cached.cache.misses


def test_a_resent_conversation_scores_only_its_new_texts(guard):
    g = LinearGuard(guard.model, guard.thresholds, cache_entries=1000)
    system = "You are a helpful assistant for Acme Bank's internal help desk.\n\nBe brief."
    g.score([system, "How do I reset my VPN token?"])
    misses = g.cache.misses
    g.score([system, "How do I reset my VPN token?", "Open the portal.", "Thanks, and my printer?"])
    # The system prompt and the first question are cached; the two new turns and the whole
    # conversation (their concatenation) are scored.
    assert g.cache.misses - misses == 3


def test_cache_is_safe_across_threads(guard):
    g = LinearGuard(guard.model, guard.thresholds, cache_entries=50)
    ref = LinearGuard(guard.model, guard.thresholds, cache_entries=0)
    convs = _conversations(20, seed=1)
    expected = [ref.score(t) for t in convs]
    errors: list[str] = []

    def work() -> None:
        for texts, want in zip(convs, expected):
            if g.score(texts) != want:
                errors.append("mismatch")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(g.cache) <= 50


def test_cache_size_comes_from_the_settings():
    assert load_guard(GuardSettings()).cache.max_entries == DEFAULT_SCORE_CACHE_ENTRIES > 0
    assert load_guard(GuardSettings(score_cache_entries=0)).cache.max_entries == 0
    with pytest.raises(ValueError):
        GuardSettings(score_cache_entries=-1)
