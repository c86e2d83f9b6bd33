"""Deploy on tag, for real: annotated tags made by `git ml promote` or `git tag` with the
hooks installed, pushes to a bare file:// remote, a GitOps receiver, real model servers on
127.0.0.1 queried over HTTP, automatic rollback, tampered bytes and signed tags."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import git, gitml
from tests.support.registry import commit_model, copy_repo, template_repo

DEPLOY_CONFIG = """
[deploy]
grace_seconds = {grace}
[deploy.targets.local]
port = 0
workers = 1
stages = [{stages}]
"""


def _local_config(repo: Path, *, grace: float = 0, stages: str = '"prod"', extra: str = "") -> None:
    (repo / ".git" / "ml").mkdir(parents=True, exist_ok=True)
    (repo / ".git" / "ml" / "config.local.toml").write_text(
        DEPLOY_CONFIG.format(grace=grace, stages=stages) + extra)


def _stop_servers(root: Path) -> None:
    """Stop every server a test started (their info files name their pids)."""
    from gitml.serve import control

    for info in root.rglob("state.server.json"):
        try:
            pid = int(json.loads(info.read_text())["pid"])
        except (OSError, ValueError, KeyError):
            continue
        control.stop(pid)


@pytest.fixture
def dep(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.delenv("GIT_COMMITTER_DATE", raising=False)
    monkeypatch.delenv("GIT_AUTHOR_DATE", raising=False)
    repo = copy_repo(template_repo(tmp_path_factory), tmp_path / "repo")
    try:
        yield repo
    finally:
        _stop_servers(tmp_path)


def _deployments(repo: Path, *args: str) -> list[dict[str, Any]]:
    return json.loads(gitml(repo, "deployments", "--json", *args).stdout)  # type: ignore[no-any-return]


def _post(url: str, body: Any, token: str | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def _rows(n: int = 5) -> Any:
    from tests.support.checks import FEATURES, arrests_split

    _, test = arrests_split()
    return test[FEATURES].head(n)


def _mlflow(url: str, rows: Any) -> tuple[int, Any]:
    return _post(f"{url}/invocations", {"dataframe_split": {
        "columns": list(rows.columns), "data": rows.astype(object).values.tolist()}})


def _v2(url: str, rows: Any, version: str | None = None) -> tuple[int, Any]:
    types = {"int64": "INT64", "float64": "FP64"}
    inputs = [{"name": c, "shape": [len(rows)], "datatype": types.get(str(rows[c].dtype), "BYTES"),
               "data": rows[c].tolist()} for c in rows.columns]
    route = f"/v2/models/credit/versions/{version}/infer" if version else "/v2/models/credit/infer"
    return _post(url + route, {"inputs": inputs})


def test_tags_deploy_serve_push_and_roll_back(dep: Path, tmp_path: Path) -> None:
    repo = dep
    _local_config(repo)
    gitml(repo, "register", "credit", "HEAD~1", "--version", "1.2.0")
    out = gitml(repo, "promote", "credit", "1.2.0", "prod")  # git tag -> reference-transaction
    assert "serves on http://127.0.0.1:" in out.stderr, out.stderr
    [d] = _deployments(repo)
    assert d["version"] == "1.2.0" and d["action"] == "deploy" and d["commit"] == \
        git(repo, "rev-parse", "HEAD~1").stdout.strip()
    url = d["url"]
    rows = _rows()
    status, body = _mlflow(url, rows)
    assert status == 200 and len(body["predictions"]) == 5
    status, body = _v2(url, rows)
    assert status == 200 and body["model_version"] == "1.2.0"
    assert {o["name"] for o in body["outputs"]} >= {"predict"}

    # a pushed tag deploys through pre-push (here the tag was made without the local hook)
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(repo, "remote", "add", "origin", bare.as_uri())
    gitml(repo, "register", "credit", "HEAD", "--version", "1.3.0")
    before = time.time()
    env_no_local = {"GITML_NO_DEPLOY": "1"}
    subprocess.run(["git", "tag", "-a", "credit#prod#9", "credit@v1.3.0^{commit}", "-m", "to prod"],
                   cwd=repo, check=True, env={**__import__("os").environ, **env_no_local})
    assert _deployments(repo)[0]["version"] == "1.2.0"   # the local hook stood aside
    push = git(repo, "push", "origin", "main", "credit@v1.2.0", "credit@v1.3.0", "credit#prod#9")
    assert "serves on" in push.stderr, push.stderr
    [d] = _deployments(repo)
    assert d["version"] == "1.3.0" and d["from"] == "1.2.0" and d["tag"] == "credit#prod#9"
    assert git(bare, "cat-file", "-t", "credit#prod#9").stdout.strip() == "tag"
    status, body = _v2(url, rows)
    assert status == 200 and body["model_version"] == "1.3.0"
    # the old version stays loaded (warm) at its versioned route
    status, body = _v2(url, rows, version="1.2.0")
    assert status == 200 and body["model_version"] == "1.2.0"

    # a manual rollback, recorded; what served when is answerable
    out = gitml(repo, "rollback", "credit", "-m", "customer complaint")
    assert "credit 1.2.0 serves" in out.stdout
    status, body = _v2(url, rows)
    assert body["model_version"] == "1.2.0"
    [d] = _deployments(repo)
    assert d["action"] == "rollback" and d["from"] == "1.3.0" and d["reason"] == "customer complaint"
    at = _deployments(repo, "--at", str(before + 0.001))
    assert at[0]["version"] == "1.2.0"
    hist = json.loads(gitml(repo, "history", "credit", "--json").stdout)
    kinds = [(h["event"], h["version"]) for h in hist if h["kind"] == "deploy"]
    assert kinds == [("deploy", "v1.2.0"), ("deploy", "v1.3.0"), ("rollback", "v1.2.0")]
    # the records are Git commits on a hidden ref, and they push
    git(repo, "push", "origin", "refs/gitml/deployments/*:refs/gitml/deployments/*")
    assert git(bare, "log", "--format=%s", "refs/gitml/deployments/local").stdout.splitlines()[0] \
        .startswith("rollback credit 1.2.0")
    models = json.loads(gitml(repo, "models", "--json").stdout)
    assert models[0]["serving"]["local"]["version"] == "v1.2.0"
    assert models[0]["stage"]["prod"] == "v1.3.0"
    gitml(repo, "deploy", "credit", "--stop")


def _strict_model() -> Any:
    """A model that passes its gates but refuses categories its training data lacked."""
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from tests.support.checks import CAT, FEATURES, NUM, arrests_split

    train, _ = arrests_split()
    pre = make_column_transformer((OneHotEncoder(handle_unknown="error"), CAT), (StandardScaler(), NUM))
    return make_pipeline(pre, LogisticRegression(max_iter=1000)).fit(train[FEATURES], train["released"])


def _deploy_under_odd_traffic(repo: Path, url: str, target: str
                              ) -> tuple[subprocess.CompletedProcess[str], list[int], Any]:
    """`git ml deploy target` while live traffic reaches ``url``: one row in four has an
    employment status the training data never had (a category the strict model refuses).
    Returns the deploy, the HTTP statuses answered meanwhile, and the odd rows."""
    rows = _rows(20)
    odd = rows.copy()
    odd["employed"] = "Unknown"
    stop = threading.Event()
    answers: list[int] = []

    def traffic() -> None:
        i = 0
        while not stop.is_set():
            answers.append(_mlflow(url, odd.head(1) if i % 4 == 0 else rows.iloc[[i % 20]])[0])
            i += 1
            time.sleep(0.02)

    t = threading.Thread(target=traffic, daemon=True)
    t.start()
    try:
        proc = gitml(repo, "deploy", target, check=False)
    finally:
        stop.set()
        t.join(timeout=30)
    return proc, answers, odd


def test_broken_version_rolls_back_by_itself(dep: Path) -> None:
    repo = dep
    _local_config(repo, grace=8, stages='"canary"')  # tags do not deploy; we call deploy
    gitml(repo, "register", "credit", "HEAD~1", "--version", "1.2.0")
    gitml(repo, "deploy", "credit@v1.2.0")
    url = _deployments(repo)[0]["url"]
    commit_model(repo, _strict_model(), "strict encoder")
    gitml(repo, "register", "credit", "--version", "1.3.0")
    proc, answers, odd = _deploy_under_odd_traffic(repo, url, "credit@v1.3.0")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "rolled back to 1.2.0" in proc.stdout and "model failure rate" in proc.stdout
    recs = _deployments(repo)
    assert recs[0]["version"] == "1.2.0" and recs[0]["action"] == "rollback"
    assert recs[0]["from"] == "1.3.0" and "grace window" in recs[0]["reason"]
    status, body = _v2(url, _rows())
    assert status == 200 and body["model_version"] == "1.2.0"
    assert 422 in answers and 200 in answers
    # the same odd row is served by the version we returned to
    assert _mlflow(url, odd.head(1))[0] == 200


def test_an_automatic_rollback_takes_the_version_out_of_its_stage(dep: Path) -> None:
    import sys

    repo = dep
    _local_config(repo, grace=8, stages='"canary"')  # tags do not deploy; we call deploy
    gitml(repo, "register", "credit", "HEAD~1", "--version", "1.2.0")
    gitml(repo, "promote", "credit", "1.2.0", "prod")
    gitml(repo, "deploy", "credit#prod")
    url = _deployments(repo)[0]["url"]
    commit_model(repo, _strict_model(), "strict encoder")
    gitml(repo, "register", "credit", "--version", "1.3.0")
    gitml(repo, "promote", "credit", "1.3.0", "prod")
    proc, _, _ = _deploy_under_odd_traffic(repo, url, "credit#prod")
    assert proc.returncode == 1 and "rolled back to 1.2.0" in proc.stdout, proc.stdout + proc.stderr
    # the rollback record says what it did to the registry: 1.3.0 left stage prod (GTO's tag)
    [d] = _deployments(repo)
    assert d["action"] == "rollback" and d["from"] == "1.3.0" and d["automatic"] is True
    assert d["unassigned"] == "prod" and d["unassign_tag"].startswith("credit#prod!#"), d
    message = git(repo, "tag", "-l", "--format=%(contents)", d["unassign_tag"]).stdout
    assert "automatic rollback on local: model failure rate" in message, message
    assert git(repo, "rev-parse", d["unassign_tag"] + "^{commit}").stdout == \
        git(repo, "rev-parse", "credit@v1.3.0^{commit}").stdout
    # so the stage names what serves, in gitml and in gto alike
    [m] = json.loads(gitml(repo, "models", "--json").stdout)
    assert m["stage"]["prod"] == "v1.2.0" and m["serving"]["local"]["version"] == "v1.2.0"
    assert m["serving"]["local"]["from"] == "v1.3.0" and m["serving"]["local"]["automatic"] is True
    [rb] = m["rolled_back"]
    assert rb["version"] == "v1.3.0" and rb["stage"] == "prod" and rb["target"] == "local"
    gto = subprocess.run([str(Path(sys.executable).parent / "gto"), "show", "--json"], cwd=repo,
                         capture_output=True, text=True, check=True)
    assert json.loads(gto.stdout)["credit"]["stage"] == m["stage"] == {"prod": "v1.2.0"}
    wide = {"COLUMNS": "200"}
    table = gitml(repo, "models", env=wide).stdout
    assert "v1.2.0 (v1.3.0 rolled back)" in table, table
    assert "local: v1.2.0 (rolled back from v1.3.0, automatic)" in table, table
    text = gitml(repo, "deployments", env=wide).stdout
    assert "v1.3.0 was rolled back automatically and taken out of stage prod" in text, text
    # replaying the stage (a hook, a script) cannot put 1.3.0 back by accident
    out = gitml(repo, "deploy", "credit#prod").stdout
    assert "1.2.0 already serves" in out and _deployments(repo)[0]["version"] == "1.2.0"
    # a deliberate new promotion puts it back in the stage; the table says it does not serve
    gitml(repo, "promote", "credit", "1.3.0", "prod")
    table = gitml(repo, "models", env=wide).stdout
    assert "v1.3.0 (rolled back on local)" in table, table
    assert json.loads(gitml(repo, "deployments", "--json").stdout)[0]["stages"] == {}  # canary only


def test_tampered_model_bytes_are_refused(dep: Path) -> None:
    repo = dep
    _local_config(repo, stages='"canary"')
    gitml(repo, "register", "credit", "--version", "1.0.0")
    pointer = git(repo, "show", "HEAD:models/model.skops.gitml").stdout
    oid = next(ln.split()[1] for ln in pointer.splitlines() if ln.startswith("oid "))
    obj = repo / ".git" / "ml" / "store" / "objects" / oid[:2] / oid[2:]
    data = bytearray(obj.read_bytes())
    data[len(data) // 2] ^= 0xFF
    obj.chmod(0o644)
    obj.write_bytes(bytes(data))
    proc = gitml(repo, "deploy", "credit@v1.0.0", check=False)
    assert proc.returncode == 1
    assert "not deployed" in proc.stderr and oid in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    [rec] = json.loads(gitml(repo, "history", "credit", "--json").stdout)[-1:]
    assert rec["event"] == "refused" and "hash to" in rec["message"]
    assert _deployments(repo) == []          # nothing serves
    assert not _server_running(repo)


def _server_running(repo: Path) -> bool:
    from gitml.registry.deploy import server

    return server(repo / ".git" / "ml" / "deploy" / "local" / "credit") is not None


def _ssh_key(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)],
                   check=True, capture_output=True)
    return (path.with_suffix(".pub")).read_text().strip()


def test_signed_tags_required(dep: Path, tmp_path: Path) -> None:
    repo = dep
    trusted = _ssh_key(tmp_path / "trusted")
    _ssh_key(tmp_path / "stranger")
    signers = tmp_path / "allowed_signers"
    signers.write_text(f"test@example.com {trusted}\n")
    _local_config(repo, stages='"canary"')
    cfg = repo / ".git" / "ml" / "config.local.toml"
    cfg.write_text(cfg.read_text().replace(
        "[deploy]\n", f'[deploy]\nrequire_signed = true\nallowed_signers = "{signers}"\n'))
    git(repo, "config", "gpg.format", "ssh")
    # unsigned tags are refused, with the reason
    gitml(repo, "register", "credit", "HEAD~1", "--version", "1.2.0")
    gitml(repo, "promote", "credit", "1.2.0", "prod")
    proc = gitml(repo, "deploy", "credit#prod", check=False)
    assert proc.returncode == 1 and "is not trusted: the tag is not signed" in proc.stderr, proc.stderr
    assert not _server_running(repo)
    # signed by a key that is not in the allowed-signers file: refused
    git(repo, "config", "user.signingkey", str(tmp_path / "stranger"))
    gitml(repo, "register", "credit", "HEAD", "--version", "1.3.0", "--sign")
    gitml(repo, "promote", "credit", "1.3.0", "prod", "--sign")
    proc = gitml(repo, "deploy", "credit#prod", check=False)
    assert proc.returncode == 1 and "not trusted" in proc.stderr, proc.stderr
    assert "not signed" not in proc.stderr
    # promoted again by someone whose key is trusted: deploys; the record names the signer
    git(repo, "config", "user.signingkey", str(tmp_path / "trusted"))
    tag = gitml(repo, "promote", "credit", "1.3.0", "prod", "--sign", "--force").stdout.split()[-1]
    assert "Good" in git(repo, "-c", f"gpg.ssh.allowedSignersFile={signers}", "verify-tag", tag).stderr
    gitml(repo, "deploy", "credit#prod")
    [d] = _deployments(repo)
    assert d["version"] == "1.3.0" and d["signed"] is True and d["tag"] == tag
    assert d["signer"] == "test@example.com"
    status, body = _v2(d["url"], _rows())
    assert status == 200 and body["model_version"] == "1.3.0"
    hist = json.loads(gitml(repo, "history", "credit", "--json").stdout)
    assert next(h for h in hist if h.get("tag") == tag)["signed"] is True
    assert next(h for h in hist if h.get("tag") == "credit@v1.2.0")["signed"] is False


def test_gpg_signed_tags_deploy_only_with_a_listed_primary_fingerprint(
        dep: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import re
    import shutil
    import tempfile

    from tests.support.deploy import gpg_key, stop_gpg_agent

    repo = dep
    # keyrings in short paths (gpg-agent's socket path has a length limit)
    host = Path(tempfile.mkdtemp(prefix="gpg-host-"))  # the deploying user's keyring
    elsewhere = Path(tempfile.mkdtemp(prefix="gpg-other-"))  # a key the host never saw
    monkeypatch.setenv("GNUPGHOME", str(host))
    try:
        primary, subkey = gpg_key(host, "Deployer <deploy@example.com>", signing_subkey=True)
        assert primary != subkey
        stranger, _ = gpg_key(host, "Stranger <stranger@example.com>")
        unknown, _ = gpg_key(elsewhere, "Unknown <unknown@example.com>")
        _local_config(repo, stages='"canary"')
        cfg = repo / ".git" / "ml" / "config.local.toml"
        base = cfg.read_text()

        def allow(*fingerprints: str) -> None:
            cfg.write_text(base.replace("[deploy]\n", "[deploy]\nrequire_signed = true\n"
                                        f"allowed_gpg_fingerprints = {json.dumps(list(fingerprints))}\n"))

        def refused(env: dict[str, str] | None = None) -> str:
            proc = gitml(repo, "deploy", "credit#prod", check=False, env=env)
            assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
            [line] = proc.stderr.strip().splitlines()  # one line: why
            assert not _server_running(repo)
            return line

        def promote(key: str, env: dict[str, str] | None = None) -> str:
            git(repo, "config", "user.signingkey", key)
            out = gitml(repo, "promote", "credit", "1.2.0", "prod", "--sign", "--force", env=env).stdout
            return out.split()[-1]

        allow(subkey)  # the signing subkey's fingerprint is not the primary key's
        gitml(repo, "register", "credit", "HEAD~1", "--version", "1.2.0")
        gitml(repo, "promote", "credit", "1.2.0", "prod")
        assert "is not trusted: the tag is not signed" in refused()
        tag = promote(primary)  # gpg signs with the newest signing subkey
        raw = git(repo, "verify-tag", "--raw", tag).stderr
        assert re.search(rf"^\[GNUPG:\] VALIDSIG {subkey} .* {primary}$", raw, re.M), raw
        assert f"signed by GPG key {primary}, which is not in deploy.allowed_gpg_fingerprints" in refused()
        # a good signature by a key in the keyring that nobody listed
        allow(primary)
        promote(stranger)
        assert f"signed by GPG key {stranger}, which is not in" in refused()
        # a key the deploying user's keyring does not hold (even if listed)
        allow(primary, unknown)
        promote(unknown, env={"GNUPGHOME": str(elsewhere)})
        assert "which is not in the deploying user's keyring" in refused()
        # the listed primary key (as gpg prints it: spaced groups, any case) deploys
        allow(" ".join(primary[i:i + 4] for i in range(0, 40, 4)).lower())
        tag = promote(primary)
        gitml(repo, "deploy", "credit#prod")
        [d] = _deployments(repo)
        assert d["version"] == "1.2.0" and d["tag"] == tag and d["signed"] is True
        assert d["signer"] == primary
        # a signed tag whose message was altered afterwards: bad signature, refused
        gitml(repo, "deploy", "credit", "--stop")
        body = git(repo, "cat-file", "tag", tag).stdout.replace("Assigning", "Assignin'")
        forged = git(repo, "mktag", input=body).stdout.strip()
        git(repo, "update-ref", f"refs/tags/{tag}", forged)
        (repo / ".git" / "ml" / "deploy" / "local" / "credit" / "state.json").unlink()
        assert "bad GPG signature" in refused()
        # a fingerprint list that holds a key id, not a fingerprint, is a config error
        allow(primary[-16:])
        proc = gitml(repo, "deploy", "credit#prod", check=False)
        assert proc.returncode == 1 and "not a full key fingerprint" in proc.stderr, proc.stderr
    finally:
        stop_gpg_agent(host)
        stop_gpg_agent(elsewhere)
        shutil.rmtree(host, ignore_errors=True)
        shutil.rmtree(elsewhere, ignore_errors=True)


def test_a_commit_cannot_add_a_trusted_key_to_a_host_that_requires_signatures(dep: Path) -> None:
    from gitml.registry.settings import load_settings
    from gitml.repo import MLRepo

    repo = dep
    fpr = "0123456789ABCDEF0123456789ABCDEF01234567"
    committed = repo / ".gitml" / "config.toml"
    committed.write_text(committed.read_text() + f'\n[deploy]\nallowed_gpg_fingerprints = ["{fpr}"]\n'
                         'allowed_signers = "signers"\n')
    local = repo / ".git" / "ml" / "config.local.toml"
    local.write_text("[deploy]\nrequire_signed = true\n")
    s = load_settings(MLRepo.discover(repo))
    assert s.require_signed and s.allowed_gpg_fingerprints == [] and s.allowed_signers is None
    local.write_text(f'[deploy]\nrequire_signed = true\nallowed_gpg_fingerprints = ["{fpr.lower()}"]\n')
    assert load_settings(MLRepo.discover(repo)).allowed_gpg_fingerprints == [fpr]
    # required by the committed file itself: its own trust roots count (it could as well
    # turn signing off)
    local.unlink()
    committed.write_text(committed.read_text().replace("[deploy]\n", "[deploy]\nrequire_signed = true\n"))
    s = load_settings(MLRepo.discover(repo))
    assert s.require_signed and s.allowed_gpg_fingerprints == [fpr]
    assert s.allowed_signers == str(repo / "signers")


def test_gitops_receiver_deploys_pushed_tags(dep: Path, tmp_path: Path) -> None:
    repo = dep
    store = tmp_path / "artifact-store"
    gitml(repo, "remote", "add", "shared", str(store), "--default")
    gitml(repo, "push")
    git(repo, "checkout", "-q", "--", ".gitml/config.toml")  # the remote stays uncommitted
    bare = tmp_path / "deploy.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    out = gitml(repo, "ci", "receiver", str(bare)).stdout
    assert "post-receive" in out and (bare / "hooks" / "post-receive").is_file()
    (bare / "ml").mkdir()
    (bare / "ml" / "config.local.toml").write_text(
        DEPLOY_CONFIG.format(grace=0, stages='"prod"')
        + f'[core]\nremote = "shared"\n[remote.shared]\nurl = "{store}"\n')
    gitml(repo, "register", "credit", "--version", "2.0.0")
    _local_config(repo, stages='"canary"')   # the developer's own hooks deploy nothing
    gitml(repo, "promote", "credit", "2.0.0", "prod")
    git(repo, "remote", "add", "deploy", bare.as_uri())
    push = git(repo, "push", "deploy", "main", "--tags")
    assert "serves on http://127.0.0.1:" in push.stderr, push.stderr
    wt = bare / "gitml-deploy-worktree"
    recs = json.loads(gitml(wt, "deployments", "--json").stdout)
    assert recs[0]["version"] == "2.0.0" and recs[0]["tag"].startswith("credit#prod#")
    status, body = _v2(recs[0]["url"], _rows())
    assert status == 200 and body["model_version"] == "2.0.0"
    # the records live in the deploy repository itself
    assert git(bare, "log", "--format=%s", "refs/gitml/deployments/local").stdout.startswith("deploy credit 2.0.0")


def test_ci_github_workflow(dep: Path) -> None:
    import yaml

    gitml(dep, "ci", "github")
    wf = yaml.safe_load((dep / ".github" / "workflows" / "gitml-deploy.yml").read_text())
    trigger = wf.get("on", wf.get(True))  # YAML 1.1 reads a bare `on` key as true
    assert trigger["push"]["tags"] == ["*@v*", "*#*"]
    run = "\n".join(s.get("run", "") for s in wf["jobs"]["deploy"]["steps"])
    assert "git ml deploy" in run and "refs/gitml/deployments" in run
    assert gitml(dep, "ci", "github", check=False).returncode == 1
