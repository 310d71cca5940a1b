"""The SMTP adapter's configuration and message (sending is covered end to end against the
devstack SMTP sink)."""

from __future__ import annotations

import json

from valorize.adapters.email import SmtpConfig, SmtpMailer
from valorize.service.ports import OutgoingEmail


def test_no_host_means_no_mailer() -> None:
    assert SmtpConfig.from_env({}) is None


def test_local_sink_needs_no_credentials_and_no_tls() -> None:
    c = SmtpConfig.from_env({"SMTP_HOST": "127.0.0.1", "SMTP_PORT": "2525"})
    assert c is not None
    assert (c.host, c.port, c.username, c.starttls) == ("127.0.0.1", 2525, None, False)
    assert c.sender == "ValorizeAI <notifications@valorize.local>"


def test_credentials_turn_starttls_on_unless_told_otherwise() -> None:
    env = {"SMTP_HOST": "smtp.example.com", "SMTP_USERNAME": "u", "SMTP_PASSWORD": "p"}
    c = SmtpConfig.from_env(env)
    assert c is not None and c.starttls and c.port == 587 and c.password == "p"
    c = SmtpConfig.from_env({**env, "SMTP_STARTTLS": "false", "SMTP_PORT": "25"})
    assert c is not None and not c.starttls and c.port == 25


def test_the_production_secret_fills_what_variables_do_not_say() -> None:
    secret = {"host": "smtp.example.com", "port": 465, "username": "u", "password": "p"}
    env = {
        "SMTP_CREDENTIALS": json.dumps(secret),
        "PUBLIC_BASE_URL": "https://app.valorize.example",
        "SMTP_PASSWORD": "override",
    }
    c = SmtpConfig.from_env(env)
    assert c is not None
    assert (c.host, c.port, c.password, c.implicit_tls) == (
        "smtp.example.com",
        465,
        "override",
        True,
    )
    assert c.sender == "ValorizeAI <notifications@app.valorize.example>"
    assert c.domain == "app.valorize.example"


def test_message_is_text_and_html_with_a_stable_message_id() -> None:
    c = SmtpConfig("h", 25, "Valorize <no-reply@mail.example>")
    mail = OutgoingEmail("ana@example.com", "Low balance", "plain", "<p>html</p>", "lowbal-a-1.x")
    msg = SmtpMailer(c).message(mail)
    assert msg["Message-ID"] == "<lowbal-a-1.x@mail.example>"
    assert msg["To"] == "ana@example.com" and msg["Subject"] == "Low balance"
    assert msg.get_body(("plain",)).get_content().strip() == "plain"  # type: ignore[union-attr]
    assert "<p>html</p>" in msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
