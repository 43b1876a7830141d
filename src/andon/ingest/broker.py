"""Mosquitto files for a platform's broker: an ACL that binds each edge to its own topics, and
password file lines for edge keys (``andon broker acl`` / ``andon broker passwd``).

An edge logs in with its platform edge key: user name = the key's id, password = its secret.
The ACL lets that user publish only on ``andon/v1/up/<key id>`` and read only
``andon/v1/ack/<key id>``; the platform's own user reads every up topic and writes every ack
topic. The platform keeps only a hash of each key's secret, so the password file line of a
key is made when the key is made (its secret is shown once): pipe the new key into
``andon broker passwd >> /etc/mosquitto/passwd`` and reload the broker. To revoke, revoke
the key in the platform (the gateway refuses its frames at once) and delete its line (the
broker refuses its next login, and the edge stops within one reconnect).

Edges may log in with a client certificate instead (decision 0316,
``examples/mosquitto/certificates.conf``): the broker takes the certificate's CN as the user
name, so the CN is the key's id and the same ACL binds the edge to its key's topics; to
revoke, revoke the key and put the certificate on the broker's CRL.

>>> print(mosquitto_acl("andon-platform"))  # doctest: +ELLIPSIS
# andon: each edge logs in as the id of its platform edge key
pattern write andon/v1/up/%u
pattern read andon/v1/ack/%u
...
>>> line = mosquitto_password_line("u", "pw", salt=bytes(12))
>>> line.split("$")[:3]
['u:', '7', '101']
"""

from __future__ import annotations

import base64
import hashlib
import os

from andon.wire.frames import ACK_PREFIX, UP_PREFIX, key_parts

__all__ = ["edge_password_line", "mosquitto_acl", "mosquitto_password_line"]


def mosquitto_acl(platform_user: str) -> str:
    """A Mosquitto ``acl_file``: edges on their own topics, ``platform_user`` on all."""
    return (
        "# andon: each edge logs in as the id of its platform edge key\n"
        f"pattern write {UP_PREFIX}%u\n"
        f"pattern read {ACK_PREFIX}%u\n"
        "\n"
        "# the platform's ingest gateway (andon serve, settings broker.username)\n"
        f"user {platform_user}\n"
        f"topic read {UP_PREFIX}+\n"
        f"topic write {ACK_PREFIX}+\n"
    )


def mosquitto_password_line(
    username: str, password: str, *, salt: bytes | None = None, iterations: int = 101
) -> str:
    """A line of a Mosquitto 2 password file (``$7$``: PBKDF2-SHA512, as ``mosquitto_passwd``
    writes it)."""
    if ":" in username or not username:
        raise ValueError(f"user name {username!r} is empty or holds ':'")
    salt = os.urandom(12) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    b64 = base64.b64encode
    return f"{username}:$7${iterations}${b64(salt).decode()}${b64(digest).decode()}"


def edge_password_line(key: str) -> str:
    """The password file line of a platform edge key (user = key id, password = secret)."""
    parts = key_parts(key)
    if parts is None:
        raise ValueError("not a platform edge key (andon_<id>_<secret>)")
    return mosquitto_password_line(*parts)
