"""The catalog: SQLAlchemy tables (one module per area) migrated by Alembic."""

from storage.catalog.base import Base
from storage.catalog.db import Catalog, migrate

__all__ = ["Base", "Catalog", "migrate"]
