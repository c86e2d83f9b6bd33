"""One worker process: the app on uvicorn, accepting on the socket its supervisor bound.

Run by the supervisor as ``python -m gitml.serve.worker --fd N ...``; all workers share
one listening socket (one accept queue), so a killed worker loses only the connections it
had accepted. The models are loaded before the worker accepts anything.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gitml.serve.loaded import Watcher

TOKEN_ENV = "GITML_SERVE_TOKEN"


def _die_with_parent() -> None:
    if sys.platform != "linux":
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


PRELOAD = ("numpy", "pandas", "pyarrow.parquet", "sklearn.pipeline", "sklearn.compose",
           "sklearn.preprocessing", "sklearn.linear_model", "uvicorn", "uvloop",
           "httptools", "orjson", "gitml.serve.app", "uvicorn.protocols.http.httptools_impl",
           "uvicorn.loops.uvloop")


def preload() -> None:
    """Import what every worker needs once, in the supervisor, before forking workers."""
    import importlib
    import warnings

    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    for mod in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(mod)
    from gitml.models.load import skops_io

    skops_io()  # without skops' default trust lists (the loader passes its audited list)


def serve(fd: int, state: Path, run_dir: Path, *, traffic_dir: Path | None, sample: float,
          flush_seconds: float, allow_pickle: bool, max_body: int, token: str | None,
          parent: int, preloaded: Watcher | None = None) -> int:
    """The body of one worker process (forked by the supervisor)."""
    _die_with_parent()
    import uvicorn

    from gitml.serve.app import App

    app = App(state, run_dir=run_dir, token=token, traffic_dir=traffic_dir, sample=sample,
              allow_pickle=allow_pickle, max_body=max_body, flush_seconds=flush_seconds)
    if preloaded is not None:
        app.watcher.adopt(preloaded)
    app.start()
    sock = socket.socket(fileno=os.dup(fd))
    loop = "asyncio"
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        pass
    http = "h11"
    try:
        import httptools  # noqa: F401

        http = "httptools"
    except ImportError:
        pass
    config = uvicorn.Config(app, loop=loop, http=http, lifespan="off", access_log=False,
                            log_level="warning", timeout_keep_alive=30,
                            server_header=False, date_header=False)
    server = uvicorn.Server(config)
    if os.getppid() != parent:  # the supervisor died while we loaded
        return 1
    try:
        server.run(sockets=[sock])
    finally:
        app.close()
        (run_dir / "workers" / f"{os.getpid()}.json").unlink(missing_ok=True)
    return 0
