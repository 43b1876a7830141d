"""The catalog tests' app: it logs the verdicts people give on its findings (the tests put
the findings in through the repository) and otherwise waits."""

from __future__ import annotations

import asyncio

from andon.sdk import Context


async def main(ctx: Context) -> None:
    since = 0
    while True:
        for fb in await ctx.feedback(since):
            await ctx.log("info", f"{fb.finding_id}: {fb.verdict}")
            since = fb.at_us + 1
        await asyncio.sleep(0.5)
