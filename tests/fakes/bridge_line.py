"""The network line between a gateway and a real MT5 bridge server, able to lose one answer.

A TCP relay on loopback: every byte goes through unchanged until :meth:`Line.lose_answer_to` is armed with a
marker (``b"order_send"``: rpyc sends the function name as plain bytes). The request carrying the marker is
delivered, so the terminal executes it; its answer is swallowed. Then either the line goes down (``cut``:
every connection closed, new ones refused until :meth:`restore`, as when the bridge's host dies) or the
connection just stays silent (``hold``: the caller waits for an answer that never comes, e.g. while the test
kills it). Nothing here knows rpyc beyond that marker.
"""

from __future__ import annotations

import asyncio
import contextlib


class Line:
    def __init__(self, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.host, self.upstream = host, upstream_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._marker: bytes | None = None
        self._cut = False
        self.swallowed = asyncio.Event()  # set once the marked request's answer was lost

    async def start(self) -> Line:
        self._server = await asyncio.start_server(self._relay, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def lose_answer_to(self, marker: bytes, *, cut: bool) -> None:
        self._marker, self._cut = marker, cut
        self.swallowed.clear()

    async def down(self) -> None:
        """No line: every connection closed, none accepted."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for w in list(self._writers):
            w.close()
        self._writers.clear()

    async def restore(self) -> None:
        await self.down()
        self._marker = None
        await self.start()

    async def close(self) -> None:
        await self.down()

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(self.host, self.upstream)
        except OSError:
            client_w.close()
            return
        self._writers |= {client_w, server_w}
        lost = asyncio.Event()  # this connection carried the marked request: its answers go nowhere

        async def upstream() -> None:
            while data := await client_r.read(65536):
                if self._marker is not None and self._marker in data:
                    self._marker = None
                    lost.set()
                server_w.write(data)
                await server_w.drain()

        async def downstream() -> None:
            while data := await server_r.read(65536):
                if lost.is_set():
                    self.swallowed.set()
                    if self._cut:
                        await self.down()
                        return
                    continue
                client_w.write(data)
                await client_w.drain()

        pumps = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for pump in pumps:
            pump.cancel()
        for pump in pumps:
            with contextlib.suppress(asyncio.CancelledError, OSError, ConnectionError):
                await pump
        for w in (client_w, server_w):
            w.close()
            self._writers.discard(w)
