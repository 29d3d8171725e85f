"""The catalog: SQLAlchemy tables (one module per area) migrated by Alembic.

``Catalog`` imports no SQLAlchemy until it is used; ``Base`` (the table metadata) loads on access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from storage.catalog.db import Catalog, migrate

if TYPE_CHECKING:
    from storage.catalog.base import Base

__all__ = ["Base", "Catalog", "migrate"]


def __getattr__(name: str) -> Any:
    if name == "Base":
        from storage.catalog.base import Base

        return Base
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
