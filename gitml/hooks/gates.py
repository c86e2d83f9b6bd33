"""The gates part of the pre-commit hook.

When a declared model, its evaluation data or its declaration differs between the index
(what is being committed) and HEAD, run its gates on the STAGED versions, print each
failing gate and by how much, and block (return 1). The results are written to
``.gitml/checks/<model>.json`` and staged into the index being committed (Git exports
``GIT_INDEX_FILE`` to the hook; ``repo.git.stage`` honours it). Nothing changed → the
hook returns without importing anything heavy; changed but seen before → the cached
results are reused.

Data sets with ``[data."<path>".rules]`` are validated whenever their staged version (or
their rules) differ from HEAD's, whether or not a model uses them.

Fail closed: a declared model or data set whose files do not exist, a baseline that names
nothing, a setting out of range, or a crashed gate stops the commit with the reason.
"""

from __future__ import annotations

import os
import sys
import time
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitml.checks.results import ModelResult, results_relpath, write_results
from gitml.errors import ConfigError
from gitml.models.spec import ModelSpec, specs_from_section

if TYPE_CHECKING:
    from gitml.repo import MLRepo

CONFIG_PATH = ".gitml/config.toml"
INDEX = ":"


def _say(msg: str) -> None:
    print(f"gitml gates: {msg}", file=sys.stderr)


def _config_at(repo: MLRepo, rev: str | None) -> dict[str, Any]:
    """The committed config in the index (rev None) or at a commit."""
    blob = repo.git.read_blob(rev, CONFIG_PATH)
    if blob is None:
        if rev is None:  # never staged: fall back to the work tree's
            return repo.config.committed
        return {}
    try:
        data = tomllib.loads(blob.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{CONFIG_PATH} ({rev or 'staged'}): malformed TOML: {e}",
                          "fix the file and `git add` it") from e
    return data


def _section(config: dict[str, Any], name: str) -> dict[str, Any]:
    section = config.get(name, {})
    if not isinstance(section, dict):
        raise ConfigError(f"{CONFIG_PATH}: [{name}] must be a table")
    return section


def _oid(repo: MLRepo, path: str, rev: str) -> str | None:
    from gitml.artifacts import api

    found = api.find(path, rev, repo)
    return found.oid if found else None


def _staged_oid(repo: MLRepo, path: str, key: str) -> str:
    """The staged id of a declared path; a path that is not there is an error."""
    oid = _oid(repo, path, INDEX)
    if oid is None:
        exists = (repo.workdir / path).exists()
        raise ConfigError(f"{key}: {path} is {'not staged' if exists else 'not found'}",
                          f"`git ml add {path}` and stage it" if exists else
                          "fix the path in .gitml/config.toml (or add the file)")
    return oid


def changed_models(repo: MLRepo) -> list[ModelSpec]:
    """Declared models whose model, data or declaration differ between index and HEAD."""
    from gitml.checks.registry import validate_settings

    staged_section = _section(_config_at(repo, None), "models")
    if not staged_section:
        return []
    head = repo.git.head()
    head_section = _section(_config_at(repo, head), "models") if head else {}
    changed: list[ModelSpec] = []
    for spec in specs_from_section(staged_section):
        validate_settings(spec)
        ids = (_staged_oid(repo, spec.path, spec.key("path")),
               _staged_oid(repo, spec.data, spec.key("data")))
        if head is None or head_section.get(spec.name) != staged_section.get(spec.name) \
                or ids != (_oid(repo, spec.path, head), _oid(repo, spec.data, head)):
            changed.append(spec)
    return changed


def changed_data(repo: MLRepo) -> list[tuple[str, Any]]:
    """``(path, rules)`` of the declared data sets whose staged version or rules differ
    from HEAD's. Rules are parsed (and range-checked) for every declared data set."""
    from gitml.checks.quality.rules import rules_for

    staged = _config_at(repo, None)
    declared = _section(staged, "data")
    if not declared:
        return []
    head = repo.git.head()
    head_declared = _section(_config_at(repo, head), "data") if head else {}
    out: list[tuple[str, Any]] = []
    for path in sorted(declared):
        entry = declared[path]
        if not isinstance(entry, dict) or "rules" not in entry:
            continue
        rules = rules_for(staged, path)
        oid = _staged_oid(repo, path, f'data."{path}"')
        if head is None or head_declared.get(path) != entry or oid != _oid(repo, path, head):
            out.append((path, rules))
    return out


def format_failure(res: ModelResult) -> list[str]:
    return [f"{res.model}: {g.gate} FAILED: {g.message}" for g in res.failures]


def summary(res: ModelResult) -> list[str]:
    """The hook's lines for a model that passed: counts, then each skipped gate and each
    non-blocking warning (a skipped gate did not pass: it had nothing to compare)."""
    state = "cached" if res.cached else f"{res.seconds:.1f}s"
    skipped = [g for g in res.results if g.skipped]
    warn = [g for g in res.results if not g.passed and not g.skipped]
    passed = len(res.results) - len(skipped) - len(warn)
    head = f"{res.model}: {passed} gates passed"
    if skipped:
        head += f", {len(skipped)} skipped"
    if warn:
        head += f", {len(warn)} non-blocking warning(s)"
    lines = [f"{head} ({state})"]
    lines += [f"{res.model}: skipped: {g.gate}: {g.message}" for g in skipped]
    lines += [f"{res.model}: warning: {g.gate}: {g.message}" for g in warn]
    return lines


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


def _blocked_results_dir(repo: MLRepo) -> Path:
    # outside the work tree: a blocked commit must not leave a tracked file modified
    return repo.ml_dir / "checks" / "blocked"


def _check_data(repo: MLRepo, data: list[tuple[str, Any]]) -> bool:
    """Validate the changed data sets; True when one blocks."""
    from gitml.checks.quality import validate_path

    head = repo.git.head()
    blocked = False
    for path, rules in data:
        res = validate_path(repo, path, head, rules, current_rev=INDEX)
        blocked |= res.blocks
        _say(f"data {path}: quality {'FAILED' if res.blocks else 'passed'}: {res.message}")
    return blocked


def _check_models(repo: MLRepo, specs: list[ModelSpec]) -> tuple[list[ModelResult], bool]:
    """Run the changed models' gates on the staged versions; (results, blocked)."""
    if not specs:
        return [], False
    from gitml.checks.runner import run_checks

    results = run_checks(repo, staged=True, specs=specs)
    for res in results:
        for line in summary(res) if res.passed else format_failure(res):
            _say(line)
    return results, not all(res.passed for res in results)


def run_pre_commit(repo: MLRepo) -> int:
    """The pre-commit gates: 0 lets the commit through, 1 blocks it."""
    if os.environ.get("GITML_SKIP_GATES") == "1":
        _say("skipped (GITML_SKIP_GATES=1)")
        return 0
    t0 = time.perf_counter()
    _restore_results(repo, list(_section(_config_at(repo, None), "models")))
    changed = changed_models(repo)
    data = changed_data(repo)
    if not changed and not data:
        return 0
    data_blocked = _check_data(repo, data)
    results, models_blocked = _check_models(repo, changed)
    if data_blocked or models_blocked:
        where = _blocked_results_dir(repo)
        for res in results:
            write_results(where, res, relpath=f"{res.model}.json")
        _say(f"commit blocked ({time.perf_counter() - t0:.1f}s); fix the model or data, "
             f"see `git ml check --staged` (results in {where}), "
             "or bypass with `git commit --no-verify`")
        return 1
    for res in results:
        write_results(repo.workdir, res)
    if results:
        repo.git.stage([results_relpath(res.model) for res in results])
    return 0
