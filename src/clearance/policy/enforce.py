"""Keep the invariants: check every directive, grant and approval change before it is committed.

``invariant_guard`` wraps a change made in a session.  When the config names
an invariants file (``policy.invariants``), it reads the store as it was,
lets the change run, reads the store again with the change flushed (not
committed) and checks every invariant at the current time and after.  A
change that breaks an invariant that held before is refused with the
counterexample (``InvariantViolation``, HTTP 409), unless the operator
overrides that invariant by id with a reason; each override is recorded in
``policy_invariant_overrides`` in the same transaction as the change.

Fail closed: an invariants file that cannot be read, a world that does not
compile, or an invariant the checker cannot decide refuses the change (an
undecidable invariant can be overridden like a broken one).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from clearance.config import Config
from clearance.policy.check import InvariantResult, check_invariants
from clearance.policy.clock import utc, utcnow
from clearance.policy.errors import Conflict, InvalidRequest
from clearance.policy.invariants import Invariant, InvariantError, load_invariants
from clearance.policy.tables import InvariantOverride
from clearance.policy.world import PolicyCompileError, load_world


class InvariantViolation(Conflict):
    """The change would break (or leave undecidable) one or more invariants."""

    code = "invariant_violation"

    def __init__(self, change: str, results: list[InvariantResult]) -> None:
        self.change = change
        self.results = results
        lines = [f"refused: {change} would break {len(results)} policy invariant(s):"]
        for r in results:
            lines.append(f"  {r.id} ({r.kind}{': ' + r.title if r.title else ''}): {r.status}")
            if r.counterexample is not None:
                lines.append(f"    counterexample: {r.counterexample.describe()}")
            if r.reason:
                lines.append(f"    {r.reason}")
        ids = " ".join(f"--override-invariant {r.id}" for r in results)
        lines.append(f"  to apply it anyway: {ids} --reason TEXT (recorded)")
        super().__init__("\n".join(lines))

    def to_json(self) -> list[dict]:
        return [r.to_json() for r in self.results]


class InvariantCheckError(Conflict):
    """The invariants could not be checked, so the change is refused (fail closed)."""

    code = "invariant_check_failed"


@dataclass
class GuardOutcome:
    """What the guard found: invariants checked, and those overridden (with their records)."""

    checked: int = 0
    overridden: list[str] = field(default_factory=list)


def configured_invariants(config: Config) -> list[Invariant] | None:
    """The config's invariants, ``None`` when it names no file; raises ``InvariantCheckError``."""
    if not config.policy.invariants:
        return None
    try:
        return load_invariants(config.resolve(config.policy.invariants))
    except InvariantError as e:
        raise InvariantCheckError(f"refused: the policy invariants cannot be read ({e})") from None


@contextmanager
def invariant_guard(session: Session, config: Config, change: str, overrides: Sequence[str] = (),
                    reason: str = "", by: str = "") -> Iterator[GuardOutcome]:
    """Run the change in the ``with`` body, then refuse it if it breaks an invariant (see the module)."""
    outcome = GuardOutcome()
    invariants = configured_invariants(config)
    overrides = [o for o in (overrides or ()) if o]
    if invariants is None:
        if overrides:
            raise InvalidRequest("--override-invariant given, but the config names no invariants file "
                                 "(policy.invariants)")
        yield outcome
        return
    known = {i.id for i in invariants}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise InvalidRequest(f"no invariant {', '.join(unknown)} (known: {', '.join(sorted(known)) or 'none'})")
    if overrides and not (reason or "").strip():
        raise InvalidRequest("overriding an invariant needs a reason (--reason TEXT); it is recorded")
    now = utcnow()
    try:
        before = load_world(session, config, now=now)
    except PolicyCompileError as e:
        raise InvariantCheckError(f"refused: the current policy does not compile, so invariants cannot be "
                                  f"checked ({e})") from None
    yield outcome
    session.flush()
    try:
        after = check_invariants(load_world(session, config, now=now), invariants, now=now)
    except PolicyCompileError as e:
        raise InvariantCheckError(f"refused: with this change the policy does not compile ({e})") from None
    except Exception as e:  # noqa: BLE001 - a checker that fails cannot vouch for the change: refuse it
        raise InvariantCheckError(f"refused: the invariant check failed ({type(e).__name__}: {e})") from None
    outcome.checked = len(after.results)
    failed = after.failed()
    if not failed:
        return
    # Only what this change breaks: an invariant already violated before it is not this change's doing.
    try:
        was = {r.id: r.status for r in check_invariants(before, invariants, now=now).results}
    except Exception:  # noqa: BLE001 - unknown before: every failure counts as this change's
        was = {}
    broken = [r for r in failed if r.status == "undecidable" or was.get(r.id) == "holds"]
    blocking = [r for r in broken if r.id not in overrides]
    if blocking:
        raise InvariantViolation(change, blocking)
    for r in broken:
        session.add(InvariantOverride(
            at=now, invariant_id=r.id, change=change[:300], actor=by or "", reason=reason.strip(),
            counterexample=json.dumps(r.to_json(), sort_keys=True)))
        outcome.overridden.append(r.id)
    session.flush()


def list_overrides(session: Session) -> list[dict]:
    """Every recorded override, oldest first."""
    from sqlalchemy import select

    rows = session.execute(select(InvariantOverride).order_by(InvariantOverride.seq)).scalars()
    return [{"seq": r.seq, "at": utc(r.at).isoformat(), "invariant": r.invariant_id, "change": r.change,
             "by": r.actor, "reason": r.reason, "counterexample": json.loads(r.counterexample or "null")}
            for r in rows]
