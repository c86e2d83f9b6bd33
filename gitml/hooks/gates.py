"""The gates part of the pre-commit hook.

When a declared model, its evaluation data or its declaration differs between the index
(what is being committed) and HEAD, run its gates on the STAGED versions, print each
failing gate and by how much, and block (return 1). The results are written to
``.gitml/checks/<model>.json`` and staged into the index being committed (Git exports
``GIT_INDEX_FILE`` to the hook; ``repo.git.stage`` honours it). Nothing changed → the
hook returns without importing anything heavy; changed but seen before → the cached
results are reused.
"""

from __future__ import annotations

import os
import sys
import time
import tomllib
from typing import TYPE_CHECKING, Any

from gitml.checks.results import ModelResult, results_relpath, write_results
from gitml.errors import ConfigError, GitMLError
from gitml.models.spec import ModelSpec, specs_from_section

if TYPE_CHECKING:
    from gitml.repo import MLRepo

CONFIG_PATH = ".gitml/config.toml"


def _say(msg: str) -> None:
    print(f"gitml gates: {msg}", file=sys.stderr)


def _models_section(repo: MLRepo, rev: str | None) -> dict[str, Any]:
    """``[models]`` of the config in the index (rev None) or at a commit."""
    blob = repo.git.read_blob(rev, CONFIG_PATH)
    if blob is None:
        if rev is None:  # never staged: fall back to the work tree's
            return repo.config.section("models")
        return {}
    try:
        data = tomllib.loads(blob.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{CONFIG_PATH} ({rev or 'staged'}): malformed TOML: {e}",
                          "fix the file and `git add` it") from e
    section = data.get("models", {})
    return section if isinstance(section, dict) else {}


def _ids(repo: MLRepo, spec: ModelSpec, rev: str | None) -> tuple[str | None, str | None]:
    from gitml.models.load import locate

    out: list[str | None] = []
    for path in (spec.path, spec.data):
        try:
            out.append(locate(repo, path, rev, True).oid)
        except GitMLError:
            out.append(None)
    return out[0], out[1]


def changed_models(repo: MLRepo) -> tuple[list[ModelSpec], list[str]]:
    """Declared models whose model, data or declaration differ between index and HEAD."""
    staged_section = _models_section(repo, None)
    if not staged_section:
        return [], []
    head = repo.git.head()
    head_section = _models_section(repo, head) if head else {}
    specs = specs_from_section(staged_section)
    changed: list[ModelSpec] = []
    notes: list[str] = []
    for spec in specs:
        model_oid, data_oid = _ids(repo, spec, None)
        if model_oid is None or data_oid is None:
            missing = spec.path if model_oid is None else spec.data
            notes.append(f"{spec.name}: {missing} is not staged; gates not run")
            continue
        if head is None or head_section.get(spec.name) != staged_section.get(spec.name):
            changed.append(spec)
            continue
        if (model_oid, data_oid) != _ids(repo, spec, head):
            changed.append(spec)
    return changed, notes


def format_failure(res: ModelResult) -> list[str]:
    return [f"{res.model}: {g.gate} FAILED: {g.message}" for g in res.failures]


def _restore_results(repo: MLRepo, names: list[str]) -> None:
    """Re-stage committed results files missing from the index.

    ``git commit -- PATHS`` (``--only``) commits a temporary index: the results staged
    there reach the commit, but Git leaves them out of the real index, which then shows
    them as deleted. The next commit would record that deletion; this puts them back.
    """
    head = repo.git.head()
    if head is None:
        return
    missing = []
    for name in names:
        rel = results_relpath(name)
        if repo.git.read_blob(None, rel) is None and repo.git.read_blob(head, rel) is not None \
                and (repo.workdir / rel).is_file():
            missing.append(rel)
    if missing:
        repo.git.stage(missing)


def run_pre_commit(repo: MLRepo) -> int:
    """The pre-commit gates: 0 lets the commit through, 1 blocks it."""
    if os.environ.get("GITML_SKIP_GATES") == "1":
        _say("skipped (GITML_SKIP_GATES=1)")
        return 0
    t0 = time.perf_counter()
    _restore_results(repo, list(_models_section(repo, None)))
    changed, notes = changed_models(repo)
    for n in notes:
        _say(n)
    if not changed:
        return 0
    from gitml.checks.runner import run_checks

    results = run_checks(repo, staged=True, specs=changed)
    blocked = False
    to_stage: list[str] = []
    for res in results:
        state = "cached" if res.cached else f"{res.seconds:.1f}s"
        if res.passed:
            warn = [g for g in res.results if not g.passed]
            _say(f"{res.model}: {len(res.results)} gates passed ({state})"
                 + (f"; {len(warn)} non-blocking warning(s)" if warn else ""))
            for g in warn:
                _say(f"{res.model}: warning: {g.gate}: {g.message}")
        else:
            blocked = True
            for line in format_failure(res):
                _say(line)
        write_results(repo.workdir, res)
        to_stage.append(results_relpath(res.model))
    if blocked:
        _say(f"commit blocked ({time.perf_counter() - t0:.1f}s); fix the model or data, "
             "see `git ml check`, or bypass with `git commit --no-verify`")
        return 1
    repo.git.stage(to_stage)
    return 0
