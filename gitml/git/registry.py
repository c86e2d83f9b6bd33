"""The registry as GTO reads it: artifacts, versions and stages from annotated tags
(here, below the models layer, so the gates' baseline and `git ml serve` resolve stages
and versions by the same rules as the registry: :func:`stage_commit`, :func:`version_commit`).

The rules follow GTO (``gto/base.py``, ``gto/tag.py``) so ``gto show`` and ``git ml
models`` agree on the same repository:

- tags are indexed artifact events first, then version events, then stage events, each
  group oldest first; a stage tag belongs to the version registered at its commit (or to
  an unregistered version named by the commit when there is none);
- a version is active while its newest registration event is a registration (not ``!``);
- a (version, stage) is active while its newest event is an assignment; a stage shows the
  active version whose latest assignment is newest (GTO's default timestamp order);
- the latest version is the highest SemVer among active registered versions;
- an artifact whose newest event is a deprecation is inactive (hidden by ``gto show``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gitml.errors import GitMLError
from gitml.git.tags import Action, RegistryTag, read_tags, semver_key

if TYPE_CHECKING:
    from gitml.git.repo import GitRepo

#: GTO's event priorities (``history`` breaks same-second ties with them)
PRIORITY = {Action.CREATE: 1, Action.DEPRECATE: 2, Action.REGISTER: 3, Action.DEREGISTER: 4,
            Action.ASSIGN: 5, Action.UNASSIGN: 6}
EVENT_NAMES = {Action.CREATE: "creation", Action.DEPRECATE: "deprecation",
               Action.REGISTER: "registration", Action.DEREGISTER: "deregistration",
               Action.ASSIGN: "assignment", Action.UNASSIGN: "unassignment"}


@dataclass
class Event:
    artifact: str
    action: Action
    version: str | None
    stage: str | None
    commit: str
    time: int
    author: str
    email: str
    message: str
    tag: str
    signed: bool
    counter: int | None

    @property
    def event(self) -> str:
        return EVENT_NAMES[self.action]

    @property
    def order(self) -> tuple[int, int, int]:
        return (self.time, self.counter or 0, PRIORITY[self.action])

    def to_dict(self) -> dict[str, Any]:
        return {"timestamp": self.time, "artifact": self.artifact, "event": self.event,
                "version": self.version, "stage": self.stage, "commit": self.commit,
                "author": self.author, "author_email": self.email, "message": self.message,
                "tag": self.tag, "signed": self.signed}


@dataclass
class Version:
    artifact: str
    version: str
    commit: str
    registrations: list[Event] = field(default_factory=list)   # and deregistrations
    stages: dict[str, list[Event]] = field(default_factory=dict)

    @property
    def registered(self) -> bool:
        return any(e.action is Action.REGISTER for e in self.registrations)

    @property
    def active(self) -> bool:
        if self.registrations:
            return max(self.registrations, key=lambda e: e.order).action is Action.REGISTER
        return any(self.stages.values())

    def active_stages(self) -> dict[str, Event]:
        """stage -> its newest assignment, for stages whose newest event assigns."""
        out: dict[str, Event] = {}
        for stage, events in self.stages.items():
            last = max(events, key=lambda e: e.order)
            if last.action is Action.ASSIGN:
                out[stage] = last
        return out

    def events(self) -> list[Event]:
        return sorted([*self.registrations, *(e for es in self.stages.values() for e in es)],
                      key=lambda e: e.order)


@dataclass
class Artifact:
    name: str
    versions: dict[str, Version] = field(default_factory=dict)
    direct: list[Event] = field(default_factory=list)     # creations and deprecations

    def events(self) -> list[Event]:
        return sorted([*self.direct, *(e for v in self.versions.values() for e in v.events())],
                      key=lambda e: e.order)

    @property
    def active(self) -> bool:
        ev = self.events()
        return bool(ev) and ev[-1].action is not Action.DEPRECATE

    def registered_versions(self) -> list[Version]:
        """Active registered versions, highest SemVer first."""
        vs = [v for v in self.versions.values() if v.registered and v.active]
        return sorted(vs, key=lambda v: semver_key(v.version), reverse=True)

    def latest(self) -> Version | None:
        vs = self.registered_versions()
        return vs[0] if vs else None

    def stages(self) -> dict[str, tuple[Version, Event]]:
        """stage -> (the version in it, the assignment that put it there)."""
        best: dict[str, tuple[Version, Event]] = {}
        for v in self.versions.values():
            if not v.active:
                continue
            for stage, ev in v.active_stages().items():
                if stage not in best or ev.order > best[stage][1].order:
                    best[stage] = (v, ev)
        return best

    def version_at(self, commit: str) -> Version | None:
        found = [v for v in self.versions.values() if v.commit == commit and v.registrations]
        if not found:
            return None
        return max(found, key=lambda v: max(e.order for e in v.registrations))

    def find(self, version: str) -> Version:
        from gitml.git.tags import normalize_version

        v = normalize_version(version)
        if v not in self.versions or not self.versions[v].registered:
            known = ", ".join(x.version for x in self.registered_versions()) or "none"
            raise GitMLError(f"{self.name} has no registered version {v} (registered: {known})",
                             f"see `git ml history {self.name}`")
        return self.versions[v]


@dataclass
class Registry:
    artifacts: dict[str, Artifact] = field(default_factory=dict)

    def artifact(self, name: str) -> Artifact:
        if name not in self.artifacts:
            known = ", ".join(sorted(self.artifacts)) or "none"
            raise GitMLError(f"no registry tags for model {name!r} (models: {known})",
                             f"register a version first: `git ml register {name}`")
        return self.artifacts[name]

    def stages(self) -> list[str]:
        """Stages some version is in now (GTO's "used stages", the columns of `gto show`)."""
        return sorted({s for a in self.artifacts.values() for s in a.stages()})


def _event(t: RegistryTag) -> Event:
    p = t.parsed
    return Event(artifact=p.name, action=p.action, version=p.version, stage=p.stage,
                 commit=t.commit, time=t.time, author=t.tagger, email=t.email,
                 message=t.message, tag=t.tag, signed=t.signed, counter=p.counter)


def build(tags: list[RegistryTag]) -> Registry:
    reg = Registry()

    def art(name: str) -> Artifact:
        return reg.artifacts.setdefault(name, Artifact(name))

    groups = ((Action.CREATE, Action.DEPRECATE), (Action.REGISTER, Action.DEREGISTER),
              (Action.ASSIGN, Action.UNASSIGN))
    for group in groups:
        for t in tags:
            if t.parsed.action not in group:
                continue
            ev = _event(t)
            a = art(ev.artifact)
            if ev.action in (Action.CREATE, Action.DEPRECATE):
                a.direct.append(ev)
            elif ev.action in (Action.REGISTER, Action.DEREGISTER):
                assert ev.version is not None
                v = a.versions.setdefault(ev.version, Version(a.name, ev.version, ev.commit))
                v.registrations.append(ev)
            else:
                assert ev.stage is not None
                v2 = a.version_at(ev.commit)
                if v2 is None:  # GTO: a stage on an unregistered commit names the version by it
                    v2 = a.versions.setdefault(ev.commit, Version(a.name, ev.commit, ev.commit))
                ev.version = v2.version
                v2.stages.setdefault(ev.stage, []).append(ev)
    return reg


def load(git: GitRepo, name: str | None = None) -> Registry:
    return build(read_tags(git, name))


def stage_commit(git: GitRepo, name: str, stage: str) -> str | None:
    """The commit of the version of ``name`` in ``stage`` now (GTO's rules), or None."""
    art = load(git, name).artifacts.get(name)
    current = art.stages().get(stage) if art is not None and art.active else None
    return current[0].commit if current else None


def version_commit(git: GitRepo, name: str, version: str) -> str | None:
    """The commit of a registered, not deregistered, version of ``name`` (``1.2.0`` or
    ``v1.2.0``), or None."""
    from gitml.git.tags import normalize_version

    art = load(git, name).artifacts.get(name)
    ver = art.versions.get(normalize_version(version)) if art is not None else None
    return ver.commit if ver is not None and ver.registered and ver.active else None


def version_at_commit(git: GitRepo, name: str, commit: str) -> str | None:
    """The active registered version of ``name`` at ``commit`` (``v1.3.0``), or None."""
    art = load(git, name).artifacts.get(name)
    ver = art.version_at(commit) if art is not None else None
    return ver.version if ver is not None and ver.registered and ver.active else None
