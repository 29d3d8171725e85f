"""Catalog tables for backups (filled in by the issue that owns them)."""

from storage.catalog.base import Base  # noqa: F401
