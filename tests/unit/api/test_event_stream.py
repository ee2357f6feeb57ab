"""EventStream: a streamed answer that ends when the client leaves, with its cleanup finished."""

import asyncio

import anyio

from clearance.api.http import EventStream


class Client:
    """An ASGI receive/send pair whose client leaves after ``leave_after`` seconds (never if None)."""

    def __init__(self, leave_after: float | None) -> None:
        self.leave_after = leave_after
        self.sent: list[dict] = []

    async def receive(self) -> dict:
        if self.leave_after is None:
            await asyncio.Event().wait()
        await asyncio.sleep(self.leave_after)
        return {"type": "http.disconnect"}

    async def send(self, message: dict) -> None:
        self.sent.append(message)

    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")


async def _call(response: EventStream, client: Client) -> None:
    await response({"type": "http", "method": "POST"}, client.receive, client.send)
    await asyncio.sleep(0)  # no cancellation may leak out of the response into the request's task


def test_whole_stream_is_sent_and_ends():
    async def parts():
        yield b"data: a\n\n"
        yield b"data: b\n\n"

    client = Client(leave_after=None)
    asyncio.run(_call(EventStream(parts(), media_type="text/event-stream"), client))
    assert client.body() == b"data: a\n\ndata: b\n\n"
    assert client.sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


def test_client_leaving_stops_the_stream_and_shielded_cleanup_finishes():
    seen: list[str] = []

    async def parts():
        try:
            yield b"data: first\n\n"
            await asyncio.sleep(10)
            yield b"data: never\n\n"
        except BaseException as e:
            seen.append(type(e).__name__)
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await asyncio.sleep(0.05)
                seen.append("cleanup done")

    client = Client(leave_after=0.05)
    asyncio.run(asyncio.wait_for(_call(EventStream(parts()), client), 5))
    assert client.body() == b"data: first\n\n"
    assert seen == ["CancelledError", "cleanup done"]


def test_client_leaving_during_the_final_cleanup_does_not_interrupt_it():
    seen: list[str] = []

    async def parts():
        try:
            yield b"data: only\n\n"
        finally:
            with anyio.CancelScope(shield=True):
                await asyncio.sleep(0.1)  # the client leaves meanwhile
                seen.append("cleanup done")

    client = Client(leave_after=0.02)
    asyncio.run(asyncio.wait_for(_call(EventStream(parts()), client), 5))
    assert seen == ["cleanup done"]
    assert client.body() == b"data: only\n\n"
