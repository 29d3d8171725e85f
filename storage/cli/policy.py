"""`storagectl policy ...` and `storagectl run`: the CLI face of st.policies (no logic here)."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Annotated, Any, Iterator, Optional

import typer
from storage.cli import common
from storage.names import parse_labels
from storage.policy.events import EventSink, json_line, stream_sink
from storage.policy.models import KEEP_FIELDS, Policy, RunRecord
from storage.policy.runner import ProgressSink, RunReport
from storage.units import format_size

policy_app = typer.Typer(help="Snapshot and backup policies: schedules and retention.", no_args_is_help=True)
POLICY_COLUMNS = ["Name", "Kind", "Schedule", "Selects", "Retention", "Enabled", "Next slot"]
HISTORY_COLUMNS = ["Started", "Policy", "Trigger", "Slot", "Status", "Created", "Pruned", "Bytes", "Error"]

# -- shared options ------------------------------------------------------------------------
ScheduleOpt = Annotated[Optional[str], typer.Option("--schedule", "-s", help="Cron expression ('0 2 * * *'), @daily..., or an interval (6h, 'every 30m').")]
TimezoneOpt = Annotated[Optional[str], typer.Option("--timezone", "--tz", help="IANA time zone of the cron schedule and of retention periods (default UTC).")]
VolumeOpt = Annotated[Optional[list[str]], typer.Option("--volume", "-v", help="Volume name or id; repeat for more.")]
LabelOpt = Annotated[Optional[list[str]], typer.Option("--label", "-l", help="Select volumes with KEY=VALUE; repeat (all must match).")]
PoolOpt = Annotated[Optional[str], typer.Option("--pool", help="Select the volumes of this pool.")]
AllOpt = Annotated[bool, typer.Option("--all-volumes", help="Select every volume.")]
KeepLast = Annotated[Optional[int], typer.Option("--keep-last", help="Keep the N newest items.")]
KeepHourly = Annotated[Optional[int], typer.Option("--keep-hourly", help="Keep the newest item of each of the last N hours that have one.")]
KeepDaily = Annotated[Optional[int], typer.Option("--keep-daily", help="... of the last N days.")]
KeepWeekly = Annotated[Optional[int], typer.Option("--keep-weekly", help="... of the last N ISO weeks.")]
KeepMonthly = Annotated[Optional[int], typer.Option("--keep-monthly", help="... of the last N months.")]
KeepYearly = Annotated[Optional[int], typer.Option("--keep-yearly", help="... of the last N years.")]
KeepWithin = Annotated[Optional[str], typer.Option("--keep-within", help="Keep everything within DURATION of the newest item (e.g. 2d, 1w, 6mo).")]
KeepAll = Annotated[bool, typer.Option("--keep-all", help="Keep everything (required to have no keep rule).")]
RepoOpt = Annotated[Optional[str], typer.Option("--repository", "-r", help="Backup target URL (file:///..., swift://\\[STORE@]container\\[/prefix]); must exist.")]
CompressionOpt = Annotated[Optional[str], typer.Option("--compression", help="zstd or none; must match the repository (fixed when it is created).")]
KeyFileOpt = Annotated[Optional[str], typer.Option("--key-file", help="Encryption key file of the repository.")]
VerifyOpt = Annotated[Optional[str], typer.Option("--verify", help="After each backup: none, quick or deep.")]
SampleOpt = Annotated[Optional[float], typer.Option("--verify-sample-percent", help="Deep verification: percent of chunks to read (0-100].")]
ConcurrencyOpt = Annotated[Optional[int], typer.Option("--max-concurrent", help="Backups of this policy that may run at once (1-64).")]
BandwidthOpt = Annotated[Optional[str], typer.Option("--bandwidth-limit", help="Upload limit per backup, bytes per second (e.g. 50M).")]


def _selector(volume: list[str] | None, label: list[str] | None, pool: str | None, all_volumes: bool) -> dict[str, Any] | None:
    if not (volume or label or pool or all_volumes):
        return None
    return {"volumes": volume or [], "labels": parse_labels(label), "pool": pool, "all": all_volumes}


def _retention(values: dict[str, Any], keep_all: bool) -> dict[str, Any] | None:
    given = {k: v for k, v in values.items() if v is not None}
    if not given and not keep_all:
        return None
    return {**given, "keep_all": keep_all}


def _backup(**values: Any) -> dict[str, Any] | None:
    given = {k: v for k, v in values.items() if v is not None}
    return given or None


def _next_slot(st: Any, p: Policy) -> str:
    if not p.enabled:
        return "disabled"
    d = st.policies.due(p)
    if d.due:
        return "due now"
    return d.next_slot.strftime("%Y-%m-%d %H:%M UTC") if d.next_slot else ""


def _policy_row(st: Any, p: Policy) -> list[Any]:
    s = p.summary()
    return [p.name, p.kind, s["schedule"], s["selector"], s["retention"], "yes" if p.enabled else "no", _next_slot(st, p)]


def _show_policy(st: Any, p: Policy) -> dict[str, Any]:
    record = p.model_dump(mode="json")
    d = st.policies.due(p)
    record["due_now"] = d.due
    record["due_reason"] = d.reason
    record["next_slot"] = d.next_slot.isoformat() if d.next_slot else None
    runs = st.policies.history(p.id, limit=1)
    record["last_run"] = runs[0].model_dump(mode="json") if runs else None
    return record


@policy_app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Policy name.")],
    kind: Annotated[str, typer.Option("--kind", "-k", help="snapshot or backup.")],
    schedule: ScheduleOpt = None,
    timezone: TimezoneOpt = None,
    volume: VolumeOpt = None,
    label: LabelOpt = None,
    pool: PoolOpt = None,
    all_volumes: AllOpt = False,
    keep_last: KeepLast = None,
    keep_hourly: KeepHourly = None,
    keep_daily: KeepDaily = None,
    keep_weekly: KeepWeekly = None,
    keep_monthly: KeepMonthly = None,
    keep_yearly: KeepYearly = None,
    keep_within: KeepWithin = None,
    keep_all: KeepAll = False,
    repository: RepoOpt = None,
    compression: CompressionOpt = None,
    key_file: KeyFileOpt = None,
    verify: VerifyOpt = None,
    verify_sample_percent: SampleOpt = None,
    max_concurrent: ConcurrencyOpt = None,
    bandwidth_limit: BandwidthOpt = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it switched off.")] = False,
    as_json: common.JsonOpt = False,
) -> None:
    """Create a policy. Example: policy create nightly -k backup -s '0 2 * * *' --tz Europe/Berlin -l tier=db --keep-daily 7 --keep-weekly 4."""
    st = common.get_storage(ctx)
    keeps = dict(zip(KEEP_FIELDS, (keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly)))
    keeps["keep_within"] = keep_within
    backup = _backup(
        repository=repository, compression=compression, encryption_key_file=key_file, verify=verify,
        verify_sample_percent=verify_sample_percent, max_concurrent=max_concurrent, bandwidth_limit=bandwidth_limit,
    )
    policy = st.policies.create(
        name, kind, schedule or "",
        selector=_selector(volume, label, pool, all_volumes) or {},
        retention=_retention(keeps, keep_all) or {},
        timezone=timezone or "UTC",
        backup=backup,
        enabled=not disabled,
    )
    common.emit(_show_policy(st, policy), as_json, common.print_record)


@policy_app.command("list")
def list_(
    ctx: typer.Context,
    kind: Annotated[Optional[str], typer.Option("--kind", "-k", help="Only snapshot or backup policies.")] = None,
    as_json: common.JsonOpt = False,
) -> None:
    """List policies with their next slot."""
    st = common.get_storage(ctx)
    policies = st.policies.list(kind=kind)
    common.emit(policies, as_json, lambda ps: common.print_table([_policy_row(st, p) for p in ps], POLICY_COLUMNS))


@policy_app.command("show")
def show(ctx: typer.Context, policy: Annotated[str, typer.Argument(help="Name or id.")], as_json: common.JsonOpt = False) -> None:
    """Show one policy, whether it is due, its next slot and its last run."""
    st = common.get_storage(ctx)
    common.emit(_show_policy(st, st.policies.get(policy)), as_json, common.print_record)


@policy_app.command("update")
def update(
    ctx: typer.Context,
    policy: Annotated[str, typer.Argument(help="Name or id.")],
    name: Annotated[Optional[str], typer.Option("--name", help="New name.")] = None,
    schedule: ScheduleOpt = None,
    timezone: TimezoneOpt = None,
    volume: VolumeOpt = None,
    label: LabelOpt = None,
    pool: PoolOpt = None,
    all_volumes: AllOpt = False,
    keep_last: KeepLast = None,
    keep_hourly: KeepHourly = None,
    keep_daily: KeepDaily = None,
    keep_weekly: KeepWeekly = None,
    keep_monthly: KeepMonthly = None,
    keep_yearly: KeepYearly = None,
    keep_within: KeepWithin = None,
    keep_all: KeepAll = False,
    repository: RepoOpt = None,
    compression: CompressionOpt = None,
    key_file: KeyFileOpt = None,
    verify: VerifyOpt = None,
    verify_sample_percent: SampleOpt = None,
    max_concurrent: ConcurrencyOpt = None,
    bandwidth_limit: BandwidthOpt = None,
    enable: Annotated[Optional[bool], typer.Option("--enable/--disable", help="Switch the policy on or off.")] = None,
    as_json: common.JsonOpt = False,
) -> None:
    """Change a policy. Any keep option replaces all keep rules; any selector option replaces the selection."""
    st = common.get_storage(ctx)
    keeps = dict(zip(KEEP_FIELDS, (keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly)))
    keeps["keep_within"] = keep_within
    updated = st.policies.update(
        policy,
        name=name,
        schedule=schedule,
        timezone=timezone,
        enabled=enable,
        selector=_selector(volume, label, pool, all_volumes),
        retention=_retention(keeps, keep_all),
        backup=_backup(
            repository=repository, compression=compression, encryption_key_file=key_file, verify=verify,
            verify_sample_percent=verify_sample_percent, max_concurrent=max_concurrent, bandwidth_limit=bandwidth_limit,
        ),
    )
    common.emit(_show_policy(st, updated), as_json, common.print_record)


@policy_app.command("delete")
def delete(ctx: typer.Context, policy: Annotated[str, typer.Argument(help="Name or id.")], as_json: common.JsonOpt = False) -> None:
    """Delete a policy. Its snapshots/backups and its history stay."""
    st = common.get_storage(ctx)
    p = st.policies.get(policy)
    st.policies.delete(p.id)
    common.emit(
        {"deleted": p.id, "name": p.name}, as_json,
        lambda d: common.console.print(f"deleted policy {p.name} ({p.id}); its items and history stay"),
    )


def _history_row(r: RunRecord) -> list[Any]:
    return [
        r.started_at.strftime("%Y-%m-%d %H:%M:%S"), r.policy_name, r.trigger, r.slot_time.strftime("%Y-%m-%d %H:%M"),
        r.status, len(r.items_created), len(r.items_pruned), format_size(r.bytes), r.error or "",
    ]


@policy_app.command("history")
def history(
    ctx: typer.Context,
    policy: Annotated[Optional[str], typer.Argument(help="Name or id (default: all policies).")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=10000, help="Newest N runs.")] = 50,
    status: Annotated[Optional[str], typer.Option("--status", help="Only runs with this status.")] = None,
    as_json: common.JsonOpt = False,
) -> None:
    """Runs of policies and their outcome, newest first."""
    runs = common.get_storage(ctx).policies.history(policy, limit=limit, status=status)
    common.emit(runs, as_json, lambda rs: common.print_table([_history_row(r) for r in rs], HISTORY_COLUMNS))


# -- storagectl run -------------------------------------------------------------------------


@contextmanager
def _backup_bars(enabled: bool) -> Iterator[ProgressSink | None]:
    """One Rich bar per backup (policy/volume), on stderr, only for people at a terminal."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    tasks: dict[tuple[str, str], Any] = {}
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  console=common.err_console, transient=True) as bars:
        def sink(policy: str, volume: str, progress: Any) -> None:
            key = (policy, volume)
            if key not in tasks:
                tasks[key] = bars.add_task(f"{policy}: {volume}", total=getattr(progress, "total", None) or None)
            bars.update(tasks[key], completed=getattr(progress, "done", 0), total=getattr(progress, "total", None) or None)

        yield sink


