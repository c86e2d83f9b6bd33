"""Registry tags in GTO's grammar: the only place gitml parses or creates them.

A model registry is a set of *annotated* Git tags (lightweight ones are ignored, as GTO
ignores them), so a GTO user reads a gitml registry and the other way round:

```
credit@v1.3.0        register version v1.3.0 of "credit" at the tagged commit
credit@v1.3.0!       deregister it
credit#prod          assign stage "prod" to the version at the tagged commit
credit#prod#4        the same with a counter (GTO's default for stage tags)
credit#prod!#5       unassign "prod" from the version at the tagged commit
credit@deprecated#6  deprecate the whole artifact
models=credit@v1.0.0 artifact "models:credit" (GTO writes a name's ':' as '=')
```

The regular expressions are GTO's (``gto/constants.py``), copied verbatim so both tools
accept exactly the same tags. The counter after the last ``#`` is per artifact, across
all its tags: a new tag gets the highest counter so far plus one.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from gitml.errors import GitMLError

if TYPE_CHECKING:
    from gitml.git.repo import GitRepo

# -- GTO's grammar, verbatim --------------------------------------------------------------
SEPARATOR_IN_NAME = ":"
SEPARATOR_IN_TAG = "="
_DIRNAME = "[a-zA-Z0-9-_./]+"
_NAME = r"[a-zA-Z0-9]([a-zA-Z0-9-/_]*[a-zA-Z0-9])?"
_SEMVER = (r"(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
           r"(?:-(?P<prerelease>(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
           r"(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
           r"(?:\+(?P<buildmetadata>[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?")
_COUNTER = "?P<counter>[0-9]+"
_FULLNAME = f"(?P<dirname>{_DIRNAME}{SEPARATOR_IN_NAME})?(?P<name>{_NAME})"
_FULLNAME_IN_TAG = _FULLNAME.replace(SEPARATOR_IN_NAME, SEPARATOR_IN_TAG)
NAME_RE = re.compile(f"^{_NAME}$")
FULLNAME_RE = re.compile(f"^{_FULLNAME}$")
TAG_RE = re.compile(
    f"^(?P<artifact>{_FULLNAME_IN_TAG})(((#(?P<stage>{_NAME})|@(?P<version>v{_SEMVER}))"
    f"(?P<cancel>!?))|@((?P<deprecated>deprecated)|(?P<created>created)))(#({_COUNTER}))?$")
SEMVER_RE = re.compile(f"^v{_SEMVER}$")
# -----------------------------------------------------------------------------------------

#: the ref namespace of tags, and what a registry tag needs to contain (a cheap pre-filter)
TAG_PREFIX = "refs/tags/"


class Action(StrEnum):
    CREATE = "create"
    DEPRECATE = "deprecate"
    REGISTER = "register"
    DEREGISTER = "deregister"
    ASSIGN = "assign"
    UNASSIGN = "unassign"


@dataclass(frozen=True)
class ParsedTag:
    """What a registry tag name says. ``name`` uses ':' (``dir:name``), as GTO reports it;
    ``version`` keeps its 'v' (``v1.3.0``)."""

    name: str
    action: Action
    version: str | None = None
    stage: str | None = None
    counter: int | None = None


def name_to_tag(name: str) -> str:
    return name.replace(SEPARATOR_IN_NAME, SEPARATOR_IN_TAG)


def tag_to_name(value: str) -> str:
    return value.replace(SEPARATOR_IN_TAG, SEPARATOR_IN_NAME)


def parse(tag: str) -> ParsedTag | None:
    """The meaning of a tag name, or None when it is not a registry tag."""
    m = TAG_RE.search(tag)
    if not m:
        return None
    name = tag_to_name(m["artifact"])
    counter = int(m["counter"]) if m["counter"] else None
    if m["version"]:
        action = Action.DEREGISTER if m["cancel"] == "!" else Action.REGISTER
        return ParsedTag(name, action, version=m["version"], counter=counter)
    if m["stage"]:
        action = Action.UNASSIGN if m["cancel"] == "!" else Action.ASSIGN
        return ParsedTag(name, action, stage=m["stage"], counter=counter)
    if m["deprecated"]:
        return ParsedTag(name, Action.DEPRECATE, counter=counter)
    return ParsedTag(name, Action.CREATE, counter=counter)


def format_tag(action: Action, name: str, *, version: str | None = None,
               stage: str | None = None, counter: int | None = None) -> str:
    """The tag name for an action (GTO's templates); raises on names GTO would refuse."""
    check_name(name)
    art = name_to_tag(name)
    if action in (Action.REGISTER, Action.DEREGISTER):
        v = normalize_version(version or "")
        tag = f"{art}@{v}" + ("!" if action is Action.DEREGISTER else "")
    elif action in (Action.ASSIGN, Action.UNASSIGN):
        check_stage(stage or "")
        tag = f"{art}#{stage}" + ("!" if action is Action.UNASSIGN else "")
    elif action is Action.DEPRECATE:
        tag = f"{art}@deprecated"
    else:
        tag = f"{art}@created"
    if counter is not None:
        tag += f"#{counter}"
    parsed = parse(tag)
    if parsed is None or parsed.name != name:  # pragma: no cover - the templates match TAG_RE
        raise GitMLError(f"cannot make a registry tag for {name!r}")
    return tag


def check_name(name: str) -> str:
    if not FULLNAME_RE.match(name):
        raise GitMLError(
            f"{name!r} cannot name a registry artifact (GTO's rule: letters, digits, '-', '_', "
            "'/', starting and ending with a letter or digit; optionally 'dir:' before it)",
            "rename the model, e.g. without '.'")
    return name


def check_stage(stage: str) -> str:
    if not NAME_RE.match(stage):
        raise GitMLError(f"invalid stage name {stage!r}",
                         "use letters, digits, '-', '_' or '/', starting and ending with a letter or digit")
    return stage


def normalize_version(version: str) -> str:
    """``1.3.0`` or ``v1.3.0`` -> ``v1.3.0`` (a SemVer 2.0 version, GTO's 'v' prefix)."""
    v = version if version.startswith("v") else f"v{version}"
    if not SEMVER_RE.match(v):
        raise GitMLError(f"invalid version {version!r}", "use MAJOR.MINOR.PATCH, e.g. 1.3.0")
    return v


def semver_key(version: str) -> tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]:
    """A sort key giving SemVer 2.0 precedence (build metadata ignored; a pre-release sorts
    before its release; numeric identifiers before alphanumeric ones)."""
    m = SEMVER_RE.match(version)
    if not m:
        raise GitMLError(f"invalid version {version!r}")
    pre = m["prerelease"]
    ids: tuple[tuple[int, int | str], ...] = ()
    if pre:
        ids = tuple((0, int(p)) if p.isdigit() else (1, p) for p in pre.split("."))
    return (int(m["major"]), int(m["minor"]), int(m["patch"]), 0 if pre else 1, ids)


