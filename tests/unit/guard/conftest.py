"""Shared fixtures: the shipped guard, loaded once."""

from __future__ import annotations

import pytest

from clearance.guard import load_guard
from clearance.guard.settings import GuardSettings


@pytest.fixture(scope="session")
def guard():
    return load_guard(GuardSettings())
