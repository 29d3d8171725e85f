"""Catalog tables for volumes (filled in by the issue that owns them)."""

from storage.catalog.base import Base  # noqa: F401
