"""scripts/logging/: the Filebeat input and the Elasticsearch ingest pipeline parse, and agree
with what the formatter writes (storage.logs.ecs.FIELDS)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from storage.logs import ecs

ROOT = Path(__file__).resolve().parents[1] / "scripts" / "logging"
INGEST_ADDED = {"event.ingested"}  # set by the pipeline itself, not by the formatter


def pipeline() -> dict[str, Any]:
    return json.loads((ROOT / "ingest-pipeline.json").read_text())


def fields_named(processors: list[dict[str, Any]]) -> set[str]:
    """Every field a processor reads or writes (``field``, ``target_field``, ``copy_from``; not wildcards)."""
    names = set()
    for proc in processors:
        (_kind, body), = proc.items()
        for key in ("field", "target_field", "copy_from"):
            value = body.get(key)
            if isinstance(value, str) and value != "*":
                names.add(value)
    return names


def test_pipeline_fields_are_the_formatters() -> None:
    doc = pipeline()
    assert doc["description"] and doc["processors"] and doc["on_failure"]
    named = fields_named(doc["processors"]) | fields_named(doc["on_failure"])
    assert named - INGEST_ADDED <= set(ecs.FIELDS), named - INGEST_ADDED - set(ecs.FIELDS)


def test_pipeline_converts_every_numeric_field_and_parses_the_timestamp() -> None:
    processors = pipeline()["processors"]
    converted = {p["convert"]["field"] for p in processors if "convert" in p and p["convert"]["type"] == "long"}
    assert converted == set(ecs.NUMERIC)
    assert any("date" in p and p["date"]["field"] == "@timestamp" and p["date"]["formats"] == ["ISO8601"] for p in processors)
    version = [p["set"]["value"] for p in processors if "set" in p and p["set"]["field"] == "ecs.version"]
    assert version == [ecs.ECS_VERSION]


def test_filebeat_reads_ndjson_and_names_the_pipeline() -> None:
    doc = yaml.safe_load((ROOT / "filebeat.yml").read_text())
    inputs = doc["filebeat.inputs"]
    assert {i["type"] for i in inputs} == {"filestream", "journald"}
    for item in inputs:
        assert item["id"]
        (ndjson,) = [p["ndjson"] for p in item["parsers"] if "ndjson" in p]
        assert ndjson["expand_keys"] is True and ndjson["target"] == "" and ndjson["message_key"] == "message"
    assert doc["output.elasticsearch"]["pipeline"] == "storage-logs"
    assert "${" in doc["output.elasticsearch"]["api_key"]  # a reference, never a key in the file


def test_a_formatted_line_is_what_filebeat_expects() -> None:
    """A line has the keys the ndjson parser and the pipeline rely on, each value of the pipeline's type."""
    doc = json.loads(ecs.EcsFormatter("storagectl", "h1").format(
        __import__("logging").LogRecord("storage.ops", 20, __file__, 1, "volume.create v1 succeeded", (), None)))  # fmt: skip
    assert {"@timestamp", "message", "log.level", "ecs.version", "service.name", "host.name"} <= set(doc)
    assert isinstance(doc["process.pid"], int) and doc["@timestamp"].endswith("Z")
