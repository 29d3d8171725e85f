"""Form bodies of the dashboard: bounded before they are parsed, fields bounded before the services.

``parse_form`` is pure (bytes -> fields); ``read_form`` reads a request body up to ``FORM_MAX``
bytes (the edge's ``api.max_body_bytes`` applies as well). Every refusal is ``InvalidInput``
naming the field and what is accepted, shown on the page like any other typed error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from starlette.requests import Request

from storage.bounds import short_repr
from storage.errors import InvalidInput
from storage.names import parse_labels

FORM_MAX = 64 * 1024  # bytes of one form body
FIELDS_MAX = 32  # fields of one form
FIELD_MAX = 4096  # characters of one field value
FORM_TYPE = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Form:
    """Parsed fields; ``text`` reads one, stripped and bounded (empty: None)."""

    fields: Mapping[str, str] = field(default_factory=dict)

    def text(self, name: str, max_len: int, *, label: str | None = None) -> str | None:
        value = (self.fields.get(name) or "").strip()
        if not value:
            return None
        if len(value) > max_len:
            raise InvalidInput(f"{label or name} is {len(value)} characters long; accepted: at most {max_len}", field=name)
        return value

    def required(self, name: str, max_len: int, *, label: str | None = None) -> str:
        value = self.text(name, max_len, label=label)
        if value is None:
            raise InvalidInput(f"{label or name} is required", field=name)
        return value

    def choice(self, name: str, accepted: tuple[str, ...], default: str) -> str:
        value = self.text(name, 64) or default
        if value not in accepted:
            raise InvalidInput(f"{name} {short_repr(value)} is not accepted; accepted: {', '.join(accepted)}", field=name)
        return value


def parse_form(body: bytes) -> Form:
    """``a=1&b=2`` -> Form; refuses non-UTF-8, too many fields, repeated fields and long values."""
    if len(body) > FORM_MAX:
        raise InvalidInput(f"the form is {len(body)} bytes; accepted: at most {FORM_MAX}", field="form")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("the form is not UTF-8 text", field="form") from None
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False, max_num_fields=FIELDS_MAX)
    except ValueError:
        raise InvalidInput(f"the form has more than {FIELDS_MAX} fields", field="form") from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            raise InvalidInput(f"the form gives field {short_repr(name)} twice; accepted: once", field=name[:64])
        if len(name) > 64 or len(value) > FIELD_MAX:
            raise InvalidInput(f"field {short_repr(name)} is too long; accepted: at most {FIELD_MAX} characters", field=name[:64])
        fields[name] = value
    return Form(fields)


async def read_form(request: Request) -> Form:
    """The request's form body, bounded; only ``application/x-www-form-urlencoded`` is accepted."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != FORM_TYPE:
        raise InvalidInput(f"content type {short_repr(kind or 'none')} is not accepted; accepted: {FORM_TYPE}", field="form")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or len(declared) > 12 or int(declared) > FORM_MAX):
        raise InvalidInput(f"the form is larger than {FORM_MAX} bytes", field="form")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_MAX:
            raise InvalidInput(f"the form is larger than {FORM_MAX} bytes", field="form")
    return parse_form(bytes(body))


def parse_label_text(text: str | None) -> dict[str, str] | None:
    """``tier=gold, team=db`` (commas or new lines) -> labels, validated like ``--label`` (storage.names)."""
    if not text:
        return None
    items = [part.strip() for line in text.splitlines() for part in line.split(",") if part.strip()]
    return parse_labels(items) or None  # counts, keys and values checked there
