"""The asyncio private attributes STLS/STARTTLS relies on, pinned on every Python (no sockets).

``pytest_smtp.retrieval.common`` reads ``StreamReader._buffer`` (to drop plaintext pipelined
before the handshake) and, on Python 3.10, sets ``StreamWriter._transport`` and the stream
protocol's ``_transport`` and ``_over_ssl`` (3.10 has no ``StreamWriter.start_tls``). Each is
touched in one function; these tests fail, naming the attribute, on a Python that changes one.
tox.ini runs them on 3.10 to 3.13.
"""

from __future__ import annotations

import asyncio
import ssl
import types
from typing import Any

import pytest

from pytest_smtp.retrieval import common


class _Transport(asyncio.Transport):
    """Records writes; ``tls`` says whether it answers for an ``sslcontext`` as TLS does."""

    def __init__(self, tls: bool) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False
        self._extra = {"sslcontext": ssl.create_default_context()} if tls else {}

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._extra.get(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


async def _stream_pair() -> tuple[asyncio.StreamReader, asyncio.StreamWriter, _Transport]:
    """A stream pair as asyncio's server builds one, over a plain (non-TLS) fake transport."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    protocol = asyncio.StreamReaderProtocol(reader)
    plain = _Transport(tls=False)
    plain.set_protocol(protocol)
    protocol.connection_made(plain)
    return reader, asyncio.StreamWriter(plain, protocol, reader, loop), plain


def test_buffered_size_reads_what_the_reader_holds_unread() -> None:
    async def main() -> None:
        reader, writer, _ = await _stream_pair()
        assert common._buffered_size(reader) == 0
        reader.feed_data(b"USER mallory\r\n")
        assert common._buffered_size(reader) == 14
        await reader.readexactly(5)
        assert common._buffered_size(reader) == 9
        writer.close()

    asyncio.run(main())


def test_swap_transport_moves_writes_and_eof_handling_to_the_new_transport() -> None:
    async def main() -> None:
        reader, writer, plain = await _stream_pair()
        protocol = writer.transport.get_protocol()  # as upgrade_to_tls finds it
        assert isinstance(protocol, asyncio.StreamReaderProtocol)
        assert protocol.eof_received() is True  # plain: asyncio keeps a half-closed socket
        tls = _Transport(tls=True)
        common._swap_transport(writer, protocol, tls)
        assert writer.transport is tls
        writer.write(b"+OK\r\n")
        assert (bytes(tls.written), bytes(plain.written)) == (b"+OK\r\n", b"")
        assert protocol.eof_received() is False  # over TLS an EOF closes (no warning)
        assert reader.at_eof()
        writer.close()
        assert tls.closed and not plain.closed

    asyncio.run(main())


@pytest.mark.parametrize("missing", ["_transport", "_over_ssl"])
def test_a_missing_private_attribute_fails_loudly_naming_it(missing: str) -> None:
    writer = types.SimpleNamespace(_transport=None)
    protocol = types.SimpleNamespace(_transport=None, _over_ssl=False)
    delattr(protocol, missing)
    with pytest.raises(RuntimeError, match=rf"has no SimpleNamespace\.{missing}: STLS"):
        common._swap_transport(writer, protocol, _Transport(tls=True))  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match=r"has no StreamReader\._buffer"):
        common._buffered_size(types.SimpleNamespace())  # type: ignore[arg-type]
