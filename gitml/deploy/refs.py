"""``credit``, ``credit@v1.3.0``, ``credit#prod``: a model, a commit and a version.

Version and stage tags are resolved by the server's resolver (:func:`gitml.serve.local.resolve`,
itself :func:`gitml.models.spec.resolve_baseline`); the model's declaration is read from
the resolved commit, so an old version is packaged as it was declared then.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass

from gitml.errors import ConfigError, UsageError
from gitml.models.spec import ModelSpec, specs_from_section
from gitml.repo import MLRepo

CONFIG = ".gitml/config.toml"
SEMVER = re.compile(r"^\d+\.\d+\.\d+$")


@dataclass(frozen=True)
class ModelRef:
    text: str
    name: str
    spec: ModelSpec
    commit: str
    version: str | None   # "1.3.0" when a version tag names the commit
    stage: str | None

    @property
    def label(self) -> str:
        """What to call it in file names and messages: the version, else the commit."""
        return self.version or self.commit[:12]


def spec_at(repo: MLRepo, name: str, commit: str) -> ModelSpec:
    raw = repo.git.read_blob(commit, CONFIG)
    if raw is None:
        raise ConfigError(f"{CONFIG} does not exist at {commit[:12]}",
                          "declare the model under [models.NAME] and commit it")
    try:
        section = tomllib.loads(raw.decode("utf-8")).get("models", {})
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{CONFIG} at {commit[:12]} is not valid TOML: {e}") from e
    return specs_from_section(section, [name])[0]


def resolve(repo: MLRepo, text: str) -> ModelRef:
    """Resolve through the server's resolver (one resolver of GTO tags for everyone)."""
    from gitml.serve.local import REF_RE
    from gitml.serve.local import resolve as serve_resolve

    m = REF_RE.match(text.strip())
    if m is None:
        raise UsageError(f"{text!r} is not a model reference",
                         "write NAME, NAME@vX.Y.Z or NAME#STAGE (e.g. credit@v1.3.0, credit#prod)")
    try:
        target = serve_resolve(repo, text.strip())
    except ConfigError as e:
        if "cannot resolve" in e.message:
            raise UsageError(f"{text}: no such version or stage tag",
                             f"list them with `git tag -l '{m.group('name')}[@#]*'`") from e
        raise
    spec = spec_at(repo, target.name, target.commit)
    version = target.version if SEMVER.match(target.version) else None
    return ModelRef(text=text.strip(), name=target.name, spec=spec, commit=target.commit,
                    version=version, stage=m.group("stage"))
