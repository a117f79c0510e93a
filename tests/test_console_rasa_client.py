"""The console's client of Rasa's HTTP API turns every failure to answer
into RasaUnavailable, which the console reports instead of crashing."""

from __future__ import annotations

import asyncio
import socket

import pytest

from kefu.console.rasa import RasaClient, RasaUnavailable


async def _silent_server() -> tuple[asyncio.AbstractServer, int]:
    """Accepts connections and never answers: a frozen Rasa."""

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_a_frozen_rasa_is_reported_unavailable_within_the_time_out() -> None:
    async def scenario() -> None:
        server, port = await _silent_server()
        client = RasaClient(f"http://127.0.0.1:{port}", timeout=0.3)
        try:
            with pytest.raises(RasaUnavailable, match="TimeoutError"):
                await asyncio.wait_for(client.tracker("someone"), timeout=5)
        finally:
            await client.close()
            server.close()

    asyncio.run(scenario())


def test_a_rasa_that_is_not_running_is_reported_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def scenario() -> None:
        client = RasaClient(f"http://127.0.0.1:{port}", timeout=2)
        try:
            with pytest.raises(RasaUnavailable):
                await client.tracker("someone")
        finally:
            await client.close()

    asyncio.run(scenario())
