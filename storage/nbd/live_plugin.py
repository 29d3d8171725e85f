"""The nbdkit Python plugin of ``storagectl backup restore --live`` (read-WRITE):

    nbdkit python /path/to/storage/nbd/live_plugin.py spec=/run/.../spec.json

It serves the new volume's file through storage.nbd.live.LiveVolume: reads of chunks not yet
restored fetch them from the backup (verified) and write them through, writes mark their chunks
restored first, and a background thread (started after nbdkit forks) copies the rest. Lines it
writes to stderr that ``storage.nbd.live_service`` acts on: ``live restore complete`` and
``live restore failed: ...`` (with the ``[chunk=.. pack=..]`` bracket of a chunk that did not verify).
"""

import errno
import io
import sys
import threading

import nbdkit

API_VERSION = 2

_state = {"spec_path": None, "spec": None, "reader": None, "live": None, "copier": None, "stop": threading.Event()}


def _log(message):
    sys.stderr.write(f"storage-nbd: {message}\n")
    sys.stderr.flush()


def _where(exc):
    details = getattr(exc, "details", {}) or {}
    return f" [chunk={details['chunk']} pack={details.get('pack') or '-'}]" if details.get("chunk") else ""


def _setup_path(entries):
    import site

    before = list(sys.path)
    for entry in entries:
        if entry.endswith("-packages"):
            site.addsitedir(entry)
    added = [p for p in sys.path if p not in before]
    roots = [e for e in entries if not e.endswith("-packages")]
    sys.path[:] = roots + added + [p for p in before if p not in roots]


def config(key, value):
    if key != "spec":
        raise RuntimeError(f"unknown parameter {key!r}; accepted: spec=FILE")
    _state["spec_path"] = value


def config_complete():
    path = _state["spec_path"]
    if path is None:
        raise RuntimeError("the parameter spec=FILE is required")
    import json

    with io.open(path, "rb") as f:
        entries = json.loads(f.read(64 * 1024)).get("sys_path") or []
    _setup_path([str(e) for e in entries])
    from storage.nbd.spec import ServeSpec

    spec = ServeSpec.read(path)
    if not spec.volume_path or not spec.bitmap_path:
        raise RuntimeError("a live restore spec names volume_path and bitmap_path")
    _state["spec"] = spec


def thread_model():
    return nbdkit.THREAD_MODEL_PARALLEL


def get_ready():
    from storage.errors import StorageError
    from storage.nbd.bitmap import RestoreBitmap
    from storage.nbd.live import LiveVolume
    from storage.nbd.spec import open_reader

    spec = _state["spec"]
    try:
        reader = _state["reader"] = open_reader(spec)
        bitmap = RestoreBitmap(spec.bitmap_path, reader.chunk_count)
        _state["live"] = LiveVolume(reader, spec.volume_path, bitmap, copy_rate=spec.copy_rate)
    except StorageError as exc:
        _log(f"live restore failed: cannot open backup {spec.backup_id}: {exc.message}")
        raise RuntimeError(exc.message) from None


def _copy():
    from storage.errors import StorageError

    live = _state["live"]
    try:
        if live.copy_all(_state["stop"]):
            _log("live restore complete")
    except StorageError as exc:
        _log(f"live restore failed: {exc.message}{_where(exc)}")
    except OSError as exc:
        _log(f"live restore failed: writing the volume: {exc.strerror or exc}")


def after_fork():
    copier = _state["copier"] = threading.Thread(target=_copy, name="live-restore-copy", daemon=True)
    copier.start()


def cleanup():
    _state["stop"].set()
    if _state["copier"] is not None:
        _state["copier"].join(timeout=60)
    live = _state["live"]
    if live is not None:
        live.close()
        _state["reader"].close()
        s, r = live.stats, _state["reader"].stats
        _log(f"live restore stopped: {live.bitmap.durable_count()}/{live.bitmap.n} chunks restored; "
             f"{s.demand_chunks} on demand, {s.merged_chunks} merged with writes, {s.claimed_chunks} overwritten, "
             f"{s.copied_chunks} by the copy; fetched {r.chunks_fetched} chunks in {r.requests} requests")


def list_exports(readonly, is_tls):
    return [_state["spec"].export_name]


def default_export(readonly, is_tls):
    return _state["spec"].export_name


def open(readonly):  # noqa: A001 (nbdkit's name)
    name = nbdkit.export_name()
    wanted = _state["spec"].export_name
    if name not in ("", wanted):
        _log(f"refused a client asking for export {name[:200]!r}; this server exports {wanted!r}")
        nbdkit.set_error(errno.ENOENT)
        raise RuntimeError(f"no export {name[:200]!r}; this server exports {wanted!r}")
    return _Handle()


class _Handle:
    """Per connection: sequential reads of chunks not restored yet fetch the next ones ahead."""

    def __init__(self):
        from storage.nbd.layout import ReadAhead

        reader = _state["reader"]
        self.lock = threading.Lock()
        self.ahead = ReadAhead(reader.chunk_size, reader.chunk_count, window=_state["spec"].readahead_chunks)


def get_size(h):
    return _state["live"].size


def export_description(h):
    return f"storage volume restored live from backup {_state['spec'].backup_id}"


def can_write(h):
    return True


def can_flush(h):
    return True


def can_fua(h):
    return nbdkit.FUA_NATIVE


def can_multi_conn(h):
    return True  # one file descriptor behind every connection: a flush covers them all


def is_rotational(h):
    return False


def _failed(what, exc):
    _log(f"{what} failed: {getattr(exc, 'message', None) or exc}{_where(exc)}")
    nbdkit.set_error(errno.EIO)
    return RuntimeError("I/O error")


def pread(h, buf, offset, flags):
    from storage.errors import StorageError

    live = _state["live"]
    try:
        live.read_into(buf, offset)
    except (StorageError, OSError) as exc:
        raise _failed(f"read of {len(buf)} bytes at {offset}", exc) from None
    with h.lock:
        ahead = h.ahead.after_read(offset, len(buf))
    wanted = [i for i in ahead if not live.bitmap.is_set(i) and live.reader.manifest.chunks[i] is not None]
    if wanted:
        live.reader.prefetch(wanted)


def pwrite(h, buf, offset, flags):
    from storage.errors import StorageError

    try:
        _state["live"].write(buf, offset, fua=bool(flags & nbdkit.FLAG_FUA))
    except (StorageError, OSError) as exc:
        raise _failed(f"write of {len(buf)} bytes at {offset}", exc) from None


def flush(h, flags):
    try:
        _state["live"].sync()
    except OSError as exc:
        raise _failed("flush", exc) from None
