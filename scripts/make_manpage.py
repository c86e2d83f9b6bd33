"""Write docs/man/git-ml.1 from the command table (run after changing a command's help).

`git ml --help` is turned by Git into `git help ml`, which opens the man page git-ml(1);
the wheel installs this file under share/man/man1, where man finds it next to the
git-ml script on PATH."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gitml.cli.main import COMMANDS, build_parser  # noqa: E402


def _roff(text: str) -> str:
    return text.replace("\\", "\\e").replace("-", "\\-")


def render() -> str:
    parser = build_parser(None)
    lines = [
        '.TH GIT\\-ML 1 "" "gitml" "Git Manual"',
        ".SH NAME",
        "git\\-ml \\- " + _roff(parser.description or ""),
        ".SH SYNOPSIS",
        ".B git ml",
        "[\\-C PATH] [\\-q] COMMAND [ARGS]",
        ".SH DESCRIPTION",
        "Run \\fBgit ml COMMAND \\-h\\fR for the options of one command.",
        ".SH COMMANDS",
    ]
    for name, help_text in COMMANDS.items():
        lines += [".TP", f".B {_roff(name)}", _roff(help_text)]
    lines += [".SH OPTIONS", ".TP", ".B \\-C PATH", "run as if started in PATH",
              ".TP", ".B \\-q, \\-\\-quiet", "print only errors", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    (ROOT / "docs/man").mkdir(parents=True, exist_ok=True)
    (ROOT / "docs/man/git-ml.1").write_text(render())
