"""The supervisor: binds the port, starts N workers on it, restarts any that die.

Files beside the deploy-state file ``<dir>/<stem>.json``:
``<stem>.pid`` (this process), ``<stem>.log`` (when started detached), ``<stem>.server.json``
(pid, host, port, url, workers; written once the port is bound) and ``<stem>.run/``
(worker status files and the Prometheus multiprocess folder).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from gitml.serve.worker import TOKEN_ENV


@dataclass(frozen=True)
class Paths:
    state: Path
    pid: Path
    log: Path
    info: Path
    run: Path

    @classmethod
    def of(cls, state_file: Path | str) -> Paths:
        s = Path(state_file).absolute()
        stem = s.name[:-5] if s.name.endswith(".json") else s.name
        return cls(s, s.parent / f"{stem}.pid", s.parent / f"{stem}.log",
                   s.parent / f"{stem}.server.json", s.parent / f"{stem}.run")


def bind(host: str, port: int) -> socket.socket:
    from gitml.errors import GitMLError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise GitMLError(f"cannot listen on {host}:{port}: {e.strerror}",
                         "choose another --port, or stop what is using it") from e
    sock.listen(4096)
    sock.set_inheritable(True)
    return sock


class Supervisor:
    def __init__(self, state_file: Path, *, host: str = "127.0.0.1", port: int = 8080,
                 workers: int = 1, token: str | None = None, traffic_dir: Path | None = None,
                 sample: float = 1.0, flush_seconds: float = 1.0, allow_pickle: bool = False,
                 max_body: int = 16 * 1024 * 1024) -> None:
        self.paths = Paths.of(state_file)
        self.host = host
        self.port = port
        self.n = max(1, workers)
        self.token = token
        self.traffic_dir = traffic_dir
        self.sample = sample
        self.flush_seconds = flush_seconds
        self.allow_pickle = allow_pickle
        self.max_body = max_body
        self.procs: list[int] = []
        self.stopping = False
        self.restarts = 0
        from gitml.serve.loaded import Watcher

        self.watcher = Watcher(self.paths.state, allow_pickle=allow_pickle)

    def _spawn(self, fd: int) -> int:
        """Fork a worker: it inherits the imports (and the socket) of this process."""
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(self.paths.run / "prom")
        parent = os.getpid()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid:
            return pid
        code = 1
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            from gitml.serve.worker import serve

            code = serve(fd, self.paths.state, self.paths.run, traffic_dir=self.traffic_dir,
                         sample=self.sample, flush_seconds=self.flush_seconds,
                         allow_pickle=self.allow_pickle, max_body=self.max_body,
                         token=self.token, parent=parent, preloaded=self.watcher)
        except BaseException as e:
            if not isinstance(e, SystemExit | KeyboardInterrupt):
                import traceback

                traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def _write_pids(self) -> None:
        from gitml.store.fsutil import atomic_write_text

        atomic_write_text(self.paths.run / "workers.json",
                          json.dumps({"pids": list(self.procs), "supervisor": os.getpid()}))

    def _stop(self, *_: object) -> None:
        self.stopping = True

    def run(self, on_ready: object | None = None) -> int:
        from gitml.store.fsutil import atomic_write_text

        p = self.paths
        shutil.rmtree(p.run, ignore_errors=True)
        (p.run / "workers").mkdir(parents=True)
        (p.run / "prom").mkdir()
        sock = bind(self.host, self.port)
        port = sock.getsockname()[1]
        url_host = f"[{self.host}]" if ":" in self.host else self.host
        info = {"pid": os.getpid(), "host": self.host, "port": port,
                "url": f"http://{url_host}:{port}", "workers": self.n,
                "state": str(p.state), "started": time.time()}
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        atomic_write_text(p.pid, f"{os.getpid()}\n")
        atomic_write_text(p.info, json.dumps(info))
        print(f"gitml serve: listening on {info['url']} with {self.n} worker(s)", flush=True)
        from gitml.serve.worker import preload

        preload()
        # Load the listed versions once here; forked workers start with them (and a worker
        # restarted after a crash answers as soon as it is forked).
        self.watcher.refresh()
        import gc

        # what is loaded now lives as long as the workers: keep the collector off it, so
        # forked workers neither pause to scan it nor copy its pages by touching them
        gc.collect()
        gc.freeze()
        fd = sock.fileno()
        self.procs = [self._spawn(fd) for _ in range(self.n)]
        self._write_pids()
        started = [time.monotonic()] * self.n
        backoff = [0.0] * self.n
        try:
            while not self.stopping:
                time.sleep(0.05)
                for i, pid in enumerate(self.procs):
                    if self.stopping:
                        break
                    done, status = os.waitpid(pid, os.WNOHANG)
                    if done == 0:
                        continue
                    from prometheus_client import multiprocess

                    multiprocess.mark_process_dead(pid, str(p.run / "prom"))  # type: ignore[no-untyped-call]
                    (p.run / "workers" / f"{pid}.json").unlink(missing_ok=True)
                    quick = time.monotonic() - started[i] < 2.0
                    backoff[i] = min(5.0, backoff[i] * 2 + 0.2) if quick else 0.0
                    print(f"gitml serve: worker {pid} exited ({_describe(status)}); restarting"
                          f"{f' in {backoff[i]:.1f}s' if backoff[i] else ''}", flush=True)
                    if backoff[i]:
                        time.sleep(backoff[i])
                    self.watcher.refresh()
                    self.procs[i] = self._spawn(fd)
                    started[i] = time.monotonic()
                    self.restarts += 1
                    self._write_pids()
        finally:
            for pid in self.procs:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            for pid in self.procs:
                while True:
                    try:
                        done, _ = os.waitpid(pid, os.WNOHANG)
                    except ChildProcessError:
                        break
                    if done:
                        break
                    if time.monotonic() > deadline:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)
                    time.sleep(0.02)
            sock.close()
            for f in (p.pid, p.info):
                f.unlink(missing_ok=True)
            print("gitml serve: stopped", flush=True)
        return 0


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="gitml-serve-supervisor")
    ap.add_argument("--state", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--traffic-dir")
    ap.add_argument("--sample", type=float, default=1.0)
    ap.add_argument("--flush-seconds", type=float, default=1.0)
    ap.add_argument("--allow-pickle", action="store_true")
    a = ap.parse_args(argv)
    from gitml.errors import GitMLError

    try:
        return Supervisor(Path(a.state), host=a.host, port=a.port, workers=a.workers,
                          token=os.environ.get(TOKEN_ENV) or None,
                          traffic_dir=Path(a.traffic_dir) if a.traffic_dir else None,
                          sample=a.sample, flush_seconds=a.flush_seconds,
                          allow_pickle=a.allow_pickle).run()
    except GitMLError as e:
        print(f"gitml serve: error: {e}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
