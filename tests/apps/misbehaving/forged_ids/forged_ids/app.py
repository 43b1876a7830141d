"""Misbehaves: asks for another tenant's site, a site of its tenant it was not granted, and a
signal path of another site under its own site id, on the raw protocol as well; prints what
each answer was and keeps trying (the gateway must refuse every one)."""

import asyncio
import json
import os

from andon.sdk import Context, RemoteError

TARGETS = json.loads(os.environ.get("PROBE_TARGETS", "{}"))


async def main(ctx: Context) -> None:
    granted = [s.id for s in await ctx.list_sites()]
    await ctx.log("info", f"granted {granted}")
    attempts = (
        [
            ("telemetry.read", {"site": site, "signals": [sig], "start_us": 0, "end_us": 2**62})
            for site, sig in TARGETS.get("telemetry", [])
        ]
        + [
            ("states.read", {"site": site, "start_us": 0, "end_us": 2**62})
            for site in TARGETS.get("sites", [])
        ]
        + [
            (
                "states.read",
                {
                    "site": site,
                    "tenant": "other",
                    "tenant_id": "other",
                    "start_us": 0,
                    "end_us": 2**62,
                },
            )
            for site in TARGETS.get("sites", [])
        ]
    )
    while True:
        for method, params in attempts:
            try:
                got, _ = await ctx.client.call(method, params)
                print("LEAK", method, json.dumps(params), str(got)[:200], flush=True)
            except RemoteError as e:  # forbidden, or bad_request for a forged tenant parameter
                print("refused", method, params["site"], str(e)[:100], flush=True)
        await asyncio.sleep(0.2)