def bump(version: str, part: str) -> str:
    m = SEMVER_RE.match(version)
    if not m:
        raise GitMLError(f"invalid version {version!r}")
    major, minor, patch = int(m["major"]), int(m["minor"]), int(m["patch"])
    if part == "major":
        return f"v{major + 1}.0.0"
    if part == "minor":
        return f"v{major}.{minor + 1}.0"
    if part == "patch":
        return f"v{major}.{minor}.{patch + 1}"
    raise GitMLError(f"unknown version part {part!r}", "use major, minor or patch")


# -- reading and writing tags ---------------------------------------------------------------

@dataclass(frozen=True)
class RegistryTag:
    """One annotated registry tag as Git holds it."""

    tag: str
    parsed: ParsedTag
    commit: str              # the commit the tag points at (peeled)
    time: int                # tagger date, Unix seconds (GTO orders events by it)
    tagger: str
    email: str
    message: str             # without the signature block
    signed: bool             # carries a (GPG or SSH) signature block; not yet verified


_FIELDS = ("%(refname:strip=2)", "%(objecttype)", "%(*objectname)", "%(*objecttype)",
           "%(taggername)", "%(taggeremail:trim)", "%(taggerdate:unix)",
           "%(contents:subject)", "%(contents:body)", "%(contents:signature)")


def read_tags(git: GitRepo, name: str | None = None) -> list[RegistryTag]:
    """Every annotated registry tag (of one artifact when ``name`` is given), oldest first
    by tagger date, ties in tag-name order. One ``git for-each-ref`` process."""
    fmt = "%00".join(_FIELDS) + "%00%01"
    out = git.run_git("for-each-ref", f"--format={fmt}", "refs/tags/")
    result: list[RegistryTag] = []
    for record in out.split("\0\x01"):
        record = record.lstrip("\n")
        if not record:
            continue
        f = record.split("\0")
        if len(f) < len(_FIELDS):
            continue
        tag, otype, target, target_type, tagger, email, when, subject, body, sig = f[:10]
        if otype != "tag" or target_type != "commit":
            continue  # lightweight tags and tags of trees/blobs are not registry events
        parsed = parse(tag)
        if parsed is None or (name is not None and parsed.name != name):
            continue
        message = subject + ("\n\n" + body.rstrip("\n") if body.strip() else "")
        result.append(RegistryTag(tag, parsed, target, int(when or 0), tagger, email,
                                  message.strip(), bool(sig.strip())))
    result.sort(key=lambda t: (t.time, t.tag))
    return result


def next_counter(tags: list[RegistryTag], name: str) -> int:
    """GTO's counter for the next numbered tag of ``name``: one more than any so far."""
    counters = [t.parsed.counter for t in tags if t.parsed.name == name and t.parsed.counter]
    return max(counters, default=0) + 1


