"""The test certificate authority: one CA per process, one leaf certificate per hostname.

Key generation is the expensive part of TLS in tests (smtpdfix spends 50–90 ms on it per test),
so everything here is made once and cached: the CA on first use, a leaf and its server
``SSLContext`` per hostname. Nothing is written into ``os.environ``.
"""

from __future__ import annotations

import ssl
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeAlias

if TYPE_CHECKING:
    import trustme

__all__ = ["TLS_MODES", "ServesTLS", "TLSMode", "TestCA", "default_ca"]

#: The TLS modes of a server: STARTTLS after the greeting, or TLS from the first byte.
TLSMode: TypeAlias = Literal["starttls", "implicit"]

#: The values of the ``tls`` option, everywhere it exists.
TLS_MODES = (None, "starttls", "implicit")


class TestCA:
    """A certificate authority for tests, made with trustme.

    ``ca_file`` is a PEM path for clients and variables such as ``SSL_CERT_FILE``;
    :meth:`client_context` trusts it; :meth:`server_context` gives a context whose leaf covers
    the hostname, ``localhost``, ``127.0.0.1`` and ``::1``.
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, directory: Path | None = None) -> None:
        # Imported here: trustme pulls in cryptography (~20 ms), which a run without TLS
        # should not pay at plugin load.
        import trustme

        self._ca = trustme.CA(organization_name="pytest_smtp test CA")
        self._lock = threading.Lock()
        self._server_contexts: dict[str, ssl.SSLContext] = {}
        self._leaves: dict[str, trustme.LeafCert] = {}
        if directory is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="pytest_smtp-ca-")
            directory = Path(self._tmp.name)
        self.directory = directory
        self.ca_file = directory / "pytest_smtp-ca.pem"
        """PEM file of the CA certificate, for clients to trust."""
        self._ca.cert_pem.write_to_path(str(self.ca_file))

    @property
    def ca_pem(self) -> bytes:
        """The CA certificate as PEM bytes."""
        return self._ca.cert_pem.bytes()

    def _leaf(self, hostname: str) -> trustme.LeafCert:
        hostname = hostname.lower()
        with self._lock:
            leaf = self._leaves.get(hostname)
            if leaf is None:
                names = [hostname, "localhost", "127.0.0.1", "::1"]
                leaf = self._ca.issue_cert(*dict.fromkeys(names))
                self._leaves[hostname] = leaf
            return leaf

    def server_context(self, hostname: str = "localhost") -> ssl.SSLContext:
        """A server-side context with a leaf for ``hostname`` (cached per hostname)."""
        key = hostname.lower()
        with self._lock:
            ctx = self._server_contexts.get(key)
        if ctx is not None:
            return ctx
        leaf = self._leaf(key)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        leaf.configure_cert(ctx)
        with self._lock:
            return self._server_contexts.setdefault(key, ctx)

    def client_context(self) -> ssl.SSLContext:
        """A new client-side context that trusts this CA only (and verifies hostnames).

        Built without loading the system trust store, which costs ~17 ms per context.
        """
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self._ca.configure_trust(ctx)
        return ctx

    def cert_files(self, hostname: str = "localhost") -> tuple[Path, Path]:
        """``(certificate chain PEM, private key PEM)`` files for ``hostname``.

        For servers outside Python (Dovecot, swaks as a server) that want files.
        """
        leaf = self._leaf(hostname)
        cert = self.directory / f"{hostname}.crt.pem"
        key = self.directory / f"{hostname}.key.pem"
        if not cert.exists():
            cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
            key.write_bytes(leaf.private_key_pem.bytes())
        return cert, key


_default: TestCA | None = None
_default_lock = threading.Lock()


def default_ca() -> TestCA:
    """The process-wide test CA, made on first use (one key generation per process)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = TestCA()
        return _default


class ServesTLS:
    """The TLS identity of a server (SMTP, POP3, IMAP): a leaf for ``hostname`` from ``ca``.

    The class sets ``hostname`` and ``_ca`` (a :class:`TestCA`, or None for
    :func:`default_ca`, made on first use).
    """

    hostname: str
    _ca: TestCA | None

    @property
    def ca(self) -> TestCA:
        """The test CA whose leaf certificates this server presents."""
        if self._ca is None:
            self._ca = default_ca()
        return self._ca

    def ssl_context(self) -> ssl.SSLContext:
        """The server-side TLS context (leaf for :attr:`hostname`, signed by :attr:`ca`)."""
        return self.ca.server_context(self.hostname)
