"""No secret at rest in a job row: a CHAP export through a remote host's agent, on the real stack.

A private PostgreSQL (catalog and procrastinate queue), a real `storagectl agent` for host ha
with its own data dir (so it cannot read the control plane's CHAP secrets file) and the session
tgtd, and the library as the control plane (host_name api, [cluster] queue = "procrastinate"):
exporting a volume of ha sends `export_target` as a host-call job to ha's queue. Afterwards no
column of any `jobs` row, no `procrastinate_jobs.args`, no line of the agent's log, no
`storagectl job list/show --json` output holds the password; the agent opened the sealed one and
tgtd has it: a qemu-io login with it reads and writes, a wrong one is refused. The sealing itself
(pure) is table-tested beside it. Takes ~40 s on a loaded 2-core machine.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

import storage
from storage.errors import DataCorruption, HostUnavailable, InvalidInput, PermissionDenied
from storage.hosts import sealing
from tests import iscsi_tools as it
from tests.api_server import STORAGECTL
from tests.test_hosts_agent import AgentProc, _env, wait_for

SPEC = {"key": "vol-1", "device_path": "/dev/loop9", "target_iqn": "iqn.2026-11.test:volume-1", "lun": 1,
        "chap": {"username": "vol-1", "password": "S3cretCHAPpw42"}, "initiators": [], "serial": "x"}  # fmt: skip


# -- pure: seal and open ------------------------------------------------------------------------
def test_sealed_call_opens_back_only_with_the_hosts_key_and_context() -> None:
    key = X25519PrivateKey.generate()
    sealed = sealing.seal_call("export_target", {"spec": SPEC}, "ha", sealing.public_text(key))
    text = json.dumps(sealed)
    assert "S3cretCHAPpw42" not in text and '"password"' not in text
    assert sealed["spec"]["chap"]["username"] == "vol-1" and sealed["spec"]["target_iqn"] == SPEC["target_iqn"]
    assert sealing.open_call("export_target", sealed, "ha", key) == {"spec": SPEC}
    with pytest.raises(PermissionDenied, match="another host"):  # another host's key
        sealing.open_call("export_target", sealed, "ha", X25519PrivateKey.generate())
    with pytest.raises(PermissionDenied):  # sealed for ha, replayed to hb
        sealing.open_call("export_target", sealed, "hb", key)
    moved = {"spec": {**sealed["spec"], "target_iqn": "iqn.2026-11.test:volume-2"}}
    with pytest.raises(PermissionDenied):  # into another target's call
        sealing.open_call("export_target", moved, "ha", key)
    with pytest.raises(PermissionDenied, match="no host key"):
        sealing.open_call("export_target", sealed, "ha", None)


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("export_target", {"spec": {**SPEC, "chap": None}}),  # CHAP off: nothing to seal
        ("export_target", {"spec": {**SPEC, "chap": {"username": "u", "password": None}}}),
        ("create_volume", {"pool": "p", "volume_id": "v", "size_bytes": 1}),
        ("unexport_target", {"target_iqn": "iqn.x"}),
    ],
)
def test_calls_without_a_secret_pass_unchanged(method: str, args: dict) -> None:
    assert sealing.seal_call(method, args, "ha", None) is args
    assert sealing.open_call(method, args, "ha", None) is args


def test_a_secret_is_never_sent_to_a_host_without_a_key() -> None:
    with pytest.raises(HostUnavailable, match="'ha' has published no sealing key"):
        sealing.seal_call("export_target", {"spec": SPEC}, "ha", None)


@pytest.mark.parametrize(
    ("box", "error", "match"),
    [
        ("x", InvalidInput, "scheme 'str'"),
        ({"scheme": "rot13"}, InvalidInput, "scheme 'rot13'"),
        ({"scheme": sealing.SCHEME, "epk": "", "nonce": "AAAA", "ct": "AAAA"}, InvalidInput, "'epk'"),
        ({"scheme": sealing.SCHEME, "epk": "A" * 5000, "nonce": "AAAA", "ct": "AAAA"}, InvalidInput, "4096"),
        ({"scheme": sealing.SCHEME, "epk": "AAAA", "nonce": "AAAA", "ct": "AAAA"}, InvalidInput, "32 bytes"),
    ],
)
def test_malformed_sealed_values_are_refused(box: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        sealing.open_sealed(X25519PrivateKey.generate(), box, "c")


@pytest.mark.parametrize("text", ["", "x25519:", "ed25519:AAAA", "x25519:AAAA", "x25519:" + "A" * 200, 7])
def test_bad_public_keys_are_refused(text: object) -> None:
    with pytest.raises(InvalidInput):
        sealing.parse_public(text)


def test_host_key_file_is_private_stable_and_checked(tmp_path: Path) -> None:
    path = sealing.key_path(tmp_path, "ha")
    assert path == tmp_path / "secrets" / "host-ha.key"
    public = sealing.HostKey(path).public()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert sealing.HostKey(path).public() == public  # read back, not made again
    os.chmod(path, 0o640)
    with pytest.raises(PermissionDenied, match="chmod 600"):
        sealing.HostKey(path).private()
    path.write_bytes(b"short")
    os.chmod(path, 0o600)
    with pytest.raises(DataCorruption, match="holds 5 bytes"):
        sealing.HostKey(path).private()


# -- the real stack ------------------------------------------------------------------------------
def _config(root: Path, name: str, url: str, tgtd) -> Path:  # type: ignore[no-untyped-def]
    etc = root / f"etc-{name}"
    etc.mkdir()
    path = etc / "storage.toml"
    path.write_text(
        f'host_name = "{name}"\ndata_dir = "{root / ("data-" + name)}"\n'  # a data dir of its own
        f'[catalog]\nurl = "{url}"\n'
        f'[pools.default]\ndriver = "file"\npath = "{root / "pool-ha"}"\nlabels = {{ node = "ha" }}\n'
        f'[export]\ndriver = "tgt"\nportal = "{tgtd.portal}"\ncontrol_port = {tgtd.control_port}\nmanage_daemon = false\n'
        f'[cluster]\nheartbeat_interval = 0.5\nservice_down_time = 4\nqueue = "procrastinate"\nremote_call_timeout = 60\n'
    )
    return path


@pytest.fixture
def agent_bed(tmp_path: Path, pg_database: str, tgtd_clean) -> Iterator[dict]:  # type: ignore[no-untyped-def]
    agent = AgentProc(_config(tmp_path, "ha", pg_database, tgtd_clean)).start()
    api_config = _config(tmp_path, "api", pg_database, tgtd_clean)
    st = storage.open(api_config)
    try:
        wait_for("agent ha publishes its sealing key", lambda: st._sealing_key_of("ha") is not None, 60)
        yield {"st": st, "agent": agent, "api_config": api_config, "url": pg_database}
    finally:
        try:
            for exp in st.exports.list():
                st.exports.unexport(exp.volume_id)
            for vol in st.volumes.list():
                st.volumes.delete(vol.id, force=True)
        finally:
            st.close()
            agent.stop()


def _rows_as_text(url: str) -> str:
    """Every column of every jobs row and every procrastinate job's args, as PostgreSQL prints them
    (procrastinate deletes a job once it succeeded: its args, the catalog job id only, may be gone)."""
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        jobs = conn.execute("SELECT j::text FROM jobs j").fetchall()
        args = conn.execute("SELECT args::text FROM procrastinate_jobs").fetchall()
    assert jobs, "the export made no job rows: it did not go through the queue"
    return "\n".join(r[0] for r in jobs + args)


@pytest.mark.tgt
@pytest.mark.loop
def test_a_chap_export_through_an_agent_leaves_no_password_at_rest(agent_bed: dict) -> None:
    st, agent = agent_bed["st"], agent_bed["agent"]
    from storage.scheduler import validate_hints

    vol = st.volumes.create("sv1", "16M", hints=validate_hints(host="ha"))
    assert vol.host == "ha"
    exp = st.exports.export("sv1")
    info = st.exports.connection_info("sv1", include_secret=True)
    password, user = info["auth_password"], info["auth_username"]
    assert exp.auth_method == "CHAP" and password and len(password) == 16

    # the call went to ha's agent as a host-call job (and the agent ran it)
    calls = [j for j in st.jobs.list(kind="host-call", limit=1000) if j.params.get("method") == "export_target"]
    assert calls and {j.state.value for j in calls} == {"succeeded"} and {j.queue for j in calls} == {"host.ha"}
    assert json.dumps(calls[0].params).count("***") >= 1  # what readers see: even the sealed form masked
    at_rest = _rows_as_text(agent_bed["url"])
    assert "export_target" in at_rest and "sealed_password" in at_rest and password not in at_rest

    # not on a log line of the agent, not in the CLI's job answers
    assert password not in agent.log.read_text()
    for argv in (["job", "list", "--json", "--limit", "1000"], ["job", "show", calls[0].id, "--json"]):
        out = subprocess.run([STORAGECTL, "-c", str(agent_bed["api_config"]), *argv], capture_output=True, text=True,
                             env=_env(), timeout=120)  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert "export_target" in out.stdout and password not in out.stdout + out.stderr

    # the agent opened it: tgtd holds it, a login with it works and a wrong one is refused
    portal, iqn, lun = info["target_portal"], info["target_iqn"], info["target_lun"]
    w = it.qemu_io(portal, iqn, lun, ["write -P 0x3c 1M 64k"], user=user, password=password)
    assert w.ok, w.stderr
    r = it.qemu_io(portal, iqn, lun, ["read -P 0x3c 1M 64k"], user=user, password=password)
    assert r.ok and "read 65536/65536" in r.stdout, r.stdout + r.stderr
    assert not it.capacity(it.iscsi_url(portal, iqn, lun, user, "Wrong-Secret-00")).ok
