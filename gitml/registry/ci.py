"""`git ml ci github`: a GitHub Actions workflow that deploys on a registry tag push."""

from __future__ import annotations

from pathlib import Path

from gitml.errors import GitMLError
from gitml.repo import MLRepo

WORKFLOW = ".github/workflows/gitml-deploy.yml"

TEMPLATE = """\
# Written by `git ml ci github`. A pushed registry tag (GTO grammar: name@vX.Y.Z,
# name#stage#N) deploys the model: the same `git ml deploy` a local tag hook runs, which
# verifies ids and recorded gates, smoke-tests the new version and rolls back on failure.
name: gitml deploy
on:
  push:
    tags: ["*@v*", "*#*"]
permissions:
  contents: write        # deploy records are pushed back to refs/gitml/deployments/*
jobs:
  deploy:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
        with:
          fetch-depth: 0               # every tag: the registry is the tags
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
      - run: pip install gitml
      - name: fetch deploy records
        run: git fetch origin '+refs/gitml/*:refs/gitml/*' || true
      - name: deploy
        env:
          GITML_SERVE_TOKEN: ${{{{ secrets.GITML_SERVE_TOKEN }}}}
        run: |
          tag="${{GITHUB_REF#refs/tags/}}"
          case "$tag" in
            *"#"*) ref="${{tag%%#*}}#$(printf '%s' "$tag" | cut -d'#' -f2)" ;;
            *) ref="$tag" ;;
          esac
          case "$tag" in *!*) echo "$tag takes something away; nothing to deploy"; exit 0 ;; esac
          git ml deploy "$ref" --target {target}
      - name: push deploy records
        if: always()
        run: git push origin 'refs/gitml/deployments/*:refs/gitml/deployments/*' || true
"""


def write_github_workflow(repo: MLRepo, *, target: str = "local", force: bool = False) -> Path:
    from gitml.store.fsutil import atomic_write_text

    path = repo.workdir / WORKFLOW
    if path.exists() and not force:
        raise GitMLError(f"{WORKFLOW} exists", "--force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, TEMPLATE.format(target=target))
    return path
