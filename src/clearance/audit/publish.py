"""Published checkpoints: each signed checkpoint also written as a file an auditor can mirror.

With ``audit.checkpoint_dir`` set, every checkpoint the log issues is written,
in the C2SP tlog-checkpoint format (the signed note exactly as stored), to

- ``DIR/checkpoints/<size>``: one file per checkpoint, never rewritten;
- ``DIR/checkpoint``: the newest (the location tlog-tiles clients read).

Files are written atomically (a temporary file, then a rename).  Someone who
distrusts the log's operator mirrors the folder as it grows (rsync, a static
web server, object storage with versioning); ``clearance audit verify
--checkpoints MIRROR`` then fails when the database disagrees with any
mirrored checkpoint: checkpoint rows deleted, entries edited and the tree
rewritten, the tail truncated.  A folder on the gateway's own host proves
nothing against an operator who controls that host: its value is in copies
held elsewhere.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger("clearance.audit")

NEWEST = "checkpoint"
HISTORY = "checkpoints"


def note_size(note: str) -> int:
    """The tree size a checkpoint note states (its second line)."""
    return int(note.split("\n", 2)[1])


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def publish(folder: Path, note: str) -> None:
    """Write ``note`` as ``checkpoints/<size>`` and, unless a newer one is there, as ``checkpoint``."""
    size = note_size(note)
    history = folder / HISTORY
    history.mkdir(parents=True, exist_ok=True)
    one = history / str(size)
    if not one.exists():
        _write(one, note)
    newest = folder / NEWEST
    try:
        current = note_size(newest.read_text(encoding="utf-8"))
    except (OSError, ValueError, IndexError):
        current = -1
    if size > current:
        _write(newest, note)


def update_newest(folder: Path, note: str) -> None:
    """Rewrite ``checkpoint`` with ``note`` (the newest checkpoint, now with witnesses' cosignatures)
    when it is of the same size; ``checkpoints/<size>`` stays as first written."""
    newest = folder / NEWEST
    try:
        same = note_size(newest.read_text(encoding="utf-8")) == note_size(note)
    except (OSError, ValueError, IndexError):
        same = False
    if same:
        _write(newest, note)


def read_published(folder: Path) -> list[tuple[str, str]]:
    """Every checkpoint file in a (mirrored) folder, as ``(path, text)``; raises OSError if unreadable."""
    files = [folder / NEWEST] if (folder / NEWEST).is_file() else []
    if (folder / HISTORY).is_dir():
        files += sorted(p for p in (folder / HISTORY).iterdir() if p.is_file() and not p.name.startswith("."))
    return [(str(p), p.read_text(encoding="utf-8")) for p in files]
