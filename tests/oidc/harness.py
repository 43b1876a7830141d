"""The test OpenID Connect provider (``provider.mjs``: panva/oidc-provider under Node) on a
free loopback port, and what a browser does at it, for the single sign-on tests."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

__all__ = ["CLIENT_ID", "CLIENT_SECRET", "free_port", "provider", "sign_in_at_provider"]

HERE = Path(__file__).parent
CLIENT_ID = "andon"
CLIENT_SECRET = "a-client-secret-of-length"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def provider(redirect_uri: str, accounts: dict[str, str], port: int | None = None) -> Iterator[str]:
    """A running provider whose client ``andon`` may redirect to ``redirect_uri``;
    ``accounts``: login → verified email; ``port``: where to listen (a free one when
    ``None``). Yields the issuer URL."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise RuntimeError("the single sign-on tests need Node.js and npm on PATH")
    if not (HERE / "node_modules" / "oidc-provider").is_dir():
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--silent"], cwd=HERE, check=True
        )
    port = port or free_port()
    env = {**os.environ, "ACCOUNTS": json.dumps(accounts)}
    proc = subprocess.Popen(
        [node, "provider.mjs", str(port), CLIENT_ID, CLIENT_SECRET, redirect_uri],
        cwd=HERE,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        for line in proc.stdout:  # the provider prints "ready <issuer>" once it listens
            if line.startswith("ready "):
                break
            assert time.monotonic() < deadline, "the OIDC provider did not start"
        else:
            raise RuntimeError(f"the OIDC provider exited ({proc.wait()})")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def sign_in_at_provider(url: str, account: str, redirect_uri: str) -> dict[str, str]:
    """The provider's login and consent forms, as a browser fills them, up to the redirect
    back to ``redirect_uri``; returns that redirect's query (code, state)."""
    with httpx.Client(timeout=10) as browser:
        r = browser.get(url)
        for _ in range(12):
            if r.status_code in (302, 303):
                loc = urllib.parse.urljoin(str(r.url), r.headers["location"])
                if loc.startswith(redirect_uri):
                    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(loc).query))
                r = browser.get(loc)
                continue
            assert r.status_code == 200, r.text
            action = re.search(r'<form[^>]*action="([^"]+)"', r.text)
            assert action, r.text
            names = re.findall(r'<input[^>]*name="([^"]+)"', r.text)
            values = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', r.text))
            form = {n: values.get(n, "") for n in names}
            if "login" in form:
                form.update(login=account, password="any")
            r = browser.post(urllib.parse.urljoin(str(r.url), action.group(1)), data=form)
    raise AssertionError("the provider never redirected back")
