"""The catalog of machine types `recommend` chooses from: the shipped, dated one
(``catalog.toml`` beside this module) or a user's own file in the same format."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitml.errors import ConfigError

SHIPPED = Path(__file__).with_name("catalog.toml")


@dataclass(frozen=True)
class Machine:
    name: str
    provider: str
    vcpu: float
    memory_gib: float
    price_hour: float
    note: str = ""


@dataclass(frozen=True)
class Catalog:
    machines: list[Machine]
    source: str        # the file it came from
    as_of: str         # the date its prices refer to
    currency: str
    urls: list[str]


def _number(where: str, key: str, v: Any, positive: bool = True) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or (positive and v <= 0):
        raise ConfigError(f"{where}: {key} must be a positive number, got {v!r}",
                          "fix the catalog file (see gitml/deploy/catalog.toml for the format)")
    return float(v)


def load(path: Path | None = None) -> Catalog:
    """Parse a catalog strictly: a bad entry is named, never skipped."""
    p = path or SHIPPED
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"catalog {p} not found", "pass an existing file to --catalog") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"catalog {p}: not valid TOML: {e}",
                          "see gitml/deploy/catalog.toml for the format") from e
    items = raw.get("machines")
    if not isinstance(items, list) or not items:
        raise ConfigError(f"catalog {p}: no [[machines]] entries",
                          "list machines with name, provider, vcpu, memory_gib, price_hour")
    machines: list[Machine] = []
    seen: set[str] = set()
    for i, m in enumerate(items):
        where = f"catalog {p}: machines[{i}]"
        if not isinstance(m, dict) or not isinstance(m.get("name"), str) or not m["name"]:
            raise ConfigError(f"{where}: needs a name", "add name = \"...\"")
        name = str(m["name"])
        if name in seen:
            raise ConfigError(f"{where}: {name} is listed twice", "keep one entry per machine type")
        seen.add(name)
        machines.append(Machine(
            name=name, provider=str(m.get("provider", "")),
            vcpu=_number(where, "vcpu", m.get("vcpu")),
            memory_gib=_number(where, "memory_gib", m.get("memory_gib")),
            price_hour=_number(where, "price_hour", m.get("price_hour")),
            note=str(m.get("note", ""))))
    as_of = raw.get("prices_as_of") or raw.get("date")
    if not isinstance(as_of, str) or not as_of:
        raise ConfigError(f"catalog {p}: prices_as_of is missing",
                          "say when the prices were taken: prices_as_of = \"YYYY-MM\"")
    urls = [str(s.get("url")) for s in raw.get("sources", []) if isinstance(s, dict) and s.get("url")]
    return Catalog(machines, str(p), as_of, str(raw.get("currency", "USD")), urls)
