"""Misbehaves: writes its own code, the system and its parent directory."""

import os

from andon.sdk import Context


async def main(ctx: Context) -> None:
    for path in (
        "/data/ok.txt",
        "/data/../escape.txt",
        "/app/write_outside/app.py",
        "/etc/cron.d/x",
    ):
        with open(path, "w") as fh:
            fh.write("owned")
        print("wrote", os.path.abspath(path), flush=True)
