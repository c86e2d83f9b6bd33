"""Deploy a registered model version (what a tag hook runs), and roll back.

``deploy(repo, "credit#prod")``:

1. resolve the stage or version to a registered version, its commit and its tags;
2. with ``deploy.require_signed``, ``git verify-tag`` them against the allowed signers;
3. refuse unless the commit's recorded gates passed for exactly its model and data;
4. build the bundle (artifacts fetched if missing, bytes verified against their ids);
5. add the version to the target's deploy state *beside* the serving one (start the
   server if none runs) and wait until every worker has loaded it;
6. smoke test at its versioned route: the bundle's evaluation rows must get the
   predictions recorded when the bundle was built;
7. switch ``active`` (the old version stays loaded, warm) and record the deploy in Git;
8. watch health and error rate for the grace window; on failure switch back by itself
   and record the rollback with its reason.

Every refusal is recorded too (``refused``), so ``git ml deployments`` says why a tag did
not ship. Nothing here starts a second copy of the server: it drives
``gitml.serve.control`` through the deploy-state file (docs/internal-api.md).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitml.errors import GitMLError
from gitml.git.registry import Artifact, Version, load
from gitml.git.tags import Action, Verification, parse, verify_tag
from gitml.models.spec import spec_at
from gitml.registry import gates, records
from gitml.registry.settings import DeploySettings, Target, load_settings
from gitml.repo import MLRepo
from gitml.store.fsutil import file_lock


class DeployRefused(GitMLError):
    """The version may not serve (unsigned, gates, ids, smoke); the old one still serves."""


@dataclass
class Release:
    """What a deploy reference names."""

    name: str
    version: Version
    tags: list[str]          # registration (and stage assignment) tags; the last one names it
    stage: str | None
    trigger: str             # the reference as given

    @property
    def v(self) -> str:
        return self.version.version.removeprefix("v")


@dataclass
class DeployResult:
    action: str              # deploy | rollback | refused | noop
    name: str
    version: str | None
    target: str
    url: str
    previous: str | None = None
    reason: str = ""
    record: dict[str, Any] = field(default_factory=dict)


# -- where things live --------------------------------------------------------------------

def target_dir(repo: MLRepo, target: str, name: str) -> Path:
    return repo.ml_dir / "deploy" / target / name


def state_file(repo: MLRepo, target: str, name: str) -> Path:
    return target_dir(repo, target, name) / "state.json"


def read_state(path: Path) -> dict[str, Any] | None:
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as e:
        raise GitMLError(f"{path}: malformed deploy state: {e}", "remove it and deploy again") from e
    return d if isinstance(d, dict) else None


# -- resolving ----------------------------------------------------------------------------

def resolve(repo: MLRepo, ref: str) -> Release:
    """``name#stage``, ``name@vX.Y.Z``, ``name@X.Y.Z`` or a full registry tag name."""
    parsed = parse(ref)
    if parsed is None and "@" in ref and not ref.split("@", 1)[1].startswith("v"):
        parsed = parse(ref.replace("@", "@v", 1))
    if parsed is None:
        raise GitMLError(f"{ref!r} names no model version or stage",
                         "use NAME#STAGE or NAME@vX.Y.Z, e.g. credit#prod")
    art: Artifact = load(repo.git, parsed.name).artifact(parsed.name)
    if not art.active:
        raise DeployRefused(f"{parsed.name} is deprecated", "register a new version")
    if parsed.action is Action.REGISTER:
        ver = art.find(parsed.version or "")
        if not ver.active:
            raise DeployRefused(f"{parsed.name} {ver.version} was deregistered")
        return Release(parsed.name, ver, _reg_tags(ver), None, ref)
    if parsed.action is Action.ASSIGN:
        stage = parsed.stage or ""
        current = art.stages().get(stage)
        if current is None:
            raise DeployRefused(f"no version of {parsed.name} is in stage {stage}")
        ver, ev = current
        return Release(parsed.name, ver, [*_reg_tags(ver), ev.tag], stage, ref)
    raise GitMLError(f"{ref!r} does not deploy anything ({parsed.action.value})",
                     "deploy a stage (NAME#STAGE) or a version (NAME@vX.Y.Z)")


def _reg_tags(ver: Version) -> list[str]:
    regs = [e for e in ver.registrations if e.action is Action.REGISTER]
    return [max(regs, key=lambda e: e.order).tag] if regs else []


# -- checks before anything runs ---------------------------------------------------------------

