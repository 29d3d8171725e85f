"""The fast entry point's pure parts, table-tested, and its copies of the models' statuses,
fields and SQL kept equal to the originals (storage/cli/fast_rows.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from storage.cli import fast_rows
from storage.cli.fast_args import Request, parse
from storage.cli.fast_config import checked, overrides, valid_host_name

PARSE = [
    (["--help"], Request("help")),
    (["volume", "list"], Request("volume")),
    (["backup", "list", "--json"], Request("backup", as_json=True)),
    (["--config", "/c", "volume", "list"], Request("volume", config="/c")),
    (["-c", "/c", "--config=/d", "backup", "list"], Request("backup", config="/d")),
    (["volume", "list", "-p", "a", "--pool=b"], Request("volume", pool="b")),  # the last one wins, as in click
    (["volume", "list", "--status", "error", "-l", "a=1", "--label=b=2", "--json"],
     Request("volume", as_json=True, status="error", labels=("a=1", "b=2"))),
    (["backup", "list", "--volume", "v", "-l", "k=v", "--status=x"], Request("backup", status="x", volume="v", labels=("k=v",))),
    ([], None), (["--help", "volume"], None), (["volume", "--help"], None), (["volume", "list", "--help"], None),
    (["volume", "list", "--pool"], None), (["volume", "list", "--pool", "--json"], None), (["volume", "list", "--pool="], None),
    (["volume", "list", "-p=a"], None), (["volume", "list", "x"], None), (["volume", "list", "--volume", "v"], None),
    (["backup", "list", "--pool", "p"], None), (["backup", "list", "-r", "x"], None), (["backup", "list", "--repository=x"], None),
    (["--log-format", "json", "volume", "list"], None), (["volume", "show", "x"], None), (["volume", "list", "--json=1"], None),
    (["-c"], None), (["--config"], None), (["volume", "list", "--"], None), (["volume", "list", "-l", "-x"], None),
]  # fmt: skip


@pytest.mark.parametrize(("args", "want"), PARSE)
def test_parse(args: list[str], want: Request | None) -> None:
    assert parse(args) == want


CONFIGS = [
    ({}, True), ({"data_dir": "/x"}, True), ({"data_dir": "/x", "host_name": "h"}, True),
    ({"catalog": {"url": "sqlite:////x/c.db", "connect_timeout_seconds": 5}}, True),
    ({"logging": {"format": "text", "level": "debug"}}, True),
    ({"data_dir": ""}, False), ({"data_dir": 3}, False), ({"data_dir": "/a\\x00"}, True), ({"host_name": 1}, False),
    ({"pools": {"a": {"driver": "lvm", "vg": "x", "labels": {"k": "v"}, "availability_zone": "z1"}}}, True),
    ({"pools": {}}, True), ({"default_pool": "default"}, True), ({"pools": {"a": {}}, "default_pool": "a"}, True),
    ({"pools": {"a": {}}, "default_pool": "b"}, False), ({"default_pool": "b"}, False), ({"default_pool": 1}, False),
    ({"pools": {"a": {"driver": 1}}}, False), ({"pools": {"a": {"availability_zone": "-z"}}}, False),
    ({"pools": {"a": {"availability_zone": "z" * 64}}}, False), ({"pools": {"a": {"labels": {"k": 1}}}}, False),
    ({"pools": {"a": {"labels": []}}}, False), ({"pools": {"a": 1}}, False), ({"pools": []}, False),
    ({"scheduler": {"weigher": "provisioned_ratio", "availability_zone": "az-1"}}, True), ({"scheduler": {"weigher": "x"}}, False),
    ({"scheduler": {"availability_zone": "a b"}}, False), ({"scheduler": {"other": 1}}, False),
    ({"export": {"driver": "lio", "portal": "127.0.0.1:3260", "iqn_prefix": "x"}}, True), ({"export": {"driver": 2}}, False),
    ({"object_stores": {}}, True), ({"cluster": {}}, False),
    ({"object_stores": {"sw": {"type": "swift", "auth_url": "http://127.0.0.1:8080/auth/v1.0", "retries": 3}}}, True),
    ({"object_stores": {"sw": {"auth_url": "x"}}}, False), ({"object_stores": {"sw": {"type": 1}}}, False),
    ({"object_stores": {"sw": "swift"}}, False), ({"object_stores": []}, False),
    ({"backup": {}}, True), ({"backup": {"repository": "swift://sw@c", "chunk_size": "4M", "workers": 0, "uploaders": 8,
                                        "compression_level": -1, "upload_md5": True, "repack_threshold": 1, "other": [1]}}, True),
    ({"backup": {"workers": -1}}, False), ({"backup": {"uploaders": 0}}, False), ({"backup": {"uploaders": "4"}}, False),
    ({"backup": {"chunk_size": 1}}, False), ({"backup": {"repack_threshold": 1.5}}, False),
    ({"backup": {"upload_md5": "yes"}}, False), ({"backup": {"gc_grace_seconds": -5}}, False), ({"backup": "x"}, False),
    ({"api": {}}, False), ({"config_file": "/x"}, False), ({"catalog": "x"}, False),
    ({"catalog": {"url": 1}}, False), ({"catalog": {"connect_timeout_seconds": 1}}, False),
    ({"catalog": {"connect_timeout_seconds": 301}}, False), ({"catalog": {"connect_timeout_seconds": True}}, False),
    ({"catalog": {"connect_timeout_seconds": 2.5}}, False), ({"catalog": {"other": 1}}, False),
    ({"logging": {"format": "JSON"}}, False), ({"logging": {"level": "trace"}}, False), ({"logging": {"x": 1}}, False),
]  # fmt: skip


@pytest.mark.parametrize(("data", "accepted"), CONFIGS)
def test_checked_configs(data: dict, accepted: bool) -> None:
    assert (checked(data) is not None) is accepted


def test_checked_agrees_with_settings_on_what_it_accepts() -> None:
    """Every config it accepts, Settings accepts too (it may refuse more, never less); every
    pool, scheduler or default_pool it refuses, Settings refuses too."""
    from pydantic import ValidationError

    from storage.config import Settings

    for data, accepted in CONFIGS:
        if accepted:
            Settings(**data)
        elif set(data) <= {"pools", "default_pool", "scheduler", "export", "object_stores", "backup"} and "other" not in str(data) \
                and data not in ({"backup": {"uploaders": "4"}}, {"backup": {"upload_md5": "yes"}}):  # stricter than pydantic's coercion
            with pytest.raises(ValidationError):
                Settings(**data)


@pytest.mark.parametrize(
    ("environ", "want"),
    [
        ({}, {}), ({"PATH": "/bin", "STORAGE_CONFIG": "/c", "STORAGE_REQUEST_ID": "r", "STORAGE_DEBUG": "1"}, {}),
        ({"STORAGE_DATA_DIR": "/d"}, {"data_dir": "/d"}), ({"storage_data_dir": "/d"}, {"data_dir": "/d"}),
        ({"STORAGE_DATA_DIR": ""}, None), ({"STORAGE_DATA_DIR": "/d", "storage_data_dir": "/e"}, None),
        ({"STORAGE_API__PORT": "1"}, None), ({"STORAGE_CATALOG__URL": "x"}, None), ({"STORAGE_NOT_A_SETTING": "1"}, None),
    ],
)  # fmt: skip
def test_overrides(environ: dict[str, str], want: dict[str, str] | None) -> None:
    assert overrides(environ) == want


@pytest.mark.parametrize(("name", "ok"), [("h", True), ("storage-01.example", True), ("a@b_c", True), ("a b", False), ("a/b", False), ("-a", False),
                                          ("", False), ("a" * 255, True), ("a" * 256, False), ("a\n", False)])  # fmt: skip
def test_host_name_pattern_like_settings(name: str, ok: bool) -> None:
    from pydantic import ValidationError

    from storage.config import Settings

    assert valid_host_name(name) is ok
    try:
        Settings(host_name=name)
        settings_ok = True
    except ValidationError:
        settings_ok = False
    assert settings_ok is ok


def test_copies_equal_the_models_and_listings() -> None:
    from storage.backup.listing import BACKUP_FIELDS, backup_list_sql
    from storage.catalog.volume_listing import volume_list_sql
    from storage.domain import TRANSITIONAL_SNAPSHOT_STATUSES, TRANSITIONAL_VOLUME_STATUSES, Volume, VolumeStatus
    from storage.volumes.listing import transitional_owners_sql

    assert fast_rows.VOLUME_STATUSES == tuple(s.value for s in VolumeStatus)
    assert fast_rows.VOLUME_TRANSITIONAL == tuple(sorted(s.value for s in TRANSITIONAL_VOLUME_STATUSES))
    assert fast_rows.SNAPSHOT_TRANSITIONAL == tuple(sorted(s.value for s in TRANSITIONAL_SNAPSHOT_STATUSES))
    from storage.catalog.volume_listing import _FIELDS

    assert fast_rows.VOLUME_FIELDS == tuple(Volume.model_fields)
    assert fast_rows.VOLUME_SQL_FIELDS == _FIELDS
    assert fast_rows.BACKUP_FIELDS == BACKUP_FIELDS
    assert fast_rows.transitional_owners_sql() == transitional_owners_sql()
    for pool in (False, True):
        for status in (False, True):
            assert fast_rows.volume_list_sql(pool=pool, status=status) == volume_list_sql(pool=pool, status=status)
        assert fast_rows.backup_list_sql(status=pool) == backup_list_sql(repository=False, status=pool)


def test_copies_equal_the_cli_columns() -> None:
    from storage.cli.backup import COLUMNS
    from storage.cli.volume import VOLUME_COLUMNS

    assert list(fast_rows.VOLUME_COLUMNS) == VOLUME_COLUMNS and list(fast_rows.BACKUP_COLUMNS) == COLUMNS


@pytest.mark.parametrize(
    "text",
    ["2026-01-01 00:00:00.000000", "2026-01-01 00:00:00.123000", "2026-01-01 00:00:00.000005", "0999-12-31 23:59:59",
     "2026-01-01T00:00:00+00:00", "2026-06-01 12:30:00.5"],
)  # fmt: skip
def test_json_time_is_pydantics(text: str) -> None:
    from pydantic import TypeAdapter

    from storage.catalog.volume_listing import utc_datetime

    assert fast_rows.json_time(fast_rows.when(text)) == TypeAdapter(datetime).dump_python(utc_datetime(text), mode="json")


@pytest.mark.parametrize("value", ["2026-01-01T00:00:00+02:00", "yesterday", 5, None])
def test_other_times_are_left_to_the_models(value: object) -> None:
    with pytest.raises(fast_rows.Unsure):
        fast_rows.when(value)


@pytest.mark.parametrize("value", ['{"a": 1}', "[1]", "{bad", 3, '{"a": null}'])
def test_labels_the_model_would_refuse_are_left_to_it(value: object) -> None:
    with pytest.raises(fast_rows.Unsure):
        fast_rows.labels(value)


def test_rows_of_unexpected_types_are_left_to_the_models() -> None:
    t = "2026-01-01 00:00:00"
    good = ("i", "n", 1, "p", "available", "{}", t, t, None, None, None, None, None, None)
    assert fast_rows.volume(good)["created_at"] == "2026-01-01T00:00:00Z"
    for index, bad in ((2, "1"), (2, True), (4, "bogus"), (1, None), (8, 5), (12, b"x")):
        row = list(good)
        row[index] = bad
        with pytest.raises(fast_rows.Unsure):
            fast_rows.volume(tuple(row))
    backup = ["b", None, None, None, None, None, "r", None, "available", 0] + [0] * 9 + [None, t, None, None, None]
    assert fast_rows.backup(tuple(backup))[0]["encrypted"] is False
    backup[10] = None
    with pytest.raises(fast_rows.Unsure):
        fast_rows.backup(tuple(backup))


def test_aware_utc_from_the_timezone_class_is_z() -> None:
    assert fast_rows.json_time(datetime(2026, 1, 1, tzinfo=timezone(timedelta(0)))) == "2026-01-01T00:00:00Z"
    assert fast_rows.json_time(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00Z"


@pytest.mark.parametrize("n", [0, 1, 1023, 1024, 1536, 10 * 1024 - 1, 10 * 1024, 5 << 20, (1 << 30) - 1, 1 << 30, 3 << 40,
                               7 << 50, 1 << 60, 1 << 63, -5, -(1 << 30)])  # fmt: skip
def test_format_size_is_units(n: int) -> None:
    from storage.units import format_size

    assert fast_rows.format_size(n) == format_size(n)


@pytest.mark.parametrize("value", ["plain", "tab\tnl\ncr\r", "del\x7f", "ctl\x01\x1f", 'quote"back\\slash/', "caf\u00e9", "\u2028", ""])
def test_json_is_print_json_of_the_models(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    from storage.cli import common, fast
    from storage.domain import Volume

    t = datetime(2026, 1, 1, tzinfo=UTC)
    one = Volume(id="i", name="n", size_bytes=1, pool="p", status="available", labels={"k": value}, created_at=t, updated_at=t)
    other = Volume(id="j", name="m\nx", size_bytes=2, pool="p", status="error", labels={}, created_at=t, updated_at=t)
    for vols in ([], [one], [one, other], [other, one, other]):  # the spooled text, item by item, is the list's
        common.print_json(vols)
        with fast._json(v.model_dump(mode="json") for v in vols) as spool:
            assert spool.read() == capsys.readouterr().out
