"""Secrets kept in files outside the metadata database, each readable by its owner only.

The JWT signing key and the audit log's MAC key live in ``Security.secrets_dir`` (next to
the config file by default): whoever can read or rewrite the database can then neither mint
tokens nor recompute the audit chain. Files are created ``0600`` with ``O_EXCL`` (two workers
starting at once agree on one key); a file found readable by others is narrowed to ``0600``
and a warning logged.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path

__all__ = ["AUDIT_KEY", "JWT_KEY", "SecretFileError", "create_secret", "read_or_create"]

JWT_KEY = "jwt.key"
AUDIT_KEY = "audit.key"

_log = logging.getLogger("andon.platform.secrets")


class SecretFileError(Exception):
    """A secret file that cannot be read or written; the message names it."""


def _tighten(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        _log.warning("%s was readable by others (mode %o): narrowed to 0600", path, mode)
        path.chmod(0o600)


def create_secret(path: Path, value: str) -> bool:
    """Write ``value`` to a new ``0600`` file; ``False`` if the file already exists."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    except OSError as exc:
        raise SecretFileError(f"{path}: cannot create: {exc.strerror}") from exc
    try:
        os.write(fd, value.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def read_or_create(path: Path, make: Callable[[], str]) -> tuple[str, bool]:
    """The secret in ``path``, creating it with ``make()`` first if missing; the flag says
    whether this call created it."""
    created = create_secret(path, make()) if not path.exists() else False
    try:
        _tighten(path)
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SecretFileError(f"{path}: cannot read: {exc.strerror}") from exc
    if not value:
        raise SecretFileError(f"{path}: empty secret file (remove it to make a new one)")
    return value, created
