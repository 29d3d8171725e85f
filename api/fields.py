"""Request-body building blocks of the native API, bounded by ``storage.bounds``.

Every request body model derives from :class:`Body` (``extra="forbid"``: an unknown field is a
422 naming it, never silently ignored), and its fields use the types below, so the OpenAPI
document states the same lengths and ranges the server enforces. The services check the same
bounds again (``storage.bounds``), so the library and the CLI refuse the same values.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from storage.bounds import (
    LABEL_KEY_MAX, LABEL_KEY_RE, LABEL_VALUE_MAX, LABELS_MAX, LIST_MAX, META_COUNT_MAX, META_KEY_MAX, META_VALUE_MAX,
    NAME_MAX, NUMBER_DIGITS_MAX, PATH_MAX, REF_MAX, SECRET_MAX, SIZE_MAX, SIZE_TEXT_MAX, URL_MAX,
)
from storage.names import NAME_PATTERN  # validate_name also refuses '..' and UUIDs


class Body(BaseModel):
    """Base of every request body: unknown fields are refused (422 naming the field)."""

    model_config = ConfigDict(extra="forbid")


def one_of(*fields: str) -> dict[str, Any]:
    """``json_schema_extra`` stating that exactly one of ``fields`` must be given (a model validator enforces it)."""
    return {"oneOf": [{"required": [f]} for f in fields]}


SIZE_PATTERN = rf"^\s*[0-9]{{1,{NUMBER_DIGITS_MAX}}}(\.[0-9]{{1,{NUMBER_DIGITS_MAX}}})?\s*[A-Za-z]{{0,3}}\s*$"
ByteCount = Annotated[StrictInt, Field(ge=1, le=SIZE_MAX)]
SizeText = Annotated[str, Field(min_length=1, max_length=SIZE_TEXT_MAX, pattern=SIZE_PATTERN)]
Size = Annotated[
    ByteCount | SizeText,
    Field(description=f"Bytes (1..{SIZE_MAX}), or a number with a unit: 512M, 10G, 1T (ASCII digits)", examples=["1G", 1073741824]),
]
Name = Annotated[str, Field(min_length=1, max_length=NAME_MAX, pattern=NAME_PATTERN)]
Ref = Annotated[str, Field(min_length=1, max_length=REF_MAX, description="A name or an id")]
Url = Annotated[str, Field(min_length=1, max_length=URL_MAX)]
HostPath = Annotated[str, Field(min_length=1, max_length=PATH_MAX)]
Secret = Annotated[str, Field(min_length=1, max_length=SECRET_MAX)]
LabelKey = Annotated[str, Field(min_length=1, max_length=LABEL_KEY_MAX, pattern=LABEL_KEY_RE.pattern)]
LabelValue = Annotated[str, Field(max_length=LABEL_VALUE_MAX)]
LabelMap = Annotated[dict[LabelKey, LabelValue], Field(max_length=LABELS_MAX, description="KEY: VALUE labels")]
MetaKey = Annotated[str, Field(min_length=1, max_length=META_KEY_MAX)]
MetaValue = Annotated[str, Field(max_length=META_VALUE_MAX)]
MetadataMap = Annotated[dict[MetaKey, MetaValue], Field(max_length=META_COUNT_MAX)]
ShortList = Annotated[list[Annotated[str, Field(min_length=1, max_length=REF_MAX)]], Field(max_length=LIST_MAX)]

# path parameters: bounded before any catalog lookup
RefPath = Annotated[str, Path(min_length=1, max_length=REF_MAX, description="A name or an id")]
IdPath = Annotated[str, Path(min_length=1, max_length=REF_MAX, description="An id")]