def _print_report(report: RunReport) -> None:
    rows = []
    for p in report.policies:
        created = sum(1 for v in p.volumes if v.ok and not v.reused)
        pruned = len(p.would_prune) if report.dry_run else len(p.pruned)
        slot = p.slot.strftime("%Y-%m-%d %H:%M UTC") if p.slot else ""
        rows.append([p.policy, p.status, slot, created, pruned, format_size(p.bytes), common.escape("; ".join(p.errors) or p.reason)])
    common.print_table(rows, ["Policy", "Status", "Slot", "Created", "Would prune" if report.dry_run else "Pruned", "Bytes", "Detail"],
                       title="dry run: nothing was changed" if report.dry_run else None)
    if report.dry_run:
        prunes = [[p.policy, w.volume, w.id, w.created_at.strftime("%Y-%m-%d %H:%M UTC"), w.reason]
                  for p in report.policies for w in p.would_prune]
        if prunes:
            common.print_table(prunes, ["Policy", "Volume", "Item", "Time", "Why"], title="would prune")
        keeps = [[p.policy, k.volume, k.id, k.created_at.strftime("%Y-%m-%d %H:%M UTC"), k.reason]
                 for p in report.policies for k in p.would_keep]
        if keeps:
            common.print_table(keeps, ["Policy", "Volume", "Item", "Time", "Kept by"], title="would keep")


