"""Misbehaves: spins on the CPU and never yields."""

from andon.sdk import Context


async def main(ctx: Context) -> None:
    n = 0
    while True:
        n += 1