def check_signatures(repo: MLRepo, settings: DeploySettings, rel: Release) -> tuple[bool, str | None]:
    """(signed, signer). Raises DeployRefused when signatures are required and the tag that
    names what deploys is not signed by a trusted key: SSH, a key in the allowed-signers
    file; GPG, a good signature (``git verify-tag --raw`` reports VALIDSIG) whose primary
    key's fingerprint is in ``deploy.allowed_gpg_fingerprints``. Anything else is refused."""
    if not settings.require_signed:
        return False, None
    signers = settings.allowed_signers
    if signers and not Path(signers).is_file():
        signers = None
    fprs = settings.allowed_gpg_fingerprints
    if signers is None and not fprs:
        raise DeployRefused("deploy.require_signed is set but no key is trusted (allowed-signers file: "
                            f"{settings.allowed_signers or 'deploy.allowed_signers unset'}; "
                            "deploy.allowed_gpg_fingerprints: none)",
                            "set deploy.allowed_signers (SSH) or deploy.allowed_gpg_fingerprints "
                            "(GPG) in the serving host's .git/ml/config.local.toml")
    if not rel.tags:
        raise DeployRefused(f"{rel.trigger}: no tag names this version")
    # the tag that names what deploys (the stage assignment, or the registration) points at
    # the exact commit that will serve: its signature is the one that must be trusted
    tag = rel.tags[-1]
    v = verify_tag(repo.git, tag, signers)
    why = _untrusted(v, signers, fprs)
    if why is not None:
        raise DeployRefused(f"tag {tag} is not trusted: {why}",
                            "sign it with a trusted key (`git tag -s`; SSH: a key in the "
                            "allowed-signers file, GPG: a key in deploy.allowed_gpg_fingerprints)")
    return True, v.signer


def _untrusted(v: Verification, signers: str | None, fprs: list[str]) -> str | None:
    """Why a verified tag may not deploy (None: it may)."""
    if v.kind == "gpg":
        if not v.ok:
            return str(v.reason)
        if not fprs:
            return f"signed with GPG (key {v.primary}) but deploy.allowed_gpg_fingerprints is empty"
        if v.primary not in fprs:
            return f"signed by GPG key {v.primary}, which is not in deploy.allowed_gpg_fingerprints"
        return None
    if v.kind == "ssh" and signers is None:
        return "signed with SSH but no allowed-signers file is set (deploy.allowed_signers)"
    if v.kind == "x509":
        return "X.509 (gpgsm) signatures are not accepted; sign with SSH or GPG"
    return None if v.ok else str(v.reason)


