"""Runner events: one JSON object per line (journald, ELK), or a short human line.

Every event has ``ts`` (UTC ISO 8601), ``event`` and, when it concerns a policy, ``policy`` and
``policy_id``. Events: ``runner_start``, ``skip``, ``start``, ``item`` (one volume done),
``prune``, ``finish``, ``error``, ``runner_finish``. Values are plain JSON; no secrets: the event
builders only ever receive ids, names, counts, sizes and error messages (which never hold
secrets by the rules of storage.errors).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

EventSink = Callable[[dict[str, Any]], None]


def make_event(event: str, now: datetime, **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"ts": now.astimezone(UTC).isoformat(), "event": event}
    out.update({k: _plain(v) for k, v in fields.items() if v is not None})
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def json_line(event: dict[str, Any]) -> str:
    return json.dumps(event, sort_keys=False, separators=(",", ":"))


def human_line(event: dict[str, Any]) -> str:
    """A one-line description for people: ``[start] nightly: slot ...``."""
    name = event.get("policy")
    head = f"[{event['event']}]" + (f" {name}:" if name else "")
    skip = {"ts", "event", "policy", "policy_id"}
    body = " ".join(f"{k}={v}" for k, v in event.items() if k not in skip)
    return f"{head} {body}".rstrip()


def stream_sink(stream: TextIO, *, as_json: bool) -> EventSink:
    def sink(event: dict[str, Any]) -> None:
        stream.write((json_line(event) if as_json else human_line(event)) + "\n")
        stream.flush()

    return sink


@dataclass
class EventCollector:
    """A sink that keeps events in memory (tests, the API) and forwards them to other sinks."""

    forward: list[EventSink] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        for sink in self.forward:
            sink(event)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == kind]
