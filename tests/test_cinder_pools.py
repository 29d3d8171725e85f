"""Pure views: Cinder's get_pools entry of a scheduler candidate (api/cinder/pools.py) and the
redaction of secrets in job params as readers see them (storage/jobs/pure.py)."""

from __future__ import annotations

import pytest

from api.cinder.pools import pool_view
from storage.jobs.pure import redact_params
from storage.scheduler import Candidate

GiB = 1 << 30


@pytest.mark.parametrize(("cand", "expected"), [
    (Candidate("s1", "default", "file", total_bytes=100 * GiB, provisioned_bytes=30 * GiB, overcommit_ratio=0.2,
               capabilities={"thin": True}),
     {"free_capacity_gb": 0.0, "total_capacity_gb": 100.0, "provisioned_capacity_gb": 30.0, "backend_state": "up",
      "thin_provisioning_support": True, "max_over_subscription_ratio": "0.2"}),
    (Candidate("s2", "p", "file", total_bytes=10 * GiB, provisioned_bytes=4 * GiB, capabilities={"thin": True}, up=False),
     {"free_capacity_gb": 6.0, "backend_state": "down", "disabled": False}),
    (Candidate("s3", "vg", "lvm", total_bytes=10 * GiB, free_bytes=GiB // 2, disabled=True, disabled_reason="swap"),
     {"free_capacity_gb": 0.5, "thick_provisioning_support": True, "disabled": True, "disabled_reason": "swap"}),
    (Candidate("s4", "p", "file", error="statvfs failed"), {"backend_state": "down", "error": "statvfs failed"}),
])  # fmt: skip
def test_pool_view(cand: Candidate, expected: dict) -> None:
    view = pool_view(cand, True, "1.0")
    assert view["name"] == f"{cand.host}@{cand.pool}#{cand.pool}"
    caps = view["capabilities"]
    assert {k: caps[k] for k in expected} == expected, caps
    assert caps["pool_name"] == cand.pool and caps["storage_protocol"] == "iSCSI"
    assert pool_view(cand, False, "1.0") == {"name": view["name"]}


@pytest.mark.parametrize(("params", "shown"), [
    ({"method": "export_target", "args": {"spec": {"key": "v1", "chap": {"username": "u", "password": "S3cret"}}}},
     {"method": "export_target", "args": {"spec": {"key": "v1", "chap": {"username": "u", "password": "***"}}}}),
    ({"secret": None, "items": [{"auth_password": "x"}, 3]}, {"secret": None, "items": [{"auth_password": "***"}, 3]}),
    ({"backup_id": "b", "name": "n"}, {"backup_id": "b", "name": "n"}),
])  # fmt: skip
def test_redact_params(params: dict, shown: dict) -> None:
    assert redact_params(params) == shown
