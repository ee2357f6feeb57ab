"""Build ``data/handwritten/benign-agents.txt`` from the pieces in ``pieces.py`` (seeded, deterministic)."""

from __future__ import annotations

import random
import sys
from pathlib import Path

from clearance.guard.agentdata import pieces

HANDWRITTEN = Path(__file__).resolve().parents[1] / "data" / "handwritten"
# Trained on (MANIFEST.json, family benign-hw-agents): context blocks around user turns.
OUT = HANDWRITTEN / "benign-agents.txt"
# Measured and not trained on (docs/guard.md, "Coding agents"): whole agent system prompts.
OUT_SYSTEM = HANDWRITTEN / "benign-agents-system-prompts.txt"
SEED = 20261206


def _system_prompt(rng: random.Random) -> str:
    opening = rng.choice(pieces.OPENINGS)
    body = rng.sample(pieces.SECTIONS, rng.randint(4, 9))
    tools = rng.sample(pieces.TOOLS, rng.randint(0, 3))
    parts = [opening, *body]
    if tools:
        parts.append(rng.choice(pieces.TOOL_HEADINGS) + "\n" + "\n".join(tools))
    parts.append(rng.choice(pieces.ENVIRONMENTS))
    return "\n\n".join(parts)


def _user_turn(rng: random.Random) -> str:
    wrapper = rng.choice(pieces.CONTEXT_WRAPPERS)
    notes = "\n".join(rng.sample(pieces.CONTEXT_NOTES, rng.randint(1, 3)))
    return wrapper.format(notes=notes) + "\n\n" + rng.choice(pieces.TASKS)


def build(seed: int = SEED) -> tuple[list[str], list[str]]:
    """40 agent system prompts and 40 user turns with a context block, from one generator."""
    rng = random.Random(seed)
    systems = [_system_prompt(rng) for _ in range(40)]
    turns = [_user_turn(rng) for _ in range(40)]
    return systems, turns


def main() -> int:
    systems, turns = build()
    for path, rows in ((OUT, turns), (OUT_SYSTEM, systems)):
        path.write_text("".join(r.replace("\n", "\\n") + "\n" for r in rows), encoding="utf-8")
        print(f"wrote {len(rows)} rows to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
