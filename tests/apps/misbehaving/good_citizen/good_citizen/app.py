"""Well behaved: reads its sites, says so in its log, and waits for the platform to stop it."""

import asyncio

from andon.sdk import Context


async def main(ctx: Context) -> None:
    sites = await ctx.list_sites()
    await ctx.log("info", f"good citizen on {len(sites)} site(s)")
    while True:
        await ctx.now()
        await asyncio.sleep(0.5)
