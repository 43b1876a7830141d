"""Misbehaves: fails before doing anything, every time."""

from andon.sdk import Context


async def main(ctx: Context) -> None:
    raise RuntimeError("configuration file /data/config.json missing")
