"""Guard settings: validation, per-model overrides, Cedar context."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from clearance.guard import cedar_context
from clearance.guard.settings import GuardSettings
from clearance.types import GuardScores


def test_defaults_use_builtin():
    s = GuardSettings()
    assert s.guard_for("anything") == ("builtin", True)
    assert set(s.thresholds) >= {"jailbreak", "cyber_offense"}


def test_unknown_guard_rejected():
    with pytest.raises(ValidationError):
        GuardSettings(models={"m": {"guard": "nope"}})
    with pytest.raises(ValidationError):
        GuardSettings(default="nope")


def test_threshold_range_checked():
    with pytest.raises(ValidationError):
        GuardSettings(thresholds={"jailbreak": 1.5})


def test_per_model_override():
    s = GuardSettings(guards={"lg": {"kind": "llama_guard", "url": "http://127.0.0.1:1/v1/chat/completions"}},
                      models={"frontier-cyber": {"guard": "lg", "required": False}})
    assert s.guard_for("frontier-cyber") == ("lg", False)


def test_cedar_context_decimals():
    ctx = cedar_context(GuardScores(scores={"jailbreak": 0.97123, "cyber_offense": 0.02}, guard="builtin"))
    assert ctx["jailbreak"] == {"__extn": {"fn": "decimal", "arg": "0.9712"}}
    assert ctx["cyber_offense"]["__extn"]["arg"] == "0.0200"
    assert ctx["error"] is False
    err = cedar_context(GuardScores(error="down", guard="lg"))
    assert err["error"] is True and err["jailbreak"]["__extn"]["arg"] == "0.0000"
