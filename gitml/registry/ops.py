"""Registry actions: register, promote (assign a stage), unassign, deprecate.

Each writes one annotated tag in GTO's grammar (``gitml.git.tags``) with GTO's defaults:
a registration is ``name@vX.Y.Z`` (no counter), a stage assignment or unassignment and an
artifact deprecation carry the artifact's next counter (``name#prod#3``).
"""

from __future__ import annotations

from dataclasses import dataclass

from gitml.errors import GitMLError
from gitml.git.registry import build
from gitml.git.tags import (
    Action,
    bump,
    check_name,
    check_stage,
    create_tag,
    format_tag,
    next_counter,
    normalize_version,
    read_tags,
    semver_key,
)
from gitml.models.spec import spec_at_or_current
from gitml.registry import gates
from gitml.repo import MLRepo


class GateFailedError(GitMLError):
    """The commit's recorded gates did not pass (or are missing or stale)."""


@dataclass
class TagResult:
    tag: str
    name: str
    version: str
    commit: str
    stage: str | None = None
    forced: bool = False
    message: str = ""


def _sign(repo: MLRepo, sign: bool | None) -> bool:
    if sign is not None:
        return sign
    return repo.git.get_config("tag.gpgSign") == "true" or bool(
        repo.config.section("registry").get("sign", False))


def register(repo: MLRepo, name: str, rev: str = "HEAD", *, version: str | None = None,
             part: str | None = None, force: bool = False, message: str | None = None,
             sign: bool | None = None) -> TagResult:
    """Tag ``rev`` as a new version of ``name`` if its recorded gates passed (or ``force``)."""
    check_name(name)
    if version and part:
        raise GitMLError("give either --version or --bump, not both")
    commit = repo.git.resolve(rev)
    spec = spec_at_or_current(repo, name, commit)
    tags = read_tags(repo.git, name)
    art = build(tags).artifacts.get(name)
    if art is not None:
        at = [v for v in art.registered_versions() if v.commit == commit]
        if at:
            raise GitMLError(f"{commit[:12]} is already {name} {at[0].version}",
                             f"promote it: `git ml promote {name} {at[0].version[1:]} STAGE`")
    if version:
        v = normalize_version(version)
        if art is not None and v in art.versions and art.versions[v].registrations:
            raise GitMLError(f"{name} {v} is already registered", "pick another version or --bump")
    else:
        latest = art.latest() if art is not None else None
        if latest is None and art is not None:
            # deregistered versions still hold their numbers
            olds = [x for x in art.versions.values() if x.registrations]
            latest = max(olds, key=lambda x: semver_key(x.version)) if olds else None
        v = bump(latest.version if latest else "v0.0.0", part or "patch")
    verdict = gates.recorded(repo, spec, commit)
    if not verdict.passed and not force:
        raise GateFailedError(f"{name} at {commit[:12]} cannot be registered: {verdict.summary()}",
                              "fix the model and commit (the gates run on commit), or --force")
    subject = message or f"Registering artifact {name} version {v}"
    body = [subject, ""]
    if not verdict.passed:
        body.append(f"FORCED: registered with --force although {verdict.summary()}")
    else:
        body.append(f"Gates: {verdict.summary()}")
    from gitml.registry.card import card_markdown

    body += ["", card_markdown(repo, name, v, commit, verdict=verdict)]
    tag = format_tag(Action.REGISTER, name, version=v)
    create_tag(repo.git, tag, commit, "\n".join(body), sign=_sign(repo, sign),
               not_before=max((t.time for t in tags), default=None))
    return TagResult(tag, name, v, commit, forced=not verdict.passed, message=subject)


def promote(repo: MLRepo, name: str, version: str, stage: str, *, force: bool = False,
            message: str | None = None, sign: bool | None = None) -> TagResult:
    """Assign ``stage`` to a registered version: ``name#stage#N`` at the version's commit."""
    check_stage(stage)
    tags = read_tags(repo.git, check_name(name))
    art = build(tags).artifact(name)
    ver = art.find(version)
    if not ver.active:
        raise GitMLError(f"{name} {ver.version} was deregistered", "register a new version")
    if stage in ver.active_stages() and not force:
        raise GitMLError(f"{name} {ver.version} is already in stage {stage}",
                         "--force makes a new assignment tag anyway")
    tag = format_tag(Action.ASSIGN, name, stage=stage, counter=next_counter(tags, name))
    subject = message or f"Assigning stage {stage} to artifact {name} version {ver.version}"
    create_tag(repo.git, tag, ver.commit, subject, sign=_sign(repo, sign),
               not_before=max((t.time for t in tags), default=None))
    return TagResult(tag, name, ver.version, ver.commit, stage=stage, message=subject)


def unassign(repo: MLRepo, name: str, stage: str, *, message: str | None = None,
             sign: bool | None = None) -> TagResult:
    check_stage(stage)
    tags = read_tags(repo.git, check_name(name))
    art = build(tags).artifact(name)
    current = art.stages().get(stage)
    if current is None:
        raise GitMLError(f"no version of {name} is in stage {stage}", "see `git ml models`")
    ver = current[0]
    tag = format_tag(Action.UNASSIGN, name, stage=stage, counter=next_counter(tags, name))
    subject = message or f"Unassigning stage '{stage}' to artifact '{name}' version '{ver.version}'"
    create_tag(repo.git, tag, ver.commit, subject, sign=_sign(repo, sign),
               not_before=max((t.time for t in tags), default=None))
    return TagResult(tag, name, ver.version, ver.commit, stage=stage, message=subject)


def deprecate(repo: MLRepo, name: str, version: str | None = None, *,
              message: str | None = None, sign: bool | None = None) -> TagResult:
    """With a version: deregister it (``name@v1.2.0!``, GTO's way to retire a version).
    Without: deprecate the whole model (``name@deprecated#N``)."""
    tags = read_tags(repo.git, check_name(name))
    art = build(tags).artifact(name)
    last = max((t.time for t in tags), default=None)
    if version is not None:
        ver = art.find(version)
        if not ver.active:
            raise GitMLError(f"{name} {ver.version} is already deregistered")
        tag = format_tag(Action.DEREGISTER, name, version=ver.version)
        subject = message or f"Deregistering artifact {name} version {ver.version}"
        create_tag(repo.git, tag, ver.commit, subject, sign=_sign(repo, sign), not_before=last)
        return TagResult(tag, name, ver.version, ver.commit, message=subject)
    if not art.active:
        raise GitMLError(f"{name} is already deprecated")
    newest = max(art.events(), key=lambda e: e.order)
    tag = format_tag(Action.DEPRECATE, name, counter=next_counter(tags, name))
    subject = message or f"Deprecating artifact {name}"
    create_tag(repo.git, tag, newest.commit, subject, sign=_sign(repo, sign), not_before=last)
    return TagResult(tag, name, "", newest.commit, message=subject)
