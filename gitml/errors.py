"""One root error class for everything gitml reports to a user.

The CLI maps :class:`GitMLError` to a one-line message and its ``exit_code``; any other
exception is a bug and is shown with a traceback only when ``GITML_DEBUG=1``.
"""

from __future__ import annotations


class GitMLError(Exception):
    """A failure the user can act on. ``hint`` says what to do next."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class UsageError(GitMLError):
    """Wrong arguments or options: exit code 2, like argparse."""

    exit_code = 2


class NotARepositoryError(GitMLError):
    pass


class ConfigError(GitMLError):
    """A malformed or incomplete config file or key."""


class RemoteOptionError(ConfigError):
    """A remote option with a bad value; says which, so the layers that know the commands
    can say how to fix it."""

    def __init__(self, message: str, *, remote: str, option: str, example: str) -> None:
        super().__init__(message)
        self.remote = remote
        self.option = option
        self.example = example


class PointerError(GitMLError):
    """A pointer file that cannot be parsed."""


class ObjectMissingError(GitMLError):
    """An object that is neither in the local store nor reachable on a remote."""


class CorruptObjectError(GitMLError):
    """Bytes that do not hash to the id they are stored under."""


class RemoteError(GitMLError):
    """A remote that cannot be reached, read or written."""
