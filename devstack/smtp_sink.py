"""SMTP sink for local development and end-to-end tests.

Accepts every message on an SMTP port (aiosmtpd), stores each one as an ``.eml`` file, and
serves them over a small JSON API so tests can assert what was sent:

- ``GET /messages`` (optional ``?to=addr``) -> ``[{id, from, to, subject, body, html,
  received_at}]``, oldest first
- ``DELETE /messages`` -> 204, removes every stored message

Run: ``python -m devstack.smtp_sink --port 1025 --http-port 1080 --maildir DIR``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email.policy
import time
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session


class MaildirHandler:
    """aiosmtpd handler writing each message to ``<maildir>/<ns-timestamp>-<uuid>.eml``."""

    def __init__(self, maildir: Path) -> None:
        self.maildir = maildir
        maildir.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        # The envelope recipients include Bcc, which the headers do not: keep them with the
        # message so the API reports who actually received it.
        recipients = "".join(f"X-Envelope-To: {rcpt}\r\n" for rcpt in envelope.rcpt_tos)
        content = envelope.original_content or b""
        name = f"{time.time_ns()}-{uuid.uuid4().hex}.eml"
        tmp = self.maildir / f".{name}.tmp"
        tmp.write_bytes(recipients.encode() + content)
        # Rename so a concurrent GET never reads a half-written file.
        tmp.rename(self.maildir / name)
        return "250 Message accepted for delivery"


def _text(message: EmailMessage, subtype: str) -> str | None:
    part = message.get_body(preferencelist=(subtype,))
    return part.get_content() if part is not None else None


def read_message(path: Path) -> dict[str, Any]:
    parser = BytesParser(_class=EmailMessage, policy=email.policy.default)
    message = parser.parsebytes(path.read_bytes())
    received_ns = int(path.name.split("-", 1)[0])
    return {
        "id": path.stem,
        "from": message.get("From", ""),
        "to": message.get_all("X-Envelope-To", []),
        "subject": message.get("Subject", ""),
        "body": _text(message, "plain") or "",
        "html": _text(message, "html"),
        "received_at": datetime.fromtimestamp(received_ns / 1e9, UTC).isoformat(),
    }


def messages(maildir: Path) -> list[dict[str, Any]]:
    return [read_message(path) for path in sorted(maildir.glob("*.eml"))]


def make_app(maildir: Path) -> web.Application:
    async def list_messages(request: web.Request) -> web.Response:
        found = messages(maildir)
        to = request.query.get("to")
        if to:
            found = [m for m in found if any(to.lower() == r.lower() for r in m["to"])]
        return web.json_response(found)

    async def delete_messages(_: web.Request) -> web.Response:
        for path in maildir.glob("*.eml"):
            path.unlink(missing_ok=True)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/messages", list_messages)
    app.router.add_delete("/messages", delete_messages)
    return app


async def serve(host: str, port: int, http_port: int, maildir: Path) -> None:
    handler = MaildirHandler(maildir)
    loop = asyncio.get_running_loop()
    smtp = await loop.create_server(
        lambda: SMTP(handler, hostname="valorize-smtp-sink"), host, port
    )
    runner = web.AppRunner(make_app(maildir), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, http_port).start()
    print(f"SMTP sink on {host}:{port}, API on http://{host}:{http_port}, mail in {maildir}")
    try:
        async with smtp:
            await smtp.serve_forever()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--http-port", type=int, default=1080)
    parser.add_argument("--maildir", type=Path, required=True)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, args.http_port, args.maildir))


if __name__ == "__main__":
    main()
