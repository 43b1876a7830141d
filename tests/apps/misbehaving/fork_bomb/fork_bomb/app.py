"""Misbehaves: forks children that fork children."""

import os
import time

from andon.sdk import Context


async def main(ctx: Context) -> None:
    while True:
        try:
            os.fork()
        except OSError:
            time.sleep(0.01)
