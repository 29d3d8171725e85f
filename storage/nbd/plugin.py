"""The nbdkit Python plugin of ``storagectl backup serve`` (run by nbdkit's embedded python3):

    nbdkit --readonly python /path/to/storage/nbd/plugin.py spec=/run/.../spec.json

The spec file (storage.nbd.spec, mode 0600) names the backup and this installation's Python
path (the virtualenv's site-packages and the project), which are put first on sys.path before
anything of storage is imported. Reads go through storage.nbd.reader: a chunk that fails its
check makes the read fail with EIO, never return other bytes.
"""

import errno
import io
import sys
import threading

import nbdkit

API_VERSION = 2

_state = {"spec_path": None, "spec": None, "reader": None}


def _log(message):
    sys.stderr.write(f"storage-nbd: {message}\n")
    sys.stderr.flush()


def _setup_path(entries):
    """This installation's site-packages (with their .pth files) and project root, ahead of the
    system's dist-packages (whose older modules must not shadow the virtualenv's)."""
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

    _state["spec"] = ServeSpec.read(path)


def thread_model():
    return nbdkit.THREAD_MODEL_PARALLEL


def get_ready():
    from storage.errors import StorageError
    from storage.nbd.spec import open_reader

    try:
        _state["reader"] = open_reader(_state["spec"])
    except StorageError as exc:
        _log(f"cannot open backup {_state['spec'].backup_id}: {exc.message}")
        raise RuntimeError(exc.message) from None


def cleanup():
    reader = _state["reader"]
    if reader is not None:
        reader.close()
        s = reader.stats
        _log(f"served {s.reads} reads; fetched {s.chunks_fetched} chunks in {s.requests} requests "
             f"({s.bytes_downloaded} bytes), {s.cache_hits} cache hits, {s.errors} failed chunks")


def list_exports(readonly, is_tls):
    return [_state["spec"].export_name]


def default_export(readonly, is_tls):
    return _state["spec"].export_name


class _Handle:
    def __init__(self, reader):
        from storage.nbd.layout import ReadAhead

        self.lock = threading.Lock()
        self.ahead = ReadAhead(reader.chunk_size, reader.chunk_count, window=_state["spec"].readahead_chunks)


def open(readonly):  # noqa: A001 (nbdkit's name)
    name = nbdkit.export_name()
    wanted = _state["spec"].export_name
    if name not in ("", wanted):
        _log(f"refused a client asking for export {name[:200]!r}; this server exports {wanted!r}")
        nbdkit.set_error(errno.ENOENT)
        raise RuntimeError(f"no export {name[:200]!r}; this server exports {wanted!r}")
    return _Handle(_state["reader"])


def get_size(h):
    return _state["reader"].size


def export_description(h):
    return f"storage backup {_state['spec'].backup_id} (read-only)"


def can_write(h):
    return False


def can_multi_conn(h):
    return True


def is_rotational(h):
    return False


def can_extents(h):
    return True


def can_cache(h):
    return nbdkit.CACHE_NATIVE


def pread(h, buf, offset, flags):
    from storage.errors import StorageError

    reader = _state["reader"]
    try:
        reader.read_into(buf, offset)
    except StorageError as exc:  # the bracket is parsed by storage.nbd.service (marks the backup damaged)
        where = f" [chunk={exc.details['chunk']} pack={exc.details.get('pack') or '-'}]" if exc.details.get("chunk") else ""
        _log(f"read of {len(buf)} bytes at {offset} failed: {exc.message}{where}")
        nbdkit.set_error(errno.EIO)
        raise RuntimeError("I/O error: the backup's data did not verify") from None
    with h.lock:
        ahead = h.ahead.after_read(offset, len(buf))
    if ahead:
        reader.prefetch(ahead)


def cache(h, count, offset, flags):
    reader = _state["reader"]
    end = min(offset + count, reader.size)
    if end > offset:
        reader.prefetch(range(offset // reader.chunk_size, (end - 1) // reader.chunk_size + 1))


def extents(h, count, offset, flags):
    zero = nbdkit.EXTENT_HOLE | nbdkit.EXTENT_ZERO
    return [(off, length, zero if is_zero else 0) for off, length, is_zero in _state["reader"].extents(offset, count)]
