"""System prompts an operator vouches for: their lines are not screened again.

A coding agent sends a long, instruction-heavy system prompt that the
built-in classifier reads as a jailbreak (docs/guard.md, "Coding agents").
An operator who has read the prompts of the agents their organisation runs
lists them under ``guard.trusted_system_prompts`` (text files, paths relative
to the config).  Every line of those files becomes a trusted line; in a
request's *system* texts, lines that are trusted are left out before the guard
scores them, and every other line (the agent's environment block, a project's
own instructions, anything an attacker adds) is screened as usual, on its own
and joined with the conversation.  User, assistant and tool texts are never
touched.  Lines are compared exactly, after stripping surrounding whitespace,
so a trusted prompt with one word changed is a new line and is screened.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path


class TrustedPrompts:
    """The trusted lines of the configured prompt files; ``residual`` is a system text less those lines."""

    def __init__(self, lines: Iterable[str]) -> None:
        self.lines = frozenset(line.strip() for line in lines if line.strip())
        self.residual = lru_cache(maxsize=256)(self._residual)  # an agent resends its prompt every turn

    @classmethod
    def load(cls, paths: list[str], config_dir: Path | None = None) -> "TrustedPrompts | None":
        """The prompts in ``paths`` (None when there are none); a file that cannot be read is an error."""
        if not paths:
            return None
        lines: list[str] = []
        for p in paths:
            path = Path(p)
            if not path.is_absolute() and config_dir is not None:
                path = config_dir / path
            try:
                lines.extend(path.read_text(encoding="utf-8").splitlines())
            except (OSError, UnicodeDecodeError) as e:
                raise ValueError(f"guard.trusted_system_prompts: cannot read {path}: {e}") from None
        return cls(lines)

    def _residual(self, text: str) -> str:
        return "\n".join(line for line in text.splitlines() if line.strip() and line.strip() not in self.lines)

    def screened(self, texts: list[str], roles: list[str] | None) -> list[str]:
        """``texts`` with the trusted lines of each system text left out (the others unchanged)."""
        if roles is None or len(roles) != len(texts):
            return texts
        return [self.residual(t) if r == "system" else t for t, r in zip(texts, roles)]
