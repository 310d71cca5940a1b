"""The Mailer port over SMTP (smtplib), one connection per message.

Configuration, from the environment (read by config.Settings):

- `SMTP_HOST`, `SMTP_PORT`: the server (port default 587 with STARTTLS, else 25; 465 means
  TLS from the first byte);
- `SMTP_USERNAME`, `SMTP_PASSWORD`: log in when set;
- `SMTP_STARTTLS`: `true`/`false`; default true when a username is set (credentials never
  travel in clear);
- `SMTP_CREDENTIALS`: in production, the Secret Manager secret: JSON with `host`, `port`,
  `username`, `password` and optionally `starttls` and `from` (the variables above win);
- `VALORIZE_MAIL_FROM`: the sender; default `ValorizeAI <notifications@DOMAIN>`, DOMAIN from
  `PUBLIC_BASE_URL`.

No host configured: no mailer (notifications are stored and pushed, not emailed).
smtplib and the email package are imported when a message is sent, not at import time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from valorize.service.ports import OutgoingEmail

if TYPE_CHECKING:
    from email.message import EmailMessage

TIMEOUT_SECONDS = 10.0


def _flag(value: object) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    sender: str
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout: float = TIMEOUT_SECONDS

    @property
    def implicit_tls(self) -> bool:
        return self.port == 465

    @property
    def domain(self) -> str:
        address = self.sender.rsplit("<", 1)[-1].rstrip(">").strip()
        return address.rpartition("@")[2] or "valorize.local"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SmtpConfig | None:
        secret: dict[str, object] = {}
        if env.get("SMTP_CREDENTIALS"):
            secret = dict(json.loads(env["SMTP_CREDENTIALS"]))

        def pick(var: str, key: str) -> str | None:
            value = env.get(var) or secret.get(key)
            return str(value) if value not in (None, "") else None

        host = pick("SMTP_HOST", "host")
        if host is None:
            return None
        username = pick("SMTP_USERNAME", "username")
        starttls_given = pick("SMTP_STARTTLS", "starttls")
        starttls = _flag(starttls_given) if starttls_given is not None else username is not None
        port = pick("SMTP_PORT", "port")
        site = urlsplit(env.get("PUBLIC_BASE_URL", "")).hostname or "valorize.local"
        return cls(
            host=host,
            port=int(port) if port else (587 if starttls else 25),
            sender=pick("VALORIZE_MAIL_FROM", "from") or f"ValorizeAI <notifications@{site}>",
            username=username,
            password=pick("SMTP_PASSWORD", "password"),
            starttls=starttls,
        )


class SmtpMailer:
    def __init__(self, config: SmtpConfig) -> None:
        self.config = config

    def message(self, mail: OutgoingEmail) -> EmailMessage:
        from email.message import EmailMessage
        from email.utils import formatdate

        msg = EmailMessage()
        msg["From"] = self.config.sender
        msg["To"] = mail.to
        msg["Subject"] = mail.subject
        msg["Date"] = formatdate(localtime=False, usegmt=True)
        # Derived from the notification: a repeated sending is recognisably the same message.
        msg["Message-ID"] = f"<{mail.message_key}@{self.config.domain}>"
        msg.set_content(mail.text)
        msg.add_alternative(mail.html, subtype="html")
        return msg

    def send(self, mail: OutgoingEmail) -> None:
        import smtplib

        c = self.config
        msg = self.message(mail)
        smtp: smtplib.SMTP
        if c.implicit_tls:
            smtp = smtplib.SMTP_SSL(c.host, c.port, timeout=c.timeout)
        else:
            smtp = smtplib.SMTP(c.host, c.port, timeout=c.timeout)
        with smtp:
            if c.starttls and not c.implicit_tls:
                import ssl

                smtp.starttls(context=ssl.create_default_context())
            if c.username:
                smtp.login(c.username, c.password or "")
            smtp.send_message(msg)
