"""A stand-in for Google's token signing: an RSA key, its certificate served as Google serves
its own (``{"key id": "x509 PEM"}`` at a certs URL), and ID tokens shaped like the ones Cloud
Tasks and Cloud Scheduler send. google-auth verifies them exactly as it verifies Google's,
only against this certs URL (``VALORIZE_OIDC_CERTS_URL``)."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

ISSUER = "https://accounts.google.com"


class SigningKey:
    def __init__(self) -> None:
        self.kid = uuid.uuid4().hex
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "valorize-test-signer")])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .sign(self._key, hashes.SHA256())
        )
        self.cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self._signer = crypt.RSASigner.from_string(pem, key_id=self.kid)

    def token(
        self,
        audience: str,
        email: str,
        *,
        expires_in: int = 3600,
        issued_ago: int = 0,
        issuer: str = ISSUER,
        email_verified: bool = True,
        **claims: Any,
    ) -> str:
        """An ID token like the one Google mints for a service account's OIDC token."""
        now = int(time.time()) - issued_ago
        payload = {
            "iss": issuer,
            "aud": audience,
            "azp": "1234567890",
            "sub": "1234567890",
            "email": email,
            "email_verified": email_verified,
            "iat": now,
            "exp": now + expires_in,
            **claims,
        }
        return jwt.encode(self._signer, payload).decode()


@contextmanager
def certs_server(*keys: SigningKey) -> Iterator[str]:
    """Serve the keys' certificates at http://127.0.0.1:PORT/certs; yields that URL."""
    body = json.dumps({k.kid: k.cert_pem for k in keys}).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "public, max-age=3600")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/certs"
    finally:
        server.shutdown()
        server.server_close()
