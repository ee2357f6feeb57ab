"""Shared values for policy tests: the demo-like personas, a reference instant and a config builder."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import clearance.policy
from clearance.config import Config

DEMO_POLICY = Path(clearance.policy.__file__).parent / "policies" / "demo.cedar"
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)

PERSONAS = {
    # user id: (org, nationality, us_person)
    "us-defender": ("gridco", "US", True),
    "us-analyst": ("acme-bank", "US", True),
    "intl-researcher": ("eu-lab", "DE", False),
    "gov-evaluator": ("standards-lab", "US", True),
    "intl-defender": ("euro-grid", "FR", False),
}
CRITICAL = ("gridco", "euro-grid")


def make_config(tmp_path: Path, **policy) -> Config:
    return Config.model_validate({
        "path": tmp_path / "clearance.yaml",
        "state_dir": tmp_path,
        "backends": [
            {"name": "frontier-api", "base_url": "http://127.0.0.1:9/v1"},
            {"name": "local", "base_url": "http://127.0.0.1:9/v1", "self_hosted": True},
        ],
        "models": [
            {"name": "frontier-cyber", "family": "frontier", "backends": ["frontier-api", "local"]},
            {"name": "frontier-general", "family": "frontier", "backends": ["frontier-api", "local"]},
            {"name": "open-local", "family": "open", "backends": ["local"]},
            {"name": "frontier-next", "family": "frontier", "backends": ["frontier-api"],
             "attributes": {"approval_required": True}},
        ],
        "policy": {"files": [str(DEMO_POLICY)], **policy},
    })


