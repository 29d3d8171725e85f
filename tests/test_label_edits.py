"""storage.volumes.edits on both catalogs: merges from two processes' worth of connections lose no
key, removals of a missing key are NotFound, descriptions are stored and bounded."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import storage
from storage.errors import InvalidInput, NotFound
from storage.volumes.edits import edit_labels, set_description

pytestmark = pytest.mark.both_catalogs


def test_concurrent_merges_lose_no_key(config_file: Path) -> None:
    with storage.open(config_file) as st:
        vol = st.volumes.create("edits", "4M", labels={"base": "1"})
        snap = st.snapshots.create("edits", "edits-s")
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run(prefix: str) -> None:
        with storage.open(config_file) as own:  # own engine and connections, like another process
            barrier.wait(30)
            for i in range(15):
                try:
                    edit_labels(own.catalog, "volume", vol.id, merge={f"{prefix}{i}": "v"})
                except BaseException as exc:  # recorded and checked below
                    errors.append(exc)

    threads = [threading.Thread(target=run, args=(p,)) for p in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    with storage.open(config_file) as st:
        labels = st.volumes.get(vol.id).labels
        assert labels == {"base": "1", **{f"{p}{i}": "v" for p in "ab" for i in range(15)}}

        assert edit_labels(st.catalog, "snapshot", snap.id, merge={"k": "v"}) == {"k": "v"}
        assert edit_labels(st.catalog, "snapshot", snap.id, remove=["k"]) == {}
        with pytest.raises(NotFound, match="label 'k' not found"):
            edit_labels(st.catalog, "snapshot", snap.id, remove=["k"])
        with pytest.raises(NotFound):
            edit_labels(st.catalog, "volume", "00000000-0000-0000-0000-000000000000", merge={"k": "v"})

        assert set_description(st.catalog, "volume", vol.id, "orders") == "orders"
        assert st.volumes.get(vol.id).description == "orders"
        assert [v.description for v in st.volumes.list() if v.id == vol.id] == ["orders"]  # the cheap listing too
        assert set_description(st.catalog, "snapshot", snap.id, "before upgrade") == "before upgrade"
        assert st.snapshots.get(snap.id).description == "before upgrade"
        assert set_description(st.catalog, "volume", vol.id, "") is None
        assert st.volumes.get(vol.id).description is None
        with pytest.raises(InvalidInput, match="at most 255"):
            set_description(st.catalog, "volume", vol.id, "x" * 256)
        st.snapshots.delete(snap.id)
        st.volumes.delete(vol.id)
