"""Self-healing: roll back a version whose live errors, latency or metric broke the limits
learned from the traffic before it, and retire a version that keeps failing.

Only figures that speak about the *model version* trigger a rollback (errors, latency,
the live metric); drift says the world moved, which a rollback cannot fix (that is the
retraining's job). Requests refused with a 4xx (client_errors) are the version's fault only
when the refusals began with it (a new version that no longer takes what clients send):
they roll back only when the alarm's excursion started in the version's first window or the
one after, with an earlier version's windows before it; otherwise the clients changed. The rollback goes through the registry (:func:`gitml.registry.deploy.
rollback`), so it is recorded in Git with its reason like any other; the monitor's own
event log keeps the figures that triggered it for the report. A version rolled back by
the monitor ``max_failures`` times (default 2) is deregistered with GTO's ``name@vX.Y.Z!``
tag, so no stage assignment or tag hook deploys it again by accident.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gitml.errors import GitMLError

if TYPE_CHECKING:
    from gitml.monitor.check import Alarm, MonitorResult
    from gitml.repo import MLRepo

HEALING_FIGURES = ("errors", "client_errors", "latency", "metric")
REASON_PREFIX = "monitor:"


def _why(alarms: list[Alarm]) -> str:
    parts = []
    for a in alarms:
        lim = f"{a.limit:.4g}" if a.limit is not None else "?"
        val = f"{a.value:.4g}" if a.value is not None else "?"
        lvl = f"{a.level:.4g}" if a.level is not None else "?"
        parts.append(f"{a.figure} {val} beyond its learned limit {lim} (level {lvl}) in window {a.window}")
    return f"{REASON_PREFIX} " + "; ".join(parts)


def failures(repo: MLRepo, name: str, version: str, target: str | None = None) -> int:
    """How often the monitor rolled ``version`` back (from the deploy records in Git)."""
    from gitml.registry import records

    return sum(1 for r in records.read_records(repo.git, target, name)
               if r.get("action") == "rollback" and str(r.get("from")) == version
               and str(r.get("reason", "")).startswith(REASON_PREFIX))


def began_with_version(result: MonitorResult, alarm: Alarm) -> bool:
    """Did the excursion that raised ``alarm`` start when its version began serving (in the
    version's first window or the one after, with another version's windows before)?"""
    windows = result.windows
    points = result.series[alarm.figure].points
    i = next((j for j in range(len(windows) - 1, -1, -1)
              if windows[j].end == alarm.end and points[j].alarm), None)
    if i is None:
        return False
    first = i
    while first > 0 and windows[first - 1].version == alarm.version:
        first -= 1
    if first == 0:
        return False  # no earlier version in the log to compare the clients with
    start = i
    while start > 0 and points[start - 1].cusum > 0 and not points[start - 1].alarm:
        start -= 1
    return first <= start <= first + 1


def heal(repo: MLRepo, result: MonitorResult, *, target: str | None = None,
         max_failures: int | None = None) -> dict[str, Any]:
    """Act on the open alarms of ``result``; returns what was done (``events``)."""
    from gitml.monitor import events
    from gitml.monitor.config import monitor_config
    from gitml.registry import deploy
    from gitml.registry.settings import load_settings

    name = result.model
    settings_target = load_settings(repo).target(target)
    state = deploy.read_state(deploy.state_file(repo, settings_target.name, name))
    active = str(state.get("active")) if state and state.get("active") else None
    cfg = monitor_config(repo, name)
    max_failures = cfg.max_failures if max_failures is None else max_failures
    bad = [a for a in result.open_alarms if a.figure in HEALING_FIGURES and a.figure in cfg.heal_on
           and (a.figure != "client_errors" or began_with_version(result, a))]
    done: dict[str, Any] = {"active": active, "events": []}
    if not bad or active is None or active != result.version:
        return done  # nothing to heal, or the served version changed since the check
    reason = _why(bad)
    try:
        res = deploy.rollback(repo, name, settings_target.name, reason=reason, automatic=True)
    except GitMLError as e:
        ev = events.record(repo, name, "rollback-failed", version=active, reason=reason,
                           message=f"could not roll back {name} {active}: {e.message}")
        done["events"].append(ev)
        return done
    out = res.record.get("unassigned")
    taken = f"; {active} taken out of stage {out} ({res.record.get('unassign_tag')})" if out else ""
    ev = events.record(repo, name, "rollback", version=active, to=res.version, reason=reason,
                       unassigned=out, message=f"rolled {name} back from {active} to "
                                               f"{res.version}: {reason}{taken}")
    done["events"].append(ev)
    n = failures(repo, name, active, settings_target.name)
    if n >= max_failures:
        from gitml.registry import ops

        try:
            tag = ops.deprecate(repo, name, active,
                                message=f"Deregistering artifact {name} version v{active}: rolled back "
                                        f"by the monitor {n} times (last: {reason})")
        except GitMLError as e:
            ev = events.record(repo, name, "mark-failed", version=active, message=str(e))
        else:
            ev = events.record(repo, name, "mark", version=active, tag=tag.tag,
                               message=f"{name} {active} failed {n} times: deregistered ({tag.tag})")
        done["events"].append(ev)
    return done
