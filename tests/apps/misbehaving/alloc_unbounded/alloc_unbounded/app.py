"""Misbehaves: keeps every byte it allocates, touching each page."""

from andon.sdk import Context


async def main(ctx: Context) -> None:
    hoard = []
    while True:
        hoard.append(b"x" * (8 * 2**20))
