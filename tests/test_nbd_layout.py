"""storage.nbd pure parts, table-tested: read pieces, extents, read-ahead, listen options, the
nbdkit command line (no secret on it) and the plugin's Python version check."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.backup.format import ChunkRef
from storage.errors import InvalidInput
from storage.nbd import layout, server
from storage.nbd.layout import Piece, ReadAhead

C = 1024
A, B = ChunkRef("a" * 64, 10), ChunkRef("b" * 64, 10)


@pytest.mark.parametrize(
    "offset,length,size,expected",
    [
        (0, 0, 3000, []),
        (0, 10, 3000, [Piece(0, 0, 10, 0)]),
        (1000, 100, 3000, [Piece(0, 1000, 24, 0), Piece(1, 0, 76, 24)]),
        (0, 3000, 3000, [Piece(0, 0, C, 0), Piece(1, 0, C, C), Piece(2, 0, 952, 2 * C)]),
        (2048, 952, 3000, [Piece(2, 0, 952, 0)]),
        (1024, 1024, 3000, [Piece(1, 0, C, 0)]),
    ],
)
def test_pieces(offset: int, length: int, size: int, expected: list[Piece]) -> None:
    assert layout.pieces(offset, length, C, size) == expected


@pytest.mark.parametrize("offset,length", [(-1, 1), (2999, 2), (3000, 1), (0, 3001)])
def test_pieces_outside_the_image(offset: int, length: int) -> None:
    with pytest.raises(ValueError, match="outside a 3000-byte image"):
        layout.pieces(offset, length, C, 3000)


@pytest.mark.parametrize(
    "chunks,offset,count,expected",
    [
        ([A, None, None, B], 0, 4 * C, [(0, C, False), (C, 2 * C, True), (3 * C, C, False)]),
        ([A, None, None, B], 100, 1000, [(100, 924, False), (C, 76, True)]),
        ([None, None], 0, 10 * C, [(0, 2 * C, True)]),  # clipped to the image
        ([A, B], 0, 2 * C, [(0, 2 * C, False)]),
        ([A, None], 1500, 600, [(1500, 548, True)]),  # the image ends at 2048
    ],
)
def test_extents(chunks: list, offset: int, count: int, expected: list) -> None:  # type: ignore[type-arg]
    assert layout.extents(chunks, C, 2048 if len(chunks) == 2 else len(chunks) * C, offset, count) == expected


def run_reads(ra: ReadAhead, reads: list[tuple[int, int]]) -> list[range]:
    return [ra.after_read(off, n) for off, n in reads]


def test_readahead_starts_after_a_streak_and_fetches_in_batches() -> None:
    ra = ReadAhead(C, 100, window=8, min_streak=2)
    got = run_reads(ra, [(i * C, C) for i in range(9)])
    assert got[0] == got[1] == range(0)  # one read is not a stream
    assert got[2] == range(3, 11)  # third sequential read: the next window
    assert got[3:7] == [range(0)] * 4  # well inside the window: nothing new
    assert got[7] == range(11, 19)  # half-way (4 chunks left): the next batch, never twice the same chunk
    assert got[8] == range(0)


def test_readahead_random_reads_fetch_nothing_and_reset() -> None:
    ra = ReadAhead(C, 100, window=8)
    assert run_reads(ra, [(50 * C, C), (3 * C, C), (90 * C, C), (10 * C, 10)]) == [range(0)] * 4
    assert ra.streak == 0


def test_readahead_tolerates_out_of_order_requests_and_stops_at_the_end() -> None:
    ra = ReadAhead(C, 12, window=8)
    got = run_reads(ra, [(0, 2 * C), (4 * C, 2 * C), (2 * C, 2 * C), (6 * C, 2 * C)])
    assert got[2] == range(6, 12) and got[3] == range(0)  # clipped at chunk_count
    assert ReadAhead(C, 12, window=0).after_read(0, C) == range(0)


@pytest.mark.parametrize(
    "host,port,sock,uri",
    [
        (None, None, None, "nbd://127.0.0.1:10809/x"),
        ("::1", 7000, None, "nbd://[::1]:7000/x"),
        (None, None, "/run/s.sock", "nbd+unix:///x?socket=/run/s.sock"),
    ],
)
def test_listen_uri(host: str | None, port: int | None, sock: str | None, uri: str) -> None:
    assert server.check_listen(host, port, sock).uri("x") == uri


@pytest.mark.parametrize(
    "host,port,sock,message",
    [
        ("localhost", None, None, "listen address 'localhost' is not accepted"),
        ("1.2.3.4.5", None, None, "accepted: an IPv4 or IPv6 address"),
        (None, 0, None, "port 0 is not accepted; accepted: 1 to 65535"),
        (None, 70000, None, "port 70000 is not accepted"),
        (None, None, "rel/sock", "socket path 'rel/sock' is not accepted"),
        ("127.0.0.1", None, "/s", "either --socket or --host/--port"),
    ],
)
def test_listen_refused(host: str | None, port: int | None, sock: str | None, message: str) -> None:
    with pytest.raises(InvalidInput, match=message.replace("[", r"\[").replace("(", r"\(")):
        server.check_listen(host, port, sock)


@pytest.mark.parametrize("name,ok", [("db1", True), ("4f1c-uuid-like", True), ("", False), ("-x", False),
                                     ("a/b", False), ("a" * 129, False), ("a b", False)])
def test_export_names(name: str, ok: bool) -> None:
    if ok:
        assert server.check_export_name(name) == name
    else:
        with pytest.raises(InvalidInput, match="export name .* is not accepted"):
            server.check_export_name(name)


def test_nbdkit_command_is_read_only_and_names_only_the_spec_file() -> None:
    cmd = server.nbdkit_command("/usr/sbin/nbdkit", server.Listen("127.0.0.1", 7000), Path("/r/pid"), Path("/r/spec.json"))
    assert cmd[:3] == ["/usr/sbin/nbdkit", "--foreground", "--readonly"] and "--exit-with-parent" in cmd
    assert cmd[cmd.index("--ipaddr") + 1] == "127.0.0.1" and cmd[cmd.index("--port") + 1] == "7000"
    assert cmd[-3:] == ["python", str(server.PLUGIN), "spec=/r/spec.json"]
    unix = server.nbdkit_command("nbdkit", server.Listen(socket="/r/s"), Path("/r/pid"), Path("/r/spec.json"))
    assert unix[unix.index("--unix") + 1] == "/r/s" and "--port" not in unix


@pytest.mark.parametrize("dump,version", [("name=python\npython_version=3.11.2\n", (3, 11)), ("python_version=3.9\n", (3, 9)),
                                          ("name=python\n", None), ("", None)])
def test_python_version_of(dump: str, version: tuple[int, int] | None) -> None:
    assert server.python_version_of(dump) == version


def test_nbdkit_command_with_tls_psk_requires_tls_and_names_only_the_file() -> None:
    listen = server.Listen("127.0.0.1", 7000, tls_psk="/etc/storage/nbd.psk")
    cmd = server.nbdkit_command("nbdkit", listen, Path("/r/pid"), Path("/r/spec.json"))
    assert "--tls=require" in cmd and "--tls-psk=/etc/storage/nbd.psk" in cmd
    assert listen.uri("x") == "nbds://127.0.0.1:7000/x"
    assert server.Listen(socket="/s", tls_psk="/k").uri("x") == "nbds+unix:///x?socket=/s"


@pytest.mark.parametrize("line,found", [
    ("storage-nbd: read of 4096 bytes at 0 failed: chunk x is corrupt [chunk=" + "a" * 64 + " pack=" + "b" * 64 + "]",
     ("a" * 64, "b" * 64)),
    ("storage-nbd: read failed: missing [chunk=" + "a" * 64 + " pack=-]", ("a" * 64, None)),
    ("storage-nbd: read failed: store did not answer", None),
    ("nbdkit: python.0: error: [chunk=short pack=-]", None),
])
def test_damaged_chunk_lines(line: str, found: tuple[str, str | None] | None) -> None:
    from storage.nbd.service import damaged_chunk

    assert damaged_chunk(line) == found
