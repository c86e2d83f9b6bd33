"""``credit``, ``credit@v1.3.0``, ``credit#prod``: a model, a commit and a version.

Version and stage tags are read by GTO's rules (:mod:`gitml.git.registry`); the model's
declaration is read from the resolved commit, so an old version is packaged, profiled and
served as it was declared then.
"""

from __future__ import annotations

from dataclasses import dataclass

from gitml.errors import GitMLError, UsageError
from gitml.models.spec import NAME_RE, ModelSpec, spec_at
from gitml.repo import MLRepo


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


def resolve(repo: MLRepo, text: str, rev: str | None = None) -> ModelRef:
    """``NAME`` (at ``rev``, default HEAD), ``NAME@vX.Y.Z`` / ``NAME@X.Y.Z`` (a registered
    version), ``NAME#STAGE`` (the version in the stage now, by GTO's rules) or a full
    registry tag name. The one resolver of model references: serve, deploy, package,
    profile and compile all call it."""
    from gitml.git.registry import stage_commit, version_at_commit, version_commit
    from gitml.git.tags import Action, normalize_version, parse

    text = text.strip()
    if "@" in text and not text.split("@", 1)[1].startswith(("v", "deprecated")):
        text = text.replace("@", "@v", 1)
    tag = parse(text) if ("@" in text or "#" in text) else None
    if tag is None and not NAME_RE.match(text):
        raise UsageError(f"{text!r} is not a model reference",
                         "write NAME, NAME@vX.Y.Z or NAME#STAGE (e.g. credit@v1.3.0, credit#prod)")
    name = tag.name if tag is not None else text
    stage: str | None = None
    if tag is not None and (rev is not None):
        raise UsageError("give either NAME@vX.Y.Z / NAME#STAGE or --rev, not both")
    if tag is None:
        commit = repo.git.resolve(rev or "HEAD")
    elif tag.action is Action.REGISTER and tag.version:
        found = version_commit(repo.git, name, tag.version)
        if found is None:
            raise GitMLError(f"{text}: no such registered version",
                             f"list them with `git ml models` or `git tag -l '{name}@*'`")
        commit = found
    elif tag.action is Action.ASSIGN and tag.stage:
        stage = tag.stage
        found = stage_commit(repo.git, name, stage)
        if found is None:
            raise GitMLError(f"{text}: no version of {name} is in stage {stage!r}",
                             f"promote one first (`git ml promote {name} VERSION {stage}`)")
        commit = found
    else:
        raise UsageError(f"{text!r} names no version or stage ({tag.action.value})",
                         "write NAME, NAME@vX.Y.Z or NAME#STAGE")
    registered = version_at_commit(repo.git, name, commit)
    version = normalize_version(registered)[1:] if registered else None
    return ModelRef(text=text, name=name, spec=spec_at(repo, name, commit), commit=commit,
                    version=version, stage=stage)
