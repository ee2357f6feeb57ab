"""A plain progress bar on stderr: redrawn in place on a terminal, a line per 10% otherwise."""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import TextIO

from clearance.assess.metrics import Result


class Progress:
    """Counts judged results and shows done/total, outcomes, rate and time left."""

    def __init__(self, stream: TextIO | None = None, width: int = 28) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.total = 0
        self.done = 0
        self.fresh = 0
        self.outcomes: Counter[str] = Counter()
        self.started = time.monotonic()
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_decile = -1

    def start(self, total: int, already_done: int) -> None:
        self.total, self.done = total, already_done
        self.started = time.monotonic()
        if already_done:
            self.stream.write(f"resuming: {already_done} of {total} requests already done\n")
        self._draw()

    def update(self, result: Result) -> None:
        self.done += 1
        self.fresh += 1
        self.outcomes[result.outcome] += 1
        self._draw()

    def line(self) -> str:
        frac = self.done / self.total if self.total else 1.0
        filled = int(frac * self.width)
        elapsed = time.monotonic() - self.started
        rate = self.fresh / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        counts = " ".join(f"{k} {self.outcomes[k]}" for k in ("blocked", "refused", "complied", "error"))
        return (f"assess [{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total} {frac:4.0%} | "
                f"{counts} | {rate:.1f} req/s, eta {int(eta) // 60}:{int(eta) % 60:02d}")

    def _draw(self) -> None:
        if self._tty:
            self.stream.write("\r" + self.line())
            self.stream.flush()
            return
        decile = int(10 * self.done / self.total) if self.total else 10
        if decile != self._last_decile:
            self._last_decile = decile
            self.stream.write(self.line() + "\n")
            self.stream.flush()

    def finish(self) -> None:
        if self._tty:
            self.stream.write("\n")
            self.stream.flush()
