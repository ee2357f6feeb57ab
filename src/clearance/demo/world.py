"""The demo world: the situation Clearance exists for, replayed on loopback.

Three models — ``frontier-cyber`` (a cyber-capable frontier model),
``frontier-general`` and ``open-local`` (a self-hosted open-weight model, the
fallback of both) — served by SIMULATED upstreams, four verified personas:
``us-defender`` (US person at gridco, critical infrastructure),
``us-analyst`` (US person at acme-bank), ``intl-researcher`` (non-US person
at eu-lab) and ``gov-evaluator`` (US person at standards-lab, an evaluator),
and one whose identity is not verified yet: ``intl-guest`` (non-US person at
eu-lab).

Every verified persona may use ``frontier-cyber`` for benign and low-risk
security work; the guard policies refuse prohibited cyber requests
(ransomware, sabotage, ...) to everyone and serve high-risk dual use
(exploits, pen testing, ...) only to ``us-defender``, a verified user of a
critical-infrastructure org.  ``intl-guest`` has the general models only.
The demo's commitments are written down as policy invariants
(``demo/invariants.yaml``), checked at start and before every change.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from clearance.config import Config, load_config

PERSONAS = {
    # persona: (org, org groups, nationality, us_person, verified, declared use case)
    "us-defender": ("gridco", ("critical-infrastructure",), "US", True, True, "grid-security-operations"),
    "us-analyst": ("acme-bank", (), "US", True, True, "fraud-analytics"),
    "intl-researcher": ("eu-lab", (), "DE", False, True, "ml-research"),
    "gov-evaluator": ("standards-lab", ("evaluators",), "US", True, True, "pre-release-evaluation"),
    "intl-guest": ("eu-lab", (), "FR", False, False, "ml-research"),
}
ORG_NAMES = {"gridco": "GridCo Power & Light", "acme-bank": "Acme Bank", "eu-lab": "EU Research Lab",
             "standards-lab": "National Standards Lab"}


def demo_policy_files() -> list[str]:
    """The base policy files the demo ships (reviewed like code)."""
    from importlib.resources import files

    folder = files("clearance.policy") / "policies"
    return [str(folder / "demo.cedar")]


def demo_invariants_file() -> str:
    """The demo's policy invariants (what its rules promise), shipped with the package."""
    from importlib.resources import files

    return str(files("clearance.demo") / "invariants.yaml")


AGENT_PROMPTS = "agent-prompts.txt"  # in the state folder: trusted agent system prompts, when present


def demo_config(state_dir: Path, port: int, lab_port: int, local_port: int) -> dict:
    lab = f"http://127.0.0.1:{lab_port}"
    local = f"http://127.0.0.1:{local_port}/v1"
    return {
        "state_dir": ".",
        "server": {"host": "127.0.0.1", "port": port, "log_format": "text", "log_level": "INFO"},
        "backends": [
            # SIMULATED hosted frontier lab (Anthropic Messages API); demo and tests only.
            {"name": "frontier-lab-cyber", "kind": "anthropic", "base_url": lab, "model": "lab-cyber-2026-06",
             "api_key_env": "FRONTIER_LAB_API_KEY", "timeout_seconds": 30},
            {"name": "frontier-lab-general", "kind": "anthropic", "base_url": lab, "model": "lab-general-2026-06",
             "api_key_env": "FRONTIER_LAB_API_KEY", "timeout_seconds": 30},
            # SIMULATED self-hosted open-weight model server (OpenAI-compatible, like vLLM).
            {"name": "local-vllm", "kind": "openai", "base_url": local, "model": "open-weights-70b",
             "self_hosted": True, "timeout_seconds": 30},
        ],
        "models": [
            {"name": "frontier-cyber", "family": "frontier", "backends": ["frontier-lab-cyber", "local-vllm"],
             "description": "Cyber-capable frontier model: high-risk dual-use help only for vetted organisations",
             "attributes": {"approval_required": False, "cyber_capable": True}},
            {"name": "frontier-general", "family": "frontier", "backends": ["frontier-lab-general", "local-vllm"],
             "description": "General frontier model"},
            {"name": "open-local", "family": "open-weight", "backends": ["local-vllm"],
             "description": "Self-hosted open-weight model; data stays on the organisation's machines"},
        ],
        "policy": {"files": demo_policy_files(), "invariants": demo_invariants_file()},
        "audit": {"signing_key": "audit-signing.key"},
        # The web console at /console; `clearance demo` prints a compliance officer's sign-in token.
        "console": {"enabled": True},
        # System prompts of the operator's own agents, vouched for (guard/trusted.py): written by
        # `clearance guard capture-prompts --out <state dir>/agent-prompts.txt -- <agent>`.
        **({"guard": {"trusted_system_prompts": [AGENT_PROMPTS]}} if (state_dir / AGENT_PROMPTS).exists() else {}),
    }


def write_demo_config(state_dir: Path, port: int, lab_port: int, local_port: int) -> Path:
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / "clearance.yaml"
    header = ("# Written by `clearance demo` and rewritten at each start (the simulated upstreams get new ports).\n"
              "# The backends below are SIMULATED model servers for the demo; never use them in production.\n")
    path.write_text(header + yaml.safe_dump(demo_config(state_dir, port, lab_port, local_port), sort_keys=False))
    return path


def create_world(config: Config) -> dict[str, str]:
    """Create the demo orgs, users and keys once; return ``{persona: api key}``."""
    from clearance.cli import open_store
    from clearance.identity import service
    from clearance.identity.tables import Org

    keys_path = config.state_dir / "demo-keys.json"
    sessions = open_store(config)
    with sessions() as s:
        if s.get(Org, "gridco") is not None and keys_path.exists():
            return json.loads(keys_path.read_text())
        keys: dict[str, str] = {}
        for persona, (org, groups, nat, us, verified, use_case) in PERSONAS.items():
            if s.get(Org, org) is None:
                service.add_org(s, org, ORG_NAMES[org], groups)
            if s.get(service.User, persona) is None:
                service.add_user(s, persona, org, nationality=nat, us_person=us, verified=verified,
                                 email=f"{persona}@{org}.example")
            keys[persona] = service.create_key(s, persona, name="demo", use_case=use_case).key
        s.commit()
    keys_path.write_text(json.dumps(keys, indent=2) + "\n")
    keys_path.chmod(0o600)
    return keys


CONSOLE_ADMIN = "compliance-officer"


def console_admin_token(config: Config) -> str:
    """A fresh sign-in token for the demo's compliance officer (created on first start, rotated after).

    The change is recorded in the audit log like the CLI's ``clearance admin add|rotate``.
    """
    from datetime import timedelta

    from clearance.audit import changes
    from clearance.cli import open_store
    from clearance.identity import admins
    from clearance.identity.tables import Admin

    sessions = open_store(config)
    with sessions() as s:
        if s.get(Admin, CONSOLE_ADMIN) is None:
            created = admins.add_admin(s, CONSOLE_ADMIN, "compliance", created_by="demo", lifetime=timedelta(days=7))
        else:
            created = admins.rotate_token(s, CONSOLE_ADMIN, timedelta(days=7))
        s.commit()
        noted = changes.take(s)
    changes.write_sync(config, sessions.kw["bind"], noted, admins.local_actor().label)
    path = config.state_dir / "demo-console-token"
    path.write_text(created.token + "\n")
    path.chmod(0o600)
    return created.token


def load_demo(state_dir: Path) -> tuple[Config, dict[str, str]]:
    config = load_config(state_dir / "clearance.yaml")
    return config, create_world(config)
