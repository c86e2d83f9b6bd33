"""``git ml package``: a folder that serves one model version anywhere."""

from __future__ import annotations

import re

APP_DIR = "/app"
PORT = 8080


def image_name(model: str, label: str) -> str:
    repo = re.sub(r"[^a-z0-9._-]+", "-", f"gitml-{model}".lower()).strip("-._")
    tag = re.sub(r"[^A-Za-z0-9._-]+", "-", label)[:128]
    return f"{repo}:{tag}"


def server_command(workers: int, *, port: int = PORT, app_dir: str = APP_DIR) -> list[str]:
    """The gitml server serving the bundle in ``app_dir`` (the Dockerfile's CMD)."""
    return ["git-ml", "serve", "--state", f"{app_dir}/deploy-state.json", "--host", "0.0.0.0",
            "--port", str(port), "--workers", str(workers)]
