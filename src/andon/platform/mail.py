"""Outgoing mail: the password-reset link, through the SMTP relay in ``security.smtp``.

Sent with the standard library's ``smtplib`` in a worker thread, so a slow relay never holds
the event loop; a relay that refuses or cannot be reached raises ``MailError`` naming it.
"""

from __future__ import annotations

import asyncio
import os
import smtplib
import ssl
from email.message import EmailMessage

from andon.platform.config import Smtp

__all__ = ["MailError", "reset_message", "send"]


class MailError(Exception):
    """The relay could not take the message; the text names the relay and the reason."""


def reset_message(
    sender: str, to: str, link: str, valid_min: int, account: str = ""
) -> EmailMessage:
    """The reset mail; ``account`` names the tenant (one address may have an account in
    several, and each gets a mail of its own)."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = f"andon: reset your password{f' ({account})' if account else ''}"
    which = f"andon account in {account}" if account else "andon account"
    msg.set_content(
        f"Someone (hopefully you) asked to reset the password of this {which}.\n\n"
        f"Open this link within {valid_min} minutes to choose a new one (it works once):\n\n"
        f"{link}\n\n"
        "If it was not you, ignore this mail: your password stays as it is.\n"
    )
    return msg


def _send(cfg: Smtp, msg: EmailMessage) -> None:
    try:
        with smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout_s) as smtp:
            if cfg.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if cfg.username is not None:
                password = os.environ.get(cfg.password_env or "", "")
                smtp.login(cfg.username, password)
            smtp.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:
        raise MailError(f"SMTP relay {cfg.host}:{cfg.port}: {exc}") from exc


async def send(cfg: Smtp, msg: EmailMessage) -> None:
    """Hand ``msg`` to the relay (in a worker thread)."""
    await asyncio.to_thread(_send, cfg, msg)