def create_tag(git: GitRepo, tag: str, commit: str, message: str, *, sign: bool = False,
               not_before: int | None = None) -> None:
    """Create an annotated tag (signed with the user's configured key when ``sign``).

    ``not_before``: GTO orders a model's events by tagger date in whole seconds, so a tag
    that must come after another waits until the clock has passed that second."""
    if parse(tag) is None:
        raise GitMLError(f"{tag!r} is not a registry tag")
    if not_before is not None:
        while int(time.time()) <= not_before:
            time.sleep(max(0.01, not_before + 1 - time.time()))
    args = ["tag", "-a", "--cleanup=whitespace", "-F", "-"]
    if sign:
        args.append("-s")
    proc = subprocess.run(["git", *args, tag, commit], cwd=git.workdir, input=message + "\n",
                          capture_output=True, text=True, env=os.environ.copy())
    if proc.returncode == 0:
        # what the tag hooks said (a deploy on tag reports here)
        sys.stderr.write(proc.stderr)
        sys.stderr.flush()
        return
    if proc.returncode != 0:
        msg = proc.stderr.strip().splitlines()
        detail = msg[-1] if msg else str(proc.returncode)
        if "already exists" in detail:
            raise GitMLError(f"tag {tag} already exists", "see `git ml history`")
        hint = "check user.signingkey and gpg.format" if sign else "see `git tag --help`"
        raise GitMLError(f"cannot create tag {tag}: {detail}", hint)


@dataclass(frozen=True)
class Verification:
    ok: bool  # Git says the signature is good (for SSH: by a key in the allowed-signers file)
    signer: str | None  # SSH: the principal; GPG: the primary key's fingerprint
    reason: str  # one line
    kind: str | None = None  # "ssh" | "gpg" | "x509" | None (unsigned)
    fingerprint: str | None = None  # GPG: the key that signed (a subkey, maybe)
    primary: str | None = None  # GPG: its primary key's fingerprint (VALIDSIG's last field)


_KINDS = (("-----BEGIN SSH SIGNATURE-----", "ssh"), ("-----BEGIN PGP SIGNATURE-----", "gpg"),
          ("-----BEGIN SIGNED MESSAGE-----", "x509"))
_GPG_FAILURES = (  # status keyword -> why, in the order gpg's own severity suggests
    ("BADSIG", "bad GPG signature (the tag or its signature was altered)"),
    ("REVKEYSIG", "signed by a revoked GPG key {key}"),
    ("EXPKEYSIG", "signed by an expired GPG key {key}"),
    ("EXPSIG", "the GPG signature has expired"),
    ("NO_PUBKEY", "signed by GPG key {key}, which is not in the deploying user's keyring"),
    ("ERRSIG", "the GPG signature cannot be checked (key {key})"),
)


def signature_kind(git: GitRepo, tag: str) -> str | None:
    """How an annotated tag is signed (``ssh``, ``gpg``, ``x509``), or None."""
    proc = subprocess.run(["git", "cat-file", "tag", "--", tag], cwd=git.workdir,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    return next((kind for marker, kind in _KINDS if marker in proc.stdout), None)


def _gpg_status(text: str) -> dict[str, list[str]]:
    """``[GNUPG:] KEYWORD args`` lines of ``gpg --status-fd`` (the first of each keyword)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith("[GNUPG:] "):
            parts = line.split()[1:]
            if parts:
                out.setdefault(parts[0], parts[1:])
    return out


def verify_tag(git: GitRepo, tag: str, allowed_signers: str | None) -> Verification:
    """``git verify-tag --raw`` with the given SSH allowed-signers file (GPG signatures use
    the deploying user's keyring). A tag without a signature, with a bad one, or signed by a
    key not in the file (SSH) or not in the keyring (GPG) fails with the reason. For GPG,
    which keys to trust is the caller's policy: ``primary`` is the fingerprint to check."""
    kind = signature_kind(git, tag)
    args = ["git"]
    if allowed_signers:
        args += ["-c", f"gpg.ssh.allowedSignersFile={allowed_signers}"]
    args += ["verify-tag", "--raw", "--", tag]
    proc = subprocess.run(args, cwd=git.workdir, capture_output=True, text=True)
    text = (proc.stderr + proc.stdout).strip()
    if kind == "gpg":
        return _gpg_verdict(proc.returncode, text)
    if proc.returncode == 0:
        m = re.search(r'Good "git" signature for (\S+)', text) or re.search(r"GOODSIG \S+ (.+)", text)
        return Verification(True, m.group(1) if m else None, "good signature", kind)
    if kind is None or "no signature found" in text.lower():
        return Verification(False, None, "the tag is not signed")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return Verification(False, None, lines[-1] if lines else f"git verify-tag exit {proc.returncode}", kind)


def _gpg_verdict(returncode: int, text: str) -> Verification:
    st = _gpg_status(text)
    valid = st.get("VALIDSIG")
    if returncode == 0 and "GOODSIG" in st and valid:
        # VALIDSIG <fpr> <date> <ts> <expire> <version> <reserved> <algo> <hash> <class> <primary>
        primary = (valid[9] if len(valid) > 9 else valid[0]).upper()
        return Verification(True, primary, "good GPG signature", "gpg", valid[0].upper(), primary)
    for keyword, why in _GPG_FAILURES:
        if keyword in st:
            key = (st[keyword] or ["?"])[0]
            return Verification(False, None, why.format(key=key), "gpg")
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("[GNUPG:]")]
    return Verification(False, None, lines[-1] if lines else f"git verify-tag exit {returncode}", "gpg")
