"""Deploy settings: ``[deploy]`` and ``[deploy.targets.<name>]`` in ``.gitml/config.toml``
(or the local overlay, which wins; on a serving host put them there).

```toml
[deploy]
require_signed = true                  # only signed tags deploy (a local `true` cannot be
allowed_signers = "/etc/gitml/signers" #  turned off by a commit); SSH allowed-signers file
allowed_gpg_fingerprints = ["0123...CDEF"]  # GPG: primary-key fingerprints allowed to sign
grace_seconds = 20                     # watch the new version this long after the switch
max_error_rate = 0.05                  # roll back above this error rate (and above the old one's)
[deploy.targets.local]                 # the default target; tag hooks deploy only to
                                       # targets declared here
host = "127.0.0.1"
port = 8080
workers = 2
stages = ["prod"]                      # stage tags that deploy here
versions = false                       # true: every registered version deploys here too
token_env = "GITML_SERVE_TOKEN"        # bearer token for the server, from this variable
```

Trust roots (``allowed_signers``, ``allowed_gpg_fingerprints``): when ``require_signed`` is
set on the serving host (the local overlay or ``git config gitml.deploy.requireSigned``),
only the local overlay and Git's own config name them; a committed file, which anyone who
can push writes, cannot add a key. GPG signatures are checked against the keyring of the
deploying user (``GNUPGHOME``): the fingerprint list says which of its keys are trusted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from gitml.errors import ConfigError
from gitml.repo import MLRepo

DEFAULT_TARGET = "local"


@dataclass
class Target:
    name: str
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    stages: list[str] = field(default_factory=lambda: ["prod"])
    versions: bool = False
    token_env: str = "GITML_SERVE_TOKEN"
    declared: bool = True   # in the config; only declared targets deploy from tag hooks

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@dataclass
class DeploySettings:
    require_signed: bool = False
    allowed_signers: str | None = None
    allowed_gpg_fingerprints: list[str] = field(default_factory=list)  # upper-case hex
    grace_seconds: float = 20.0
    max_error_rate: float = 0.05
    targets: dict[str, Target] = field(default_factory=dict)

    def target(self, name: str | None) -> Target:
        name = name or DEFAULT_TARGET
        if name not in self.targets:
            raise ConfigError(f"deploy.targets.{name}: unknown deploy target",
                              f"known: {', '.join(sorted(self.targets))}")
        return self.targets[name]

    def targets_for_stage(self, stage: str) -> list[Target]:
        return [t for t in self.targets.values() if t.declared and stage in t.stages]

    def targets_for_versions(self) -> list[Target]:
        return [t for t in self.targets.values() if t.declared and t.versions]


def _num(section: dict[str, Any], key: str, default: float, where: str) -> float:
    v = section.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
        raise ConfigError(f"{where}.{key}: expected a non-negative number, got {v!r}")
    return float(v)


FINGERPRINT_RE = re.compile(r"^(?:[0-9A-F]{40}|[0-9A-F]{64})$")


def _fingerprints(value: Any) -> list[str]:
    """``deploy.allowed_gpg_fingerprints``: full fingerprints (v4: 40 hex digits, v5: 64),
    spaces allowed as gpg prints them; key ids and e-mail addresses are refused."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise ConfigError("deploy.allowed_gpg_fingerprints: expected a list of fingerprints",
                          'e.g. ["3AA5C34371567BD2..."] (gpg --fingerprint KEY)')
    out = []
    for raw in value:
        fpr = raw.replace(" ", "").upper().removeprefix("0X")
        if not FINGERPRINT_RE.match(fpr):
            raise ConfigError(f"deploy.allowed_gpg_fingerprints: {raw!r} is not a full key fingerprint",
                              "give the 40 hex digits `gpg --fingerprint KEY` prints, not a key id")
        out.append(fpr)
    return out


def load_settings(repo: MLRepo) -> DeploySettings:
    sec = repo.config.section("deploy")
    local = repo.config.local.get("deploy", {}) if isinstance(repo.config.local, dict) else {}
    committed = repo.config.committed.get("deploy", {})
    required = bool(local.get("require_signed")) or (
        "require_signed" not in local and bool(committed.get("require_signed")))
    required_here = bool(local.get("require_signed"))
    if repo.git.get_config("gitml.deploy.requireSigned") == "true":
        required = required_here = True
    trust = local if required_here else sec  # who may name trusted keys
    signers = trust.get("allowed_signers") or repo.git.get_config("gpg.ssh.allowedSignersFile")
    if signers is not None and not isinstance(signers, str):
        raise ConfigError("deploy.allowed_signers: expected a file path")
    if signers and not signers.startswith("/"):
        signers = str(repo.workdir / signers)
    s = DeploySettings(require_signed=required, allowed_signers=signers or None,
                       allowed_gpg_fingerprints=_fingerprints(trust.get("allowed_gpg_fingerprints")),
                       grace_seconds=_num(sec, "grace_seconds", 20.0, "deploy"),
                       max_error_rate=_num(sec, "max_error_rate", 0.05, "deploy"))
    raw_targets = sec.get("targets", {})
    if not isinstance(raw_targets, dict):
        raise ConfigError("deploy.targets: must be a table")
    implicit = DEFAULT_TARGET not in raw_targets
    if implicit:
        raw_targets = {DEFAULT_TARGET: {}, **raw_targets}
    for name, t in raw_targets.items():
        if not isinstance(t, dict):
            raise ConfigError(f"deploy.targets.{name}: must be a table")
        where = f"deploy.targets.{name}"
        stages = t.get("stages", ["prod"])
        if not isinstance(stages, list) or not all(isinstance(x, str) for x in stages):
            raise ConfigError(f"{where}.stages: expected a list of stage names")
        port = t.get("port", 8080)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port < 65536:
            raise ConfigError(f"{where}.port: expected a port number, got {port!r}")
        s.targets[name] = Target(name=name, host=str(t.get("host", "127.0.0.1")), port=port,
                                 workers=int(_num(t, "workers", 1, where)) or 1, stages=list(stages),
                                 versions=bool(t.get("versions", False)),
                                 token_env=str(t.get("token_env", "GITML_SERVE_TOKEN")),
                                 declared=not (implicit and name == DEFAULT_TARGET))
    return s
