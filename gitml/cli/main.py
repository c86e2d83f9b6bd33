"""`git ml` entry point: argument parsing, command dispatch and the one error handler.

Every command lives in its own module ``gitml.cli.cmd_<name>`` exposing ``register(parser)``
and ``run(args) -> int``; its one-line help is in ``COMMANDS`` below, so listing commands
imports none of them. Only the module of the command being run is imported, so heavy
libraries never slow down other commands.
"""

from __future__ import annotations

import os
import sys

from gitml.errors import GitMLError, UsageError

TYPE_CHECKING = False  # importing typing costs ~2 ms of each command's start-up
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

# name -> one-line help. The order is the order of `git ml --help`.
COMMANDS: dict[str, str] = {
    "init": "set up gitml in this Git repository",
    "add": "put files or folders in the store and stage their pointers",
    "status": "show which artifacts are modified, missing or not in the store",
    "watch": "start, stop or query the watcher that makes status of big folders instant",
    "checkout": "materialise the artifacts the current commit points to",
    "remote": "add, list, modify or remove remotes",
    "push": "upload artifacts to a remote",
    "fetch": "download artifacts from a remote into the store",
    "pull": "fetch, then checkout",
    "gc": "delete store objects no ref, stash or worktree reaches",
    "fsck": "verify every object against its id",
    "install": "install the Git hooks (chains existing ones)",
    "uninstall": "remove the Git hooks gitml installed",
    "run": "run a command and record its lineage, environment and metrics",
    "log": "commits with the artifacts they changed and their key metrics",
    "show": "the full manifest of a commit",
    "diff": "compare metrics, params, environment and data of two commits",
    "lineage": "draw where an artifact came from",
    "repro": "re-run the stages whose inputs changed",
    "eval": "evaluate a model: metrics and gates",
    "bias": "fairness metrics per sensitive attribute",
    "explain": "SHAP explanations: global importance or one prediction",
    "drift": "data drift between a reference and a current data set",
    "validate": "data quality against rules and the previous version",
    "check": "run every gate (what the commit hook runs)",
    "report": "write one self-contained HTML report",
    "register": "register a model version: an annotated tag NAME@vX.Y.Z (gates must have passed)",
    "promote": "assign a stage to a version: an annotated tag NAME#STAGE#N (deploys on tag)",
    "unassign": "take a stage away from the version in it (NAME#STAGE!#N)",
    "deprecate": "deregister a version (NAME@vX.Y.Z!) or deprecate a model (NAME@deprecated)",
    "models": "models, their latest versions, stages and what serves where",
    "history": "who registered, promoted, deployed or rolled back what, when, with metrics",
    "deploy": "deploy a stage or version: verify, smoke-test, switch, watch, roll back on failure",
    "rollback": "switch a deployed model back to the previous (or a given) version",
    "deployments": "what serves where, since when and why (or at a given time)",
    "card": "the model card of a version (Markdown or HTML)",
    "ci": "deploy from CI on tag pushes (github) or from a bare deploy repository (receiver)",
    "serve": "serve a model over HTTP (MLflow /invocations and KServe V2 on one port)",
    "profile": "measure a model version's load time, memory, latency and throughput",
    "recommend": "replicas, CPU/memory and a machine type for a throughput and latency target",
    "package": "a self-contained folder that serves a model version (Dockerfile, MLmodel)",
    "k8s": "Kubernetes manifests for a model version, sized from its profile",
    "compile": "compile a model to ONNX behind a parity gate (faster, smaller)",
    "monitor": "judge a served model's traffic: drift, live metrics, learned limits, alarms",
    "retrain": "re-run a model's training on new data, gate it, register it, maybe promote it",
    "exp": "experiments: run, show, compare, apply, share trials kept on hidden refs",
    "sweep": "hyperparameter search (Optuna) whose trials are experiments",
}


def _command_module(name: str):  # type: ignore[no-untyped-def]
    import importlib

    return importlib.import_module(f"gitml.cli.cmd_{name}")


def build_parser(selected: str | None) -> argparse.ArgumentParser:
    import argparse

    parser = argparse.ArgumentParser(
        prog="git ml",
        description="Version data sets and models next to your code; guard and ship them with Git hooks.",
    )
    parser.add_argument("-C", dest="chdir", metavar="PATH", help="run as if started in PATH")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        if selected is not None and name != selected:
            continue  # ~0.2 ms each (argparse looks up translations per parser): only the one run
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                       help="print only errors")
        if name == selected:
            _command_module(name).register(p)
    return parser


def _selected_command(argv: Sequence[str]) -> str | None:
    it = iter(argv)
    for arg in it:
        if arg == "-C":
            next(it, None)
            continue
        if arg.startswith("-"):
            continue
        return arg if arg in COMMANDS else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:  # also while the command's modules are still being imported
        print("gitml: interrupted; the store and work tree are consistent, re-run to finish",
              file=sys.stderr)
        return 130


# The no-op status that scripts and prompts run all day: proved from the last status's
# snapshot without importing the command machinery (see gitml.artifacts.quick_status).
_QUICK_STATUS = (["status"], ["status", "--exit-code"])


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv in _QUICK_STATUS and os.environ.get("GITML_NO_QUICK_STATUS") != "1":
        from gitml.artifacts.quick_status import clean_count, clean_line

        n = clean_count()
        if n is not None:
            print(clean_line(n))
            return 0
    selected = _selected_command(argv)
    parser = build_parser(selected)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        if args.chdir:
            _chdir(args.chdir)
        return int(_command_module(args.command).run(args) or 0)
    except GitMLError as e:
        _report_error(e)
        return e.exit_code
    except PermissionError as e:  # a file or folder the user can fix the permissions of
        _report_error(GitMLError(f"permission denied: {e.filename or e}",
                                 "check the permissions of that path and of .git/ml"))
        return 1
    except KeyboardInterrupt:
        print("gitml: interrupted; the store and work tree are consistent, re-run to finish",
              file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 141
    except Exception as e:  # a bug: keep the message short unless debugging
        if os.environ.get("GITML_DEBUG") == "1":
            raise
        print(f"gitml: internal error: {type(e).__name__}: {e} "
              "(set GITML_DEBUG=1 for a traceback and report it)", file=sys.stderr)
        return 3


def _chdir(path: str) -> None:
    try:
        os.chdir(path)
    except OSError as e:
        raise UsageError(f"-C {path}: {e.strerror}", "give an existing folder") from e


def _report_error(e: GitMLError) -> None:
    if os.environ.get("GITML_DEBUG") == "1":
        import traceback

        traceback.print_exc()
    if e.hint is None:
        e.hint = default_hint(e)
    print(f"gitml: error: {e}", file=sys.stderr)


def default_hint(e: GitMLError) -> str | None:
    """What to do about an error raised without a hint by a layer that does not know the
    commands (the store)."""
    from gitml.errors import CorruptObjectError, ObjectMissingError

    if isinstance(e, ObjectMissingError):
        return "run `git ml pull` (or `git ml fetch`)"
    if isinstance(e, CorruptObjectError):
        return "run `git ml fsck`, then `git ml fetch --repair`"
    return None


if __name__ == "__main__":
    sys.exit(main())
