"""The partial results file: JSON lines appended as results arrive, so a run can resume.

The first line is a header naming the run (suite fingerprint, target, model,
judge); every further line is one judged result with the target's answer.
A run resumes only from a file whose header matches, and only skips items
that finished without an error, so errors are retried.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from pathlib import Path
from typing import IO, Any

from clearance.assess.metrics import Result

_RESULT_FIELDS = {f.name for f in fields(Result)}


class PartialFileError(ValueError):
    """A partial results file that belongs to another run or cannot be read."""


def result_to_row(result: Result, response: str) -> dict[str, Any]:
    row = asdict(result)
    row["reasons"] = list(result.reasons)
    return {"result": row, "response": response}


def row_to_result(row: dict[str, Any]) -> Result:
    data = {k: v for k, v in row["result"].items() if k in _RESULT_FIELDS}
    data["reasons"] = tuple(data.get("reasons") or ())
    return Result(**data)


def load(path: Path, header: dict[str, Any]) -> tuple[dict[str, Result], dict[str, str]]:
    """Finished results and responses by item id from an existing file with a matching header.

    Later lines win over earlier ones (a retried error is replaced); a torn
    last line from an interrupted write is ignored.
    """
    results: dict[str, Result] = {}
    responses: dict[str, str] = {}
    with path.open(encoding="utf-8") as f:
        first = f.readline()
        try:
            found = json.loads(first).get("header")
        except ValueError:
            found = None
        if not isinstance(found, dict):
            raise PartialFileError(f"{path} is not a Clearance assess results file")
        mismatched = [k for k in ("fingerprint", "base_url", "model", "judge") if found.get(k) != header.get(k)]
        if mismatched:
            raise PartialFileError(f"{path} belongs to a different run ({', '.join(mismatched)} differ); "
                                   "use --fresh to start over or choose another --out")
        for line in f:
            try:
                row = json.loads(line)
                res = row_to_result(row)
            except (ValueError, KeyError, TypeError):
                continue
            results[res.item_id] = res
            responses[res.item_id] = str(row.get("response", ""))
    done = {k: v for k, v in results.items() if v.outcome != "error"}
    return done, {k: responses[k] for k in done}


class PartialWriter:
    """Appends results to the partial file, one flushed line each."""

    def __init__(self, path: Path, header: dict[str, Any], fresh: bool) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        new = fresh or not path.exists() or path.stat().st_size == 0
        torn = not new and not path.read_bytes().endswith(b"\n")
        self._f: IO[str] = path.open("w" if new else "a", encoding="utf-8")
        if torn:  # an interrupted write left half a line: end it so the next row stays readable
            self._f.write("\n")
        if new:
            self._f.write(json.dumps({"header": header}) + "\n")
            self._f.flush()

    def write(self, result: Result, response: str) -> None:
        self._f.write(json.dumps(result_to_row(result, response), ensure_ascii=False) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()
