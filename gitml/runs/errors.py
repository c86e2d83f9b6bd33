"""Errors of the manifest area: all :class:`gitml.errors.GitMLError` with one-line messages."""

from __future__ import annotations

from gitml.errors import GitMLError


class ManifestError(GitMLError):
    """A run record, environment file or check result that cannot be parsed."""


class ParamsError(GitMLError):
    """A params or metrics file that cannot be read or lacks a requested key."""


class RunError(GitMLError):
    """`git ml run` / `git ml repro` could not start or record a command."""
