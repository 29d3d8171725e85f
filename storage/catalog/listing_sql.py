"""The listing's SQL, built from plain tuples (stdlib only): the catalog's listing, the listing's
dead-owner settling and the CLI's fast path (storage/cli/fast_rows.py, which may not import the
domain models) build the same statements here."""

from __future__ import annotations

from collections.abc import Sequence


def transitional_owners_sql(volume_statuses: Sequence[str], snapshot_statuses: Sequence[str]) -> tuple[str, dict[str, str]]:
    """(volume id, owner) of every volume and snapshot in one of these statuses: SQL and params."""
    vol = {f"v{i}": s for i, s in enumerate(volume_statuses)}
    snap = {f"s{i}": s for i, s in enumerate(snapshot_statuses)}
    sql = (
        f"SELECT id, task_owner FROM volumes WHERE status IN ({', '.join(':' + k for k in vol)})"
        f" UNION ALL SELECT volume_id, task_owner FROM snapshots WHERE status IN ({', '.join(':' + k for k in snap)})"
    )
    return sql, {**vol, **snap}


def volume_list_sql(columns: Sequence[str], *, pool: bool, status: bool) -> str:
    """The volume listing's SELECT of ``columns`` (``v.`` volumes, ``a.`` attachments), filtered on
    ``:pool`` / ``:status`` when asked."""
    where = [cond for cond, on in (("v.pool = :pool", pool), ("v.status = :status", status)) if on]
    return (
        f"SELECT {', '.join(columns)} FROM volumes AS v"
        " LEFT OUTER JOIN volume_attachments AS a ON a.volume_id = v.id"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + " ORDER BY v.created_at, v.name"
    )
