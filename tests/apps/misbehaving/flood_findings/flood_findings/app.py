"""Misbehaves: emits findings as fast as it can and ignores being refused."""

from andon.sdk import Context, Finding, RateLimited


async def main(ctx: Context) -> None:
    site = (await ctx.list_sites())[0].id
    now = await ctx.now()
    refused = 0
    while True:
        try:
            await ctx.emit(Finding("probe", site, now - 60_000_000, now, 0.5, "again"))
        except RateLimited:
            refused += 1
