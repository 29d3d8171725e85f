"""Catalog tables for api_tables (filled in by the issue that owns them)."""

from storage.catalog.base import Base  # noqa: F401
