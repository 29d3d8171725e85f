"""A minimal keep-alive HTTP/1.1 GET client on asyncio streams, for benchmarks only.

httpx's AsyncClient costs several milliseconds of CPU per request in the benchmark process; on a
2-core machine shared with the server that, not the server, limits 50-client throughput. This
client does little more than write the request and read Content-Length bytes, so the numbers
describe the server. It understands only what ``storagectl serve`` sends to a GET (Content-Length
bodies, or none for 304).
"""

from __future__ import annotations

import asyncio
import time


class RawConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, host: str, port: int) -> "RawConnection":
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        return cls(reader, writer, host)

    async def get(self, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        lines = [f"GET {path} HTTP/1.1", f"Host: {self.host}", *(f"{k}: {v}" for k, v in headers.items())]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        got = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                got[name.strip().lower()] = value.strip()
        if "chunked" in got.get("transfer-encoding", ""):
            raise ValueError("chunked responses are not supported by this benchmark client")
        body = await self.reader.readexactly(int(got.get("content-length", "0")))
        return status, got, body

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def raw_closed_loop(port: int, headers: dict[str, str], clients: int, seconds: float, path: str,
                          conditional: bool = False) -> tuple[list[float], int]:
    """Each client GETs ``path`` in a loop on its own connection; with ``conditional`` it revalidates by ETag."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        conn = await RawConnection.open("127.0.0.1", port)
        etag: str | None = None
        try:
            while time.perf_counter() < deadline:
                extra = {"If-None-Match": etag} if conditional and etag else {}
                t = time.perf_counter()
                status, got, _ = await conn.get(path, {**headers, **extra})
                latencies.append(time.perf_counter() - t)
                errors += 0 if status in (200, 304) else 1
                etag = got.get("etag", etag)
        finally:
            await conn.close()

    await asyncio.gather(*(worker() for _ in range(clients)))
    return latencies, errors
