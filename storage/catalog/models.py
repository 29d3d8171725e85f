"""Imports every table module so Base.metadata is complete (for Alembic autogenerate)."""

from storage.catalog import volumes  # noqa: F401
from storage.catalog import backups  # noqa: F401
from storage.catalog import policies  # noqa: F401
from storage.catalog import api_tables  # noqa: F401
from storage.catalog import exports  # noqa: F401
from storage.catalog import services  # noqa: F401
from storage.catalog import connections  # noqa: F401
from storage.catalog import served  # noqa: F401
from storage.catalog import export_secrets  # noqa: F401
from storage.catalog.base import Base

metadata = Base.metadata
