"""``credit``, ``credit@v1.3.0``, ``credit#prod``: a model, a commit and a version.

Version and stage tags are resolved by :func:`gitml.models.spec.resolve_baseline` (the
one resolver of GTO tags below the registry); the model's declaration is read from the
resolved commit, so an old version is packaged as it was declared then.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass

from gitml.errors import ConfigError, UsageError
from gitml.models.spec import NAME_RE, ModelSpec, resolve_baseline, specs_from_section
from gitml.repo import MLRepo

CONFIG = ".gitml/config.toml"
SEMVER_TAG = re.compile(r"@v(\d+\.\d+\.\d+)$")


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


def _version_key(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


def versions_at(repo: MLRepo, name: str, commit: str) -> list[str]:
    """Version numbers whose tags ``name@vX.Y.Z`` point at ``commit``, newest first."""
    found = []
    for tag in repo.git.tags(f"{name}@v*"):
        m = SEMVER_TAG.search(tag)
        if not m:
            continue
        try:
            if repo.git.resolve(tag) == commit:
                found.append(m.group(1))
        except Exception:
            continue
    return sorted(found, key=_version_key, reverse=True)


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
    m = re.match(r"^([^@#]+)(.*)$", text.strip())
    if not m or not NAME_RE.match(m.group(1)):
        raise UsageError(f"{text!r} is not a model reference",
                         "write NAME, NAME@vX.Y.Z or NAME#STAGE (e.g. credit@v1.3.0, credit#prod)")
    name, rest = m.group(1), m.group(2)
    head_spec = None
    stage = None
    if not rest:
        commit = repo.git.head()
        if commit is None:
            raise UsageError("the repository has no commit yet", "commit the model first")
    else:
        if rest.startswith("@") and not SEMVER_TAG.search(text) and rest != "@deprecated":
            raise UsageError(f"{text!r}: a version is written NAME@vX.Y.Z", f"e.g. {name}@v1.0.0")
        if rest.startswith("#"):
            stage = rest[1:].split("#", 1)[0]
        from gitml.models.spec import model_specs

        try:
            head_spec = model_specs(repo, [name])[0]
        except ConfigError:
            head_spec = None
        found = None
        if head_spec is not None:
            try:
                found = resolve_baseline(repo, head_spec, text)
            except ConfigError:
                found = None
        else:
            try:
                found = repo.git.resolve(text)
            except Exception:
                found = None
        if found is None:
            raise UsageError(f"{text}: no such version or stage tag",
                             f"list them with `git tag -l '{name}[@#]*'`")
        commit = found
    spec = spec_at(repo, name, commit)
    vm = SEMVER_TAG.search(text)
    version = vm.group(1) if vm else next(iter(versions_at(repo, name, commit)), None)
    return ModelRef(text=text, name=name, spec=spec, commit=commit, version=version, stage=stage)
