"""Catalog URLs: accepted databases, clear refusals, passwords never shown (pure, table-tested)."""

from __future__ import annotations

import pytest

from storage.catalog.urls import MAX_URL_LENGTH, parse_catalog_url, redact_url
from storage.config import Settings
from storage.errors import InvalidInput


@pytest.mark.parametrize(
    ("url", "driver", "database"),
    [
        ("sqlite:////var/lib/storage/catalog.db", "sqlite", "/var/lib/storage/catalog.db"),
        ("sqlite+pysqlite:///rel.db", "sqlite", "rel.db"),
        ("postgresql+psycopg://storage:pw@db.example:5433/catalog", "postgresql+psycopg", "catalog"),
        ("postgresql://storage@127.0.0.1/catalog", "postgresql+psycopg", "catalog"),  # psycopg 3, not psycopg2
        ("postgresql+psycopg://storage@/catalog?host=/run/postgresql", "postgresql+psycopg", "catalog"),
    ],
)
def test_accepted_urls(url: str, driver: str, database: str) -> None:
    parsed = parse_catalog_url(url)
    assert parsed.drivername == driver and parsed.database == database


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("", "1 to 2048 characters"),
        ("sqlite:///" + "x" * MAX_URL_LENGTH, "1 to 2048 characters"),
        ("nonsense", "is not a database URL"),
        ("mysql://u:Sekr1t@h/db", "'mysql', which is not a supported catalog"),
        ("postgresql+psycopg2://u:Sekr1t@h/db", "not a supported catalog"),
        ("sqlite://", "names no database file"),
    ],
)
def test_refused_urls_name_what_is_accepted(url: str, says: str) -> None:
    with pytest.raises(InvalidInput, match="accepted: sqlite:///PATH or postgresql") as err:
        parse_catalog_url(url)
    assert says in err.value.message and "Sekr1t" not in err.value.message


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://storage:Sekr1t@db:5432/catalog", "postgresql+psycopg://storage:***@db:5432/catalog"),
        ("postgresql+psycopg://storage@db/catalog", "postgresql+psycopg://storage@db/catalog"),
        ("sqlite:////x/catalog.db", "sqlite:////x/catalog.db"),
        ("not a url but: has@signs", "<not a URL>"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_settings_redact_the_catalog_password(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(data_dir=tmp_path, catalog={"url": "postgresql+psycopg://storage:Sekr1t@db/catalog"})
    assert "Sekr1t" not in repr(settings.redacted())
    assert settings.redacted()["catalog"]["url"] == "postgresql+psycopg://storage:***@db/catalog"
