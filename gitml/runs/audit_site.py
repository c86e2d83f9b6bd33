"""The ``sitecustomize`` that ``git ml run`` injects into every Python process it starts.

Copied verbatim as ``sitecustomize.py`` into a temporary folder put first on
``PYTHONPATH``. It adds a :func:`sys.addaudithook` hook that reports, per process, the
files opened under the work tree (with read/write mode), the processes spawned, and
the process's own pid/ppid/argv; the first Python process also dumps its environment at
exit (``environment.py`` is copied next to it as ``_gitml_environment.py``). Then it runs
any ``sitecustomize`` that was already on the path. Standard library only; silent on
every failure — it must never break the user's program.
"""

from __future__ import annotations

import os
import sys


def _gitml_install() -> None:
    trace_dir = os.environ.get("GITML_TRACE_DIR")
    root = os.environ.get("GITML_WORKTREE")
    if not trace_dir or not root:
        return
    import json

    prefix = root.rstrip(os.sep) + os.sep
    state: dict[str, object] = {"pid": -1, "fd": -1, "busy": False}
    seen: set[tuple[str, bool]] = set()

    def _write(obj: dict[str, object]) -> None:
        pid = os.getpid()
        if state["pid"] != pid:  # first call, or a forked child: one file per process
            state["pid"] = pid
            seen.clear()
            try:
                state["fd"] = os.open(os.path.join(trace_dir, f"trace-{pid}.jsonl"),
                                      os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            except OSError:
                state["fd"] = -1
                return
            head = {"t": "proc", "pid": pid, "ppid": os.getppid(),
                    "argv": list(getattr(sys, "orig_argv", sys.argv)),
                    "exe": sys.executable}
            os.write(state["fd"], (json.dumps(head) + "\n").encode())  # type: ignore[arg-type]
        fd = state["fd"]
        if isinstance(fd, int) and fd >= 0:
            os.write(fd, (json.dumps(obj) + "\n").encode())

    def _hook(event: str, args: tuple[object, ...]) -> None:
        if state["busy"]:
            return
        if event == "open":
            path = args[0]
            if isinstance(path, int) or path is None:
                return
            state["busy"] = True
            try:
                p = os.path.abspath(os.fsdecode(path))  # type: ignore[arg-type]
                if not p.startswith(prefix):
                    return
                mode = args[1] if len(args) > 1 else None
                flags = args[2] if len(args) > 2 else 0
                write = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                    isinstance(flags, int) and bool(flags & (os.O_WRONLY | os.O_RDWR)))
                key = (p, write)
                if key in seen:
                    return
                seen.add(key)
                _write({"t": "open", "p": p[len(prefix):], "w": write})
            except Exception:
                pass
            finally:
                state["busy"] = False
        elif event in ("subprocess.Popen", "os.posix_spawn", "os.exec", "os.spawn", "os.system"):
            state["busy"] = True
            try:
                argv = args[1] if event != "os.system" and len(args) > 1 else args[0]
                if isinstance(argv, (bytes, str)):
                    argv = [os.fsdecode(argv)]
                if isinstance(argv, (list, tuple)):
                    _write({"t": "spawn", "argv": [os.fsdecode(a) if isinstance(a, bytes) else str(a)
                                                   for a in argv][:50]})
            except Exception:
                pass
            finally:
                state["busy"] = False

    sys.addaudithook(_hook)
    _write({"t": "start"})

    # The first Python process of the run dumps its environment when it exits.
    try:
        claim = os.open(os.path.join(trace_dir, "env.claim"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:
        return
    os.close(claim)
    me = os.getpid()

    def _dump_env() -> None:
        if os.getpid() != me:
            return
        state["busy"] = True
        try:
            here = os.path.dirname(os.path.abspath(__file__))
            if here not in sys.path:
                sys.path.insert(0, here)
            import _gitml_environment  # type: ignore[import-not-found]

            _gitml_environment.write(os.path.join(trace_dir, "env.json"),
                                     os.environ.get("GITML_ENV_CACHE") or None)
        except Exception:
            pass

    import atexit

    atexit.register(_dump_env)


def _gitml_chain() -> None:
    """Run the ``sitecustomize`` this one shadows, if there is one."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        import importlib.machinery
        import importlib.util

        paths = [p for p in sys.path if os.path.abspath(p or ".") != here]
        spec = importlib.machinery.PathFinder.find_spec("sitecustomize", paths)
        if spec is None or spec.loader is None:
            return
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except Exception:
        pass


try:  # noqa: SIM105 (no extra import in every traced process)
    _gitml_install()
except Exception:
    pass
_gitml_chain()
