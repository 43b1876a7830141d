"""Misbehaves: writes file after file into its data directory."""

from andon.sdk import Context


async def main(ctx: Context) -> None:
    i = 0
    while True:
        with open(f"/data/blob-{i}.bin", "wb") as fh:
            fh.write(b"\0" * (4 * 2**20))
        i += 1
