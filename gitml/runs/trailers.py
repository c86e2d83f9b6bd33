"""The commit-msg hook: summarise the staged manifest in trailers of the message.

Adds, with ``git interpret-trailers`` (so ``Signed-off-by`` and friends stay intact):

    Gitml-Manifest: <id over every staged pointer and manifest file>
    Gitml-Artifact: models/model.skops 3f2a9c0d1e4b
    Gitml-Run: train exit=0 in=3 out=1 env=0fda204266a5
    Gitml-Metric: accuracy=0.91
    Gitml-Check: churn passed (4/4 gates)

Only what this commit changes (pointers, run records, gate results) is summarised; a
commit that changes none of them gets no trailers. Earlier ``Gitml-*`` trailers are
replaced; when the message already carries HEAD's manifest id (``git commit --amend``)
changes are measured against HEAD's parent, so amending keeps the summary whole. An
empty message (aborted commit) is left alone.
"""

from __future__ import annotations

import sys
from pathlib import Path

from gitml.errors import GitMLError
from gitml.repo import MLRepo
from gitml.runs.errors import ManifestError
from gitml.runs.manifest import TRAILER_PREFIX, manifest_id
from gitml.runs.records import CHECKS_DIR, RUNS_DIR, check_passed, parse_check, parse_run_record

MAX_METRICS = 12
MAX_ARTIFACTS = 10


def _comment_char(repo: MLRepo) -> str:
    c = repo.git.get_config("core.commentChar") or "#"
    return "#" if c == "auto" else c[:1] or "#"


def _fmt(v: float) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def _base(repo: MLRepo, message: str) -> tuple[str | None, bool]:
    """The commit this commit's changes are measured against: HEAD, or HEAD's parent when
    the message being edited already carries HEAD's manifest id (``--amend``, ``-c HEAD``)."""
    from gitml.git import history
    from gitml.runs.manifest import parse_trailers

    head = repo.git.head()
    if head is None:
        return None, False
    old_id = next((v for k, v in parse_trailers(message) if k == "Gitml-Manifest"), None)
    if old_id and old_id == manifest_id(history.tree_manifest_entries(repo.git.raw, head).items()):
        return history.first_parent(repo.git.raw, head), True
    return head, False


def build_trailers(repo: MLRepo, message: str = "") -> list[tuple[str, str]]:
    """The trailers for the commit about to be made (from the index being committed)."""
    from gitml.git import history

    raw = repo.git.raw
    index = repo.git.index()
    base, _amend = _base(repo, message)
    changes = history.staged_changes(raw, index, base, (RUNS_DIR + "/", CHECKS_DIR + "/"))
    pointers = history.staged_pointer_changes(raw, index, base)
    runs = []
    checks = []
    for path, _old, new in changes:
        if new is None or not path.endswith(".json"):
            continue
        if path.startswith(RUNS_DIR + "/"):
            runs.append(parse_run_record(new, f"{path} (staged)"))
        else:
            checks.append((path[len(CHECKS_DIR) + 1:-5], parse_check(new, f"{path} (staged)")))
    if not runs and not checks and not pointers:
        return []
    out: list[tuple[str, str]] = [
        ("Gitml-Manifest", manifest_id(history.index_manifest_entries(index).items()))]
    out += _artifact_trailers(pointers)
    for rec in runs:
        env = f" env={rec.env[:12]}" if rec.env else ""
        out.append(("Gitml-Run", f"{rec.stage} exit={rec.exit_code} in={len(rec.inputs)} "
                                 f"out={len(rec.outputs)}{env}"))
    n = 0
    for rec in runs:
        for name, value in sorted(rec.metrics.items()):
            if n >= MAX_METRICS:
                break
            key = f"{rec.stage}.{name}" if len(runs) > 1 else name
            out.append(("Gitml-Metric", f"{key}={_fmt(value)}"))
            n += 1
    for name, check in checks:
        passed = check_passed(check)
        results = [r for r in check.get("results", []) if isinstance(r, dict)]
        ok = sum(1 for r in results if r.get("passed"))
        state = "passed" if passed else ("failed" if passed is False else "no-results")
        out.append(("Gitml-Check", f"{name} {state} ({ok}/{len(results)} gates)"))
    return out


def _artifact_trailers(pointers: list[tuple[str, str, bytes | None]]) -> list[tuple[str, str]]:
    from gitml.store import pointer as ptr

    out: list[tuple[str, str]] = []
    for path, status, data in pointers[:MAX_ARTIFACTS]:
        art = ptr.artifact_path_for(path)
        if data is None:
            out.append(("Gitml-Artifact", f"{art} deleted"))
            continue
        try:
            p = ptr.parse(data, f"{path} (staged)")
        except GitMLError:
            continue  # the pre-commit hook reports damaged pointers
        out.append(("Gitml-Artifact", f"{art} {p.oid[:12]}{' new' if status == 'A' else ''}"))
    if len(pointers) > MAX_ARTIFACTS:
        out.append(("Gitml-Artifact", f"... and {len(pointers) - MAX_ARTIFACTS} more"))
    return out


def _strip_gitml_trailers(text: str) -> str:
    lines = text.split("\n")
    kept = [ln for ln in lines if not ln.startswith(TRAILER_PREFIX)]
    return "\n".join(kept)


def apply_trailers(msg_file: Path, trailers: list[tuple[str, str]], comment: str = "#") -> bool:
    """Rewrite ``msg_file`` with ``trailers``; False when the message is empty (left alone)."""
    text = msg_file.read_text(encoding="utf-8")
    body = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith(comment)]
    if not body or not trailers:
        return False
    from gitml.git.trailers import add_trailers

    text = add_trailers(_strip_gitml_trailers(text), trailers)
    from gitml.store.fsutil import atomic_write_text

    atomic_write_text(msg_file, text)
    return True


def run_commit_msg(repo: MLRepo, msg_file: Path) -> int:
    """Body of the commit-msg hook. Non-zero stops the commit (a malformed staged record)."""
    try:
        message = msg_file.read_text(encoding="utf-8")
        trailers = build_trailers(repo, message)
    except ManifestError as e:
        print(f"gitml: commit-msg: {e}", file=sys.stderr)
        return 1
    if trailers:
        apply_trailers(msg_file, trailers, _comment_char(repo))
    return 0