def build(repo: MLRepo, rel: Release, folder: Path, *, onnx: bool = False) -> Any:
    """The verified bundle of the release (rebuilt into a fresh folder); with ``onnx``, its
    model compiled by `git ml compile --onnx` (:func:`gitml.deploy.package.swap_to_onnx`)."""
    from gitml.models.bundle import Bundle, build_bundle
    from gitml.models.load import locate

    commit = rel.version.commit
    spec = spec_at(repo, rel.name, commit)
    verdict = gates.recorded(repo, spec, commit)
    if not verdict.passed:
        raise DeployRefused(f"{rel.name} {rel.version.version}: {verdict.summary()}",
                            "only versions whose committed gates passed deploy")
    tmp = folder.with_name(folder.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    build_bundle(repo, rel.name, commit, tmp, version=rel.v)
    expected = locate(repo, spec.path, rev=commit).oid
    bundle = Bundle.open(tmp)          # re-reads and re-verifies the bytes
    if bundle.model_id != expected:
        raise DeployRefused(f"bundle model id {bundle.model_id} is not the committed {expected}")
    if onnx:
        from gitml.deploy.package import swap_to_onnx

        swap_to_onnx(repo, bundle)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return Bundle.open(folder)


# -- the procedure -------------------------------------------------------------------------------

def deploy(repo: MLRepo, ref: str, target_name: str | None = None, *,
           grace: float | None = None, detach_watch: bool = False,
           log: Any = None, onnx: bool = False) -> DeployResult:
    settings = load_settings(repo)
    target = settings.target(target_name)
    say = log or (lambda msg: None)
    rel = resolve(repo, ref)
    folder = target_dir(repo, target.name, rel.name)
    folder.mkdir(parents=True, exist_ok=True)
    common: dict[str, Any] = {"commit": rel.version.commit, "tag": rel.tags[-1] if rel.tags else None,
                              "trigger": rel.trigger}
    token = os.environ.get(target.token_env) or None
    with file_lock(folder / "deploy.lock"):
        state_path = folder / "state.json"
        state = read_state(state_path)
        running = server(folder)
        old = state.get("active") if state else None
        if old == rel.v and running is not None:
            return DeployResult("noop", rel.name, rel.v, target.name, running[1], old,
                                "already serving")
        try:
            signed, signer = check_signatures(repo, settings, rel)
            common.update(signed=signed, signer=signer)
            say(f"building the bundle of {rel.name} {rel.version.version} ({rel.version.commit[:12]})")
            bundle_dir = folder / "bundles" / f"{rel.v}-{rel.version.commit[:12]}{'-onnx' if onnx else ''}"
            bundle = build(repo, rel, bundle_dir, onnx=onnx)
            url = _stage_beside(repo, target, rel, state_path, state, bundle_dir, token)
            say(f"{rel.version.version} loaded beside {old or 'nothing'} on {url}; smoke test at "
                f"/v2/models/{rel.name}/versions/{rel.v}/infer")
            n = _smoke(url, rel.name, rel.v, bundle, token)
            say(f"smoke test passed: {n} rows, every prediction as recorded")
        except GitMLError as e:
            _drop_candidate(folder, rel, state)
            records.record(repo.git, target.name, "refused", rel.name, rel.v, reason=str(e),
                           **{"from": old}, **common)
            raise DeployRefused(f"{rel.name} {rel.version.version} not deployed: {e.message}",
                                e.hint) from e
        _switch(url, state_path, rel.name, rel.v, token)
        rec = records.record(repo.git, target.name, "deploy", rel.name, rel.v, url=url,
                             reason=f"{rel.trigger}", **{"from": old}, **common)
        say(f"serving {rel.name} {rel.version.version} on {url} (was {old or 'nothing'})")
    window = settings.grace_seconds if grace is None else grace
    result = DeployResult("deploy", rel.name, rel.v, target.name, url, old, record=rec)
    if window <= 0 or old is None:
        return result
    if detach_watch:
        spawn_watch(repo, target.name, rel.name, rel.v, window)
        say(f"watching {rel.name} {rel.version.version} for {window:g}s in the background "
            f"(log: {folder / 'watch.log'})")
        return result
    say(f"watching {rel.name} {rel.version.version} for {window:g}s")
    return watch(repo, target.name, rel.name, rel.v, window, log=say) or result


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def server(folder: Path) -> tuple[int, str] | None:
    """(pid, url) of the server serving this folder's deploy state, when one runs."""
    from gitml.serve.supervisor import Paths

    try:
        info = json.loads(Paths.of(folder / "state.json").info.read_text())
        pid, url = int(info["pid"]), str(info["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (pid, url) if _alive(pid) else None


def _stage_beside(repo: MLRepo, target: Target, rel: Release, state_path: Path,
                  state: dict[str, Any] | None, bundle_dir: Path, token: str | None) -> str:
    """Write the state with the candidate loaded beside the active version (starting the
    server when none runs) and wait until every worker has it. Returns the server's URL."""
    from gitml.serve import control

    versions = dict(state.get("versions", {})) if state else {}
    active = state.get("active") if state else None
    # keep the serving version and the new one; older ones are unloaded
    keep = {v: p for v, p in versions.items() if v == active}
    keep[rel.v] = str(bundle_dir.resolve())
    control.write_state(state_path, {"model": rel.name, "active": active or rel.v, "versions": keep})
    running = server(state_path.parent)
    if running is None:
        proc = control.start(state_path, host=target.host, port=target.port,
                             workers=target.workers, token=token,
                             traffic_dir=repo.ml_dir / "traffic" / rel.name)
        url = proc.url
    else:
        url = running[1]
    control.wait_ready(url, rel.v, timeout=180, token=token, model=rel.name)
    return url


def _drop_candidate(folder: Path, rel: Release, state: dict[str, Any] | None) -> None:
    """Put the state back as it was; stop a server that only ever held the candidate."""
    from gitml.serve import control

    state_path = folder / "state.json"
    if state and state.get("active") and state.get("active") != rel.v:
        control.write_state(state_path, state)
        return
    running = server(folder)
    if running is not None:
        control.stop(running[0])
    state_path.unlink(missing_ok=True)


def _switch(url: str, state_path: Path, name: str, version: str, token: str | None) -> None:
    from gitml.serve import control

    state = read_state(state_path) or {"model": name, "versions": {}}
    state["active"] = version
    control.write_state(state_path, state)
    control.wait_ready(url, version, timeout=60, active=True, token=token, model=name)


def _smoke(url: str, name: str, version: str, bundle: Any, token: str | None) -> int:
    from gitml.registry.client import infer_v2

    rows, preds, values = bundle.smoke()
    pos = None
    if bundle.classes:
        pos = bundle.classes.index(bundle.positive) if bundle.positive in bundle.classes \
            else len(bundle.classes) - 1
    got, got_values = infer_v2(url, name, version, rows, bundle.inputs, token=token,
                               positive_index=pos, task=bundle.task)
    if len(got) != len(preds):
        raise DeployRefused(f"smoke test: {len(got)} predictions for {len(preds)} rows")
    bad = [i for i, (a, b) in enumerate(zip(got, preds, strict=True)) if str(a) != str(b)]
    for i, (a, b) in enumerate(zip(got_values, values, strict=False)):
        if a is not None and b is not None and abs(a - b) > 1e-6 * max(1.0, abs(b)) and i not in bad:
            bad.append(i)
    if bad:
        i = bad[0]
        raise DeployRefused(f"smoke test: {len(bad)} of {len(preds)} rows disagree with the "
                            f"recorded predictions (row {i}: served {got[i]!r}, recorded {preds[i]!r})")
    return len(preds)


# -- grace window and rollback ----------------------------------------------------------------

def spawn_watch(repo: MLRepo, target: str, name: str, version: str, window: float) -> None:
    log = target_dir(repo, target, name) / "watch.log"
    with open(log, "ab") as out:
        subprocess.Popen([sys.executable, "-m", "gitml.registry.watch", str(repo.workdir), target,
                          name, version, str(window)], stdout=out, stderr=out,
                         stdin=subprocess.DEVNULL, start_new_session=True, cwd=repo.workdir)


def watch(repo: MLRepo, target_name: str, name: str, version: str, window: float,
          log: Any = None) -> DeployResult | None:
    """Watch ``version`` for ``window`` seconds; roll back by itself if it fails health
    checks or its model-failure rate jumps. Returns the rollback, or None when it held."""
    from gitml.registry.client import health, version_counts

    settings = load_settings(repo)
    target = settings.target(target_name)
    say = log or (lambda msg: None)
    token = os.environ.get(target.token_env) or None
    folder = target_dir(repo, target_name, name)
    running = server(folder)
    if running is None:
        return rollback(repo, name, target_name, reason="the server is not running after the switch",
                        automatic=True)
    url = running[1]
    start = version_counts(url, name, token=token)
    deadline = time.monotonic() + window
    reason = None
    while time.monotonic() < deadline:
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        state = read_state(folder / "state.json")
        if not state or state.get("active") != version:
            return None  # someone deployed or rolled back meanwhile
        ok, why = health(url, name, version, token=token)
        if not ok:
            reason = f"health check failed: {why}"
            break
        reason = error_jump(start, version_counts(url, name, token=token), version,
                            settings.max_error_rate)
        if reason:
            break
    if reason is None:
        records.record(repo.git, target_name, "stable", name, version, url=url,
                       reason=f"healthy for the {window:g}s grace window")
        say(f"{name} {version} held for the grace window")
        return None
    say(f"rolling back {name} {version}: {reason}")
    return rollback(repo, name, target_name, reason=reason, automatic=True)


def error_jump(start: dict[str, tuple[float, float]], now: dict[str, tuple[float, float]],
               version: str, limit: float, min_requests: int = 10) -> str | None:
    """Why ``version`` failed in the window (None if it did not): its model-failure rate
    since ``start`` is above ``limit`` over at least ``min_requests`` requests."""
    req0, err0 = start.get(version, (0.0, 0.0))
    req1, err1 = now.get(version, (0.0, 0.0))
    n, e = req1 - req0, err1 - err0
    if n < min_requests:
        return None
    rate = e / n
    if rate <= limit:
        return None
    return (f"model failure rate {rate:.1%} over {int(n)} requests in the grace window "
            f"(limit {limit:.1%})")


def rollback(repo: MLRepo, name: str, target_name: str | None = None, *, to: str | None = None,
             reason: str = "", automatic: bool = False) -> DeployResult:
    """Switch ``name`` on the target back to the version it replaced (or ``to``)."""
    from gitml.serve import control

    settings = load_settings(repo)
    target = settings.target(target_name)
    token = os.environ.get(target.token_env) or None
    folder = target_dir(repo, target.name, name)
    history = [r for r in records.read_records(repo.git, target.name, name)
               if r.get("action") in records.SERVING_ACTIONS]
    with file_lock(folder / "deploy.lock"):
        state = read_state(folder / "state.json")
        if not state or not state.get("active"):
            raise GitMLError(f"{name} is not deployed on {target.name}",
                             f"deploy it first: `git ml deploy {name}#prod`")
        current = str(state["active"])
        if to is None:
            rec = next((r for r in reversed(history) if r.get("version") == current), None)
            earlier = [r for r in history if r.get("version") != current]
            if rec and rec.get("from"):
                to = str(rec["from"])
            elif earlier:
                to = str(earlier[-1]["version"])
            else:
                raise GitMLError(f"{name} has no earlier version on {target.name} to return to",
                                 "name one with --to")
        to = to.removeprefix("v")
        if to == current:
            raise GitMLError(f"{name} {to} is already serving on {target.name}")
        versions = dict(state.get("versions", {}))
        running = server(folder)
        if running is None:
            proc = control.start(folder / "state.json", host=target.host, port=target.port,
                                 workers=target.workers, token=token,
                                 traffic_dir=repo.ml_dir / "traffic" / name)
            url = proc.url
        else:
            url = running[1]
        if to not in versions:  # not warm any more: rebuild it, verified like any deploy
            rel = resolve(repo, f"{name}@v{to}")
            bundle_dir = folder / "bundles" / f"{to}-{rel.version.commit[:12]}"
            build(repo, rel, bundle_dir)
            versions[to] = str(bundle_dir.resolve())
            control.write_state(folder / "state.json", {**state, "versions": versions})
            control.wait_ready(url, to, timeout=180, token=token, model=name)
        control.write_state(folder / "state.json", {**state, "versions": versions, "active": to})
        control.wait_ready(url, to, timeout=60, active=True, token=token, model=name)
        why = reason or "manual rollback"
        # the record that first put `to` in service vouches for what serves again
        prev: dict[str, Any] = next((r for r in reversed(history) if r.get("version") == to
                     and r.get("action") == "deploy"), {})
        retired = retire_stage(repo, name, current, history, target.name, why) if automatic else {}
        rec = records.record(repo.git, target.name, "rollback", name, to, reason=why,
                             automatic=automatic, url=url, commit=prev.get("commit"),
                             tag=prev.get("tag"), signed=bool(prev.get("signed")),
                             signer=prev.get("signer"), **{"from": current}, **retired)
    return DeployResult("rollback", name, to, target.name, url, current, why, rec)


def retire_stage(repo: MLRepo, name: str, version: str, history: list[dict[str, Any]],
                 target: str, reason: str) -> dict[str, Any]:
    """After an automatic rollback of ``version``: take it out of the stage whose tag
    deployed it, with GTO's unassignment tag (``name#stage!#N``, the reason in its message).
    The stage then names the version assigned to it before (or none), so replaying the
    stage (a hook, `git ml deploy name#stage`) cannot put the failed version back by
    accident; serving it again takes a new promotion. Returns the fields for the rollback
    record: ``unassigned`` and ``unassign_tag``, or ``unassign_error`` (the rollback stands
    either way)."""
    from gitml.registry import ops

    dep = next((r for r in reversed(history) if r.get("version") == version
                and r.get("action") == "deploy"), None)
    parsed = parse(str(dep.get("trigger") or "")) if dep else None
    if parsed is None or parsed.action is not Action.ASSIGN or not parsed.stage:
        return {}  # deployed as a version, not through a stage
    stage = parsed.stage
    try:
        current = load(repo.git, name).artifact(name).stages().get(stage)
        if current is None or current[0].version.removeprefix("v") != version:
            return {}  # the stage has moved on since
        res = ops.unassign(repo, name, stage, message=(
            f"Unassigning stage '{stage}' to artifact '{name}' version 'v{version}'\n\n"
            f"automatic rollback on {target}: {reason}"))
    except GitMLError as e:
        return {"unassign_error": f"{stage}: {e.message}"}
    return {"unassigned": stage, "unassign_tag": res.tag}


def stop(repo: MLRepo, name: str, target_name: str | None = None) -> bool:
    """Stop the server of ``name`` on a target (its state and records stay)."""
    from gitml.serve import control

    running = server(target_dir(repo, target_name or "local", name))
    if running is None:
        return False
    return bool(control.stop(running[0]))
