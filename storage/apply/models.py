"""The stack file as pydantic models; ``stack_schema()`` is the published JSON Schema.

Every string and list is bounded here (the file itself is bounded in ``source``); extra keys
are refused everywhere (``extra="forbid"``, also in the policy models reused from
storage.policy.models).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, field_validator, model_validator

from storage.bounds import LABELS_MAX, LIST_MAX, NAME_MAX, SIZE_MAX, SIZE_TEXT_MAX
from storage.errors import InvalidInput
from storage.exports.iscsi_names import validate_initiators
from storage.names import validate_name
from storage.policy.models import PolicySpec
from storage.scheduler.hints import HOST_RE
from storage.units import parse_size

MAX_FILE_BYTES = 256 * 1024  # a stack file larger than this is refused before it is parsed
MAX_DEPTH = 16  # nesting of mappings and sequences
MAX_ITEMS = 500  # volumes, policies or exports in one file
MAX_LABELS = LABELS_MAX  # the rest of the bounds are storage.bounds', as for every other input
MAX_INITIATORS = LIST_MAX
SCHEMA_ID = "https://storage.invalid/schemas/stack-v1.json"


def _checked(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except InvalidInput as exc:
        raise ValueError(exc.message) from None


class VolumeDecl(BaseModel):
    """One volume: its size (grows only), where it lives, and its labels (replaced as a whole)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=NAME_MAX)
    size: StrictInt | str = Field(description="bytes or 512M, 10G, 1T (powers of 1024)")
    pool: str | None = Field(default=None, min_length=1, max_length=NAME_MAX, description="a configured pool")
    host: str | None = Field(default=None, min_length=1, max_length=253, description="the host the volume must be on")
    labels: dict[str, str] = Field(default_factory=dict, max_length=MAX_LABELS)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _checked(validate_name, value, kind="volume")

    @field_validator("size")
    @classmethod
    def _size(cls, value: int | str) -> int | str:
        if isinstance(value, str) and len(value) > SIZE_TEXT_MAX:
            raise ValueError(f"size is {len(value)} characters long; accepted: at most {SIZE_TEXT_MAX}, e.g. 10G")
        if isinstance(value, int) and not 0 < value <= SIZE_MAX:
            raise ValueError(f"size {value} is not accepted; accepted: 1 to {SIZE_MAX} bytes, or e.g. 10G")
        if not 0 < _checked(parse_size, value) <= SIZE_MAX:
            raise ValueError(f"size {value!r} is not accepted; accepted: greater than 0 and at most 8P, e.g. 10G")
        return value

    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        if value is not None and not HOST_RE.fullmatch(value):
            raise ValueError(f"host {value!r} is not accepted; accepted: a host name (letters, digits, . _ -)")
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        from storage.volumes.service import validate_labels

        return _checked(validate_labels, value)

    def size_bytes(self) -> int:
        return parse_size(self.size)


class ExportDecl(BaseModel):
    """An iSCSI export of a declared volume (CHAP secrets are generated, never written in the file)."""

    model_config = ConfigDict(extra="forbid")
    volume: str = Field(min_length=1, max_length=NAME_MAX)
    chap: StrictBool = True
    initiators: list[str] = Field(default_factory=list, max_length=MAX_INITIATORS)

    @field_validator("initiators")
    @classmethod
    def _initiators(cls, value: list[str]) -> list[str]:
        return list(_checked(validate_initiators, value))


class Stack(BaseModel):
    """A stack file: what this host should hold. Names are unique per kind."""

    model_config = ConfigDict(extra="forbid", title="storage stack")
    version: Literal[1] = 1
    volumes: list[VolumeDecl] = Field(default_factory=list, max_length=MAX_ITEMS)
    policies: list[PolicySpec] = Field(default_factory=list, max_length=MAX_ITEMS)
    exports: list[ExportDecl] = Field(default_factory=list, max_length=MAX_ITEMS)

    @model_validator(mode="after")
    def _consistent(self) -> "Stack":
        for kind, names in (
            ("volume", [v.name for v in self.volumes]),
            ("policy", [p.name for p in self.policies]),
            ("export", [e.volume for e in self.exports]),
        ):
            seen: set[str] = set()
            dup = [n for n in names if n in seen or seen.add(n)]  # type: ignore[func-returns-value]
            if dup:
                raise ValueError(f"{kind} {dup[0]!r} is declared twice; accepted: each {kind} once")
        declared = {v.name for v in self.volumes}
        for e in self.exports:
            if e.volume not in declared:
                raise ValueError(
                    f"export of volume {e.volume!r}: the volume is not declared in this file; accepted: a declared volume"
                )
        return self


def stack_schema() -> dict[str, Any]:
    """The JSON Schema of a stack file (generated from the models; docs/apply.schema.json)."""
    schema = Stack.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def inline_schema() -> dict[str, Any]:
    """The stack schema with every ``$ref`` replaced by its definition (for the OpenAPI request
    body, where ``#/$defs/...`` would not resolve). The models are not recursive."""
    schema = Stack.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve({**defs[ref.removeprefix("#/$defs/")], **{k: v for k, v in node.items() if k != "$ref"}})
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)