def run_command(
    ctx: typer.Context,
    now: Annotated[Optional[list[str]], typer.Option("--now", help="Run this policy now, whatever its schedule; repeat for more.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would run and what would be pruned, and why; change nothing.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for another runner to finish instead of exiting with code 7.")] = False,
    wait_timeout: Annotated[Optional[float], typer.Option("--wait-timeout", help="With --wait: give up (exit 7) after SECONDS.")] = None,
    log_json: Annotated[bool, typer.Option("--log-json", help="One JSON line per event on stdout (journald, ELK).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines: every event, then a final 'report' line.")] = False,
) -> None:
    """Run every policy whose schedule slot is due (the command for cron or a systemd timer).

    Exit 0 when everything succeeded, 7 when another runner holds the lock (without --wait),
    otherwise the code of the first failure; each failure is named on stderr.
    """
    st = common.get_storage(ctx)
    machine = as_json or log_json
    sink: EventSink = stream_sink(sys.stdout if machine else sys.stderr, as_json=machine)
    with _backup_bars(not machine and sys.stderr.isatty()) as bars:
        report = st.policies.run(now_policies=now, dry_run=dry_run, wait=wait, wait_timeout=wait_timeout,
                                 on_event=sink, progress=bars)
    if as_json:
        sys.stdout.write(json_line({"event": "report", **common.to_jsonable(report.to_dict())}) + "\n")
    elif not log_json:
        _print_report(report)
    for failure in report.failures:
        common.err_console.print(f"[red]failed:[/red] {common.escape(failure)}", highlight=False)
    if report.exit_code:
        raise typer.Exit(report.exit_code)


def register(app: typer.Typer) -> None:
    """Add `policy` and the top-level `run` command to the root app."""
    app.add_typer(policy_app, name="policy")
    app.command("run")(run_command)
