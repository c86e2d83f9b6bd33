"""`git ml profile` on a real server, recorded in a commit; `recommend` and `k8s` from
that profile; `git ml diff` showing profile changes and refusing to compare machines silently."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import git, gitml
from tests.support.deploy import isolated_git, make_model_repo


@pytest.fixture(scope="module")
def profiled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A model repo whose v1.0.0 was profiled (one short measurement: 1 row, 1 worker)."""
    with isolated_git(tmp_path_factory.mktemp("home-profile")):
        repo = make_model_repo(tmp_path_factory.mktemp("profile") / "repo")
        gitml(repo, "profile", "arrests@v1.0.0", "--rows", "1", "--workers", "1",
              "--duration", "1")
        yield repo


@pytest.fixture
def repo(profiled: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "repo"
    shutil.copytree(profiled, dest, symlinks=True)
    return dest


def test_profile_is_measured_and_committed_with_its_environment(repo: Path) -> None:
    rel = ".gitml/profiles/arrests/1.0.0.json"
    head = git(repo, "show", "--stat", "--format=%s", "HEAD").stdout
    assert head.startswith("profile: arrests 1.0.0") and rel in head
    prof = json.loads(git(repo, "show", f"HEAD:{rel}").stdout)
    tag_commit = git(repo, "rev-parse", "arrests@v1.0.0^{commit}").stdout.strip()
    assert prof["commit"] == tag_commit and prof["version"] == "1.0.0"
    env = json.loads(git(repo, "show", f"HEAD:.gitml/env/{prof['environment']}.json").stdout)
    assert prof["cpu"]["model"] == env["cpu"]["model"] and prof["cpu"]["model"]
    assert len(prof["load_average"]) == 3
    ld = prof["load"]
    model_size = (repo / "models/model.skops").stat().st_size
    assert ld["model_bytes"] == model_size and ld["seconds"] > 0 and ld["rss_bytes"] > ld["rss_python_bytes"]
    lat = prof["latency"]["1"]["server_path"]
    assert 0 < lat["p50_ms"] <= lat["p99_ms"]
    (srv,) = prof["server"]
    assert srv["workers"] == 1 and srv["rows"] == 1 and srv["concurrency"] == 16
    assert srv["errors"] == 0 and srv["requests"] > 0 and srv["rps"] > 0
    # the supervisor holds what the probe held after loading (its file-backed pages too,
    # though it was forked from the probe), and a worker comes on top
    assert srv["rss_bytes"] >= ld["rss_bytes"] > ld["rss_python_bytes"]
    phases = prof["phases_s"]
    assert phases["bundle"] > 0 and phases["probe"] > 0 and len(phases["server_start"]) == 1


def test_recommend_and_k8s_use_the_recorded_profile(repo: Path, tmp_path: Path) -> None:
    import kubernetes_validate

    prof = json.loads((repo / ".gitml/profiles/arrests/1.0.0.json").read_text())
    (srv,) = prof["server"]
    rps = round(srv["rps"] * 1.5, 1)  # more than one replica can carry with headroom
    p99 = srv["p99_ms"] * 2
    rec = json.loads(gitml(repo, "recommend", "arrests@v1.0.0", "--rps", str(rps), "--p99-ms",
                           str(p99), "--json").stdout)
    assert rec["workers"] == 1 and rec["replicas"] >= 2
    assert rec["replica_rps"] == pytest.approx(srv["rps"], rel=1e-3)
    assert rec["memory_mib"]["request"] * (1 << 20) >= srv["rss_bytes"] * 1.25
    assert any("needs ceil(" in line for line in rec["explain"])
    too_fast = gitml(repo, "recommend", "arrests@v1.0.0", "--rps", "10", "--p99-ms",
                     str(srv["p99_ms"] / 2), check=False)
    assert too_fast.returncode == 1 and "cannot be met" in too_fast.stderr
    out = tmp_path / "deploy"
    gitml(repo, "k8s", "arrests#prod", "-o", str(out), "--rps", str(rps), "--p99-ms", str(p99))
    import yaml

    dep = yaml.safe_load((out / "deployment.yaml").read_text())
    kubernetes_validate.validate(dep, kubernetes_validate.latest_version(), strict=True)
    assert dep["spec"]["replicas"] == rec["replicas"]
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "gitml-arrests:1.0.0" and "gitml.serve.supervisor" in c["command"]
    assert c["resources"]["limits"]["memory"] == f"{rec['memory_mib']['limit']}Mi"
    missing = gitml(repo, "recommend", "arrests", "--rps", "1", "--p99-ms", "100", check=False)
    assert missing.returncode == 1 and "no profile" in missing.stderr  # HEAD is not v1.0.0


def test_diff_shows_profile_changes_and_flags_other_machines(repo: Path) -> None:
    out = gitml(repo, "diff", "HEAD~1", "HEAD").stdout
    assert "profile of arrests: - -> 1.0.0" in out and "server.w1.r1.rps" in out
    data = json.loads(gitml(repo, "diff", "HEAD~1", "HEAD", "--json").stdout)
    assert data["profiles"]["arrests"]["same_environment"] is True
    # the same version re-measured on another machine: shown, but marked not comparable
    rel = repo / ".gitml/profiles/arrests/1.0.0.json"
    prof = json.loads(rel.read_text())
    prof["environment"] = "0" * 32
    prof["cpu"] = {"model": "Other CPU", "count": 64}
    prof["server"][0]["rps"] = prof["server"][0]["rps"] * 2
    rel.write_text(json.dumps(prof, indent=2))
    git(repo, "commit", "-qam", "profile from elsewhere", "--no-verify")
    out = gitml(repo, "diff", "HEAD~1", "HEAD").stdout
    assert "not comparable" in out and "Other CPU" in out
    assert "server.w1.r1.rps" in out


def test_a_probe_that_cannot_load_the_model_is_a_one_line_error(repo: Path, tmp_path: Path) -> None:
    from gitml.deploy.profile import Probe
    from gitml.errors import GitMLError
    from gitml.models.bundle import build_bundle
    from gitml.repo import MLRepo

    bundle = build_bundle(MLRepo.discover(repo), "arrests", "arrests@v1.0.0", tmp_path / "b")
    model = bundle.path / bundle.model_file
    model.write_bytes(model.read_bytes()[:-1] + b"x")
    probe = Probe(bundle.path, [1], 0.1, tmp_path / "probe.log")
    try:
        with pytest.raises(GitMLError, match=r"measuring the model in-process failed: .*hash") as e:
            probe.measurements()
        assert "\n" not in str(e.value) and "Traceback" not in str(e.value)
    finally:
        probe.close()
    assert probe.proc.returncode not in (None, 0)


def test_profile_time_budget_is_reported(repo: Path) -> None:
    prof = json.loads((repo / ".gitml/profiles/arrests/1.0.0.json").read_text())
    assert prof["duration_s"] > 0 and isinstance(prof["load_average"][0], float)
