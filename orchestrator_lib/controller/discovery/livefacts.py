"""Facts and classes as discovery sees them when an estate reads them from the hosts
(`facts: live` or `facts: cached` in the environment file), merged with the inventory's.

The merge rule (documented in README and ARCHITECTURE):
- facts: a fact the host reports (built-in or from /etc/orchestrator/facts.d) takes the host's
  value; an inventory fact the host does not report is kept (a fact only the controller knows);
- classes: a host with a classes file is described by that file; without one, the inventory's
  classes stand;
- where both sides speak and differ (a fact with two values, a class on one side only), the
  host's word is used and the difference is a contradiction, reported per host: a hand-kept fact
  that is wrong is named instead of silently picking the wrong hosts.

The cache (`facts: cached`) keeps each host's reply for `facts_ttl` seconds in a JSON file next to
the reports; an entry older than that is asked for again.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from ..inventory import Host

INVENTORY = "inventory"
#: How `orch facts` names the source of a built-in fact (the agent's own word is "builtin").
BUILTIN = "host (built-in)"


@dataclass
class Merged:
    """One host's merged view: each fact's value and source, the classes and theirs, and what the
    inventory said that the host contradicts."""
    host: Host
    sources: dict[str, str] = field(default_factory=dict)
    classes_source: str = INVENTORY
    contradictions: list[str] = field(default_factory=list)


def _source(origin: str) -> str:
    return BUILTIN if origin == "builtin" else f"host {origin}"


def merge(host: Host, reply: Mapping[str, Any]) -> Merged:
    """The host as discovery sees it after reading `reply` (rpcutil#facts data), by the rule above."""
    live = {str(k): str(v) for k, v in (reply.get("facts") or {}).items()}
    origins = reply.get("sources") or {}
    facts: dict[str, str] = dict(host.facts)
    sources = {name: INVENTORY for name in host.facts}
    contradictions = []
    for name, value in live.items():
        source = _source(str(origins.get(name, "builtin")))
        if name in host.facts and host.facts[name] != value:
            contradictions.append(f"fact {name}: inventory says {host.facts[name]!r}, the host {value!r} ({source})")
        sources[name] = f"{INVENTORY} + {source}" if host.facts.get(name) == value else source
        facts[name] = value
    classes, classes_source = host.classes, INVENTORY
    live_classes = reply.get("classes")
    if live_classes is not None:
        found = tuple(str(c) for c in live_classes)
        where = f"host {reply.get('classes_file') or 'classes file'}"
        missing = [c for c in host.classes if c not in found]
        extra = [c for c in found if c not in host.classes]
        if missing:
            contradictions.append(f"classes: the inventory's {', '.join(missing)} not in {where}")
        if extra:
            contradictions.append(f"classes: {', '.join(extra)} in {where}, not in the inventory")
        classes, classes_source = found, (f"{INVENTORY} + {where}" if not (missing or extra) else where)
    return Merged(replace(host, facts=facts, classes=classes), sources, classes_source, contradictions)


class FactsCache:
    """Host replies with the time they were read, in one JSON file (written whole, atomically)."""

    def __init__(self, path: Path, ttl: float) -> None:
        self.path = path
        self.ttl = ttl
        self.entries: dict[str, dict[str, Any]] = self._load()

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}  # no cache, or one we cannot read: ask the hosts (the cache is only a cache)
        hosts = data.get("hosts") if isinstance(data, dict) else None
        return {k: v for k, v in (hosts or {}).items() if isinstance(v, dict) and isinstance(v.get("at"), (int, float))}

    def fresh(self, name: str, now: float | None = None) -> Mapping[str, Any] | None:
        entry = self.entries.get(name)
        now = time.time() if now is None else now
        if entry is None or not 0 <= now - entry["at"] < self.ttl:
            return None
        return entry.get("reply") or {}

    def store(self, replies: Mapping[str, Mapping[str, Any]], now: float | None = None) -> None:
        at = time.time() if now is None else now
        for name, reply in replies.items():
            self.entries[name] = {"at": at, "reply": dict(reply)}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        partial.write_text(json.dumps({"hosts": self.entries}, indent=1, sort_keys=True) + "\n")
        partial.replace(self.path)
