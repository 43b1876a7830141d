"""``andon broker acl`` and ``andon broker passwd``: the Mosquitto files of an andon broker
(the acceptance test runs Mosquitto on them; here their contents and refusals)."""

from __future__ import annotations

import base64
import hashlib

from typer.testing import CliRunner

from andon.cli import app

runner = CliRunner()
KEY = "andon_" + "f" * 32 + "_the-secret"


def test_acl_binds_each_edge_to_its_own_topics() -> None:
    r = runner.invoke(app, ["broker", "acl", "--platform-user", "svc"])
    assert r.exit_code == 0, r.output
    lines = [ln for ln in r.output.splitlines() if ln and not ln.startswith("#")]
    assert lines == [
        "pattern write andon/v1/up/%u",
        "pattern read andon/v1/ack/%u",
        "user svc",
        "topic read andon/v1/up/+",
        "topic write andon/v1/ack/+",
    ]


def test_passwd_makes_a_mosquitto_line_per_key_and_names_a_bad_line() -> None:
    r = runner.invoke(app, ["broker", "passwd"], input=f"{KEY}\n\n")
    assert r.exit_code == 0, r.output
    user, rest = r.output.strip().split(":", 1)
    _, kind, rounds, salt, digest = rest.split("$")
    assert (user, kind, rounds) == ("f" * 32, "7", "101")
    want = hashlib.pbkdf2_hmac("sha512", b"the-secret", base64.b64decode(salt), 101, 64)
    assert base64.b64decode(digest) == want
    r = runner.invoke(app, ["broker", "passwd"], input=f"{KEY}\nnot-a-key\n")
    assert r.exit_code == 2 and "stdin line 2" in r.output and "not a platform edge key" in r.output
