"""Policy runs never starve the device work they wait for (real PostgreSQL, real agents at concurrency 1).

Two hosts, ha and hb, each an agent with ``worker_concurrency = 1``. Policy ``p-a`` covers a volume
on hb and runs as a job on ha; policy ``p-b`` covers a volume on ha and runs as a job on hb. Each run
waits for a ``backup`` job on the other host's queue. When a policy run took one of its agent's
device-work slots, both slots were held by runs waiting on each other's queues: neither backup job
ever started (a deadlock; the runs never ended). Policy runs now have a lane of their own on every
agent (queue ``runs.<host>``, ``[cluster] run_concurrency``), so the device lanes stay free for the
jobs the runs wait on: both runs end ``succeeded``, each run's record names its backup, the backups
restore byte-identical and no volume is left ``backing-up``. About 20-40 s on a loaded 2-core machine.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import storage
from storage.policy.models import POLICY_LABEL
from tests.test_hosts_agent import AgentProc, wait_for

pytestmark = pytest.mark.slow
MIB = 1024 * 1024
DOWN_TIME = 4.0
RUN_TIMEOUT = float(os.environ.get("LANES_RUN_TIMEOUT", "90"))  # seconds both runs get; deadlocked, they never end


def host_config(root: Path, name: str, url: str, repo: Path) -> Path:
    """Host ``name``: its own data dir (so its own runner lock), pool and config; one worker slot."""
    etc = root / f"etc-{name}"
    etc.mkdir(parents=True, exist_ok=True)
    path = etc / "storage.toml"
    path.write_text(
        f'host_name = "{name}"\ndata_dir = "{root / f"data-{name}"}"\n'
        f'[catalog]\nurl = "{url}"\n'
        f'[pools.default]\ndriver = "file"\npath = "{root / f"pool-{name}"}"\n'
        f'[cluster]\nheartbeat_interval = 0.5\nservice_down_time = {DOWN_TIME}\nqueue = "procrastinate"\n'
        f"remote_call_timeout = 60\nworker_concurrency = 1\n"
        f'[backup]\nrepository = "file://{repo}"\n'
    )
    return path


@pytest.fixture
def bed(tmp_path: Path, pg_database: str) -> Iterator[dict]:
    repo = tmp_path / "shared-objects" / "repo"  # a file:// store's root is the container's parent
    repo.mkdir(parents=True)
    configs = {n: host_config(tmp_path, n, pg_database, repo) for n in ("ha", "hb")}
    agents = {n: AgentProc(cfg).start() for n, cfg in configs.items()}
    try:
        with storage.open(configs["ha"]) as st:
            wait_for("both hosts up", lambda: sorted(h.name for h in st.hosts.list() if h.state.value == "up") == ["ha", "hb"], 60)
        yield {"configs": configs, "agents": agents, "repo": repo, "root": tmp_path}
    finally:
        for a in agents.values():
            a.stop()
        for a in agents.values():
            assert "Traceback" not in a.log.read_text(), a.log.read_text()[-3000:]


def test_policy_runs_waiting_on_each_others_hosts_do_not_deadlock(bed: dict) -> None:
    from storage.scheduler import validate_hints

    configs, root = bed["configs"], bed["root"]
    data = {}
    with storage.open(configs["ha"]) as st:
        # va on ha (covered by p-b, run on hb); vb on hb (covered by p-a, run on ha)
        for name, host, label in (("va", "ha", "b"), ("vb", "hb", "a")):
            vol = st.volumes.create(name, "4M", hints=validate_hints(host=host), labels={"pol": label})
            assert vol.host == host
            data[name] = os.urandom(4 * MIB)
            (root / f"pool-{host}" / "volumes" / f"{vol.id}.img").write_bytes(data[name])
        policies = {}
        for label in ("a", "b"):
            policies[label] = st.policies.create(f"p-{label}", "backup", "@daily", selector={"labels": {"pol": label}},
                                                 retention={"keep_last": 2})  # fmt: skip
    # p-a's run is a job of host ha, p-b's of host hb (a run's host: the submitting config's host_name)
    jobs = {}
    started = time.monotonic()
    for label, host in (("a", "ha"), ("b", "hb")):
        with storage.open(configs[host]) as st:
            p = policies[label]
            jobs[label] = st.jobs.submit("policy-run", target=p.id, params={"policy": p.name, "policy_id": p.id,
                                                                            "dry_run": False}).id  # fmt: skip
    with storage.open(configs["ha"]) as st:
        def ended() -> bool:
            return all(st.jobs.get(j).state.value not in ("queued", "running") for j in jobs.values())

        try:
            wait_for("both policy runs ended", ended, RUN_TIMEOUT)
        except AssertionError:
            states = {k: (st.jobs.get(j).state.value, st.jobs.get(j).queue) for k, j in jobs.items()}
            backups = [(j.state.value, j.queue) for j in st.jobs.list(kind="backup")]
            pytest.fail(f"deadlock: policy runs {states} still waiting after {RUN_TIMEOUT:g}s; backup jobs {backups}")
        took = time.monotonic() - started
        for label, host in (("a", "ha"), ("b", "hb")):
            job = st.jobs.get(jobs[label])
            assert job.state.value == "succeeded", (job.error, job.message)
            assert job.queue == f"runs.{host}", job.queue
            outcome = job.result["policies"][0]
            assert outcome["status"] == "succeeded" and not outcome["errors"], outcome["errors"]
            history = st.policies.history(f"p-{label}")
            assert [r.status for r in history] == ["succeeded"], history
            assert history[0].items_created == [outcome["volumes"][0]["item_id"]], history
        backup_jobs = st.jobs.list(kind="backup")
        assert sorted(j.queue for j in backup_jobs) == ["host.ha", "host.hb"], backup_jobs
        assert {j.state.value for j in backup_jobs} == {"succeeded"}
        for name in ("va", "vb"):
            vol = st.volumes.get(name)
            assert vol.status.value == "available", vol  # no held status left behind
            (backup,) = st.backups.list(volume=name)
            assert backup.status == "available" and backup.labels[POLICY_LABEL] in {p.id for p in policies.values()}
            out = root / f"restored-{name}.img"
            st.backups.restore(backup.id, to_path=str(out))
            assert out.read_bytes()[: len(data[name])] == data[name]
    print(f"\ntwo policy runs on two hosts, each waiting on the other's queue, worker_concurrency 1: "
          f"both succeeded {took:.1f}s after submission")


def test_a_run_submitted_where_no_agent_serves_goes_to_a_serving_host(bed: dict) -> None:
    """An API replica on a machine without an agent (host_name ``api1``, never registered): its
    policy run goes to the first serving host's lane (``runs.ha``) and succeeds, instead of waiting
    forever on ``runs.api1``; with every agent down the submission is refused (503, naming why)."""
    from storage.errors import HostUnavailable

    configs, root = bed["configs"], bed["root"]
    api1 = host_config(root, "api1", bed_url(configs["ha"]), bed["repo"])
    with storage.open(configs["ha"]) as st:
        vol = st.volumes.create("vc", "4M", labels={"pol": "c"})
        p = st.policies.create("p-c", "backup", "@daily", selector={"labels": {"pol": "c"}}, retention={"keep_last": 1})
    params = {"policy": p.name, "policy_id": p.id, "dry_run": False}
    with storage.open(api1) as st:
        job_id = st.jobs.submit("policy-run", target=p.id, params=params).id
        wait_for("the run ended", lambda: st.jobs.get(job_id).state.value not in ("queued", "running"), RUN_TIMEOUT)
        job = st.jobs.get(job_id)
        assert job.state.value == "succeeded" and job.queue == "runs.ha", (job.state, job.queue, job.error)
        assert [b.volume_id for b in st.backups.list(volume="vc")] == [vol.id]
    for agent in bed["agents"].values():
        agent.stop()
    with storage.open(api1) as st:
        wait_for("both hosts down", lambda: all(h.state.value == "down" for h in st.hosts.list()), 30)
        with pytest.raises(HostUnavailable, match="no host agent is up to run the policy"):
            st.jobs.submit("policy-run", target=p.id, params=params)


def bed_url(config: Path) -> str:
    """The catalog URL a bed host's config names."""
    import tomllib

    return str(tomllib.loads(config.read_text())["catalog"]["url"])
