"""The andon board in a real browser with 100 machines: first render time and JS heap over a
live run.

Builds the 100-machine plant of ``benchmarks/api.py`` (the demo plant with its machining line
copied), serves it with ``andon.demo.web.demo_server`` (``--prefill`` plant hours simulated at
once, then the factory live at ``--speed`` plant seconds per wall second, API clock = plant
clock) in a background thread, and drives headless Debian Chromium (``/usr/bin/chromium``,
never a downloaded browser) through Playwright:

* ``first_render_ms.p50`` / ``.p95``: navigation start to ``[data-page="board"][data-ready="1"]``
  with all tiles, over ``--runs`` loads, each in a fresh browser context (cold HTTP cache,
  signed-in session put in sessionStorage first, so the login form is not timed).
* ``heap_start_mb``, ``heap_end_mb``, ``heap_growth_mb_per_min``: one board left open for
  ``--minutes`` with live updates flowing; every ``--sample-s`` seconds a garbage collection
  (CDP ``HeapProfiler.collectGarbage``) then ``Performance.getMetrics`` ``JSHeapUsedSize``
  (start = the first sample after a one-sample warm-up; growth = least-squares slope).
* ``dom_nodes_start`` / ``dom_nodes_end`` (``Nodes`` metric) and ``live_tile_updates`` (tile
  state changes the page applied during the run), which show that updates were flowing.

One JSON line per figure: ``{"figure", "value", "unit", "machine"}``.

Run: ``.venv/bin/python benchmarks/web_board.py [--minutes 10] [--runs 9]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from playwright.sync_api import Browser, Page, ViewportSize, sync_playwright

from andon.demo.web import DemoHandle, DemoOptions, demo_server

__all__ = ["main"]

CHROMIUM = "/usr/bin/chromium"
VIEWPORT: ViewportSize = {"width": 1920, "height": 1080}

# Records when the board becomes ready (ms since navigation start) and counts tile state
# changes; installed before any page script runs.
_PROBE = """
(() => {
  window.__boardReadyAt = null;
  window.__tileUpdates = 0;
  const seen = () => {
    if (window.__boardReadyAt === null
        && document.querySelector('[data-page="board"][data-ready="1"]')) {
      window.__boardReadyAt = performance.now();
    }
  };
  new MutationObserver((records) => {
    for (const r of records) {
      if (r.type === 'attributes' && r.attributeName === 'data-state'
          && r.target.dataset && r.target.dataset.testid === 'tile' && r.oldValue !== null) {
        window.__tileUpdates += 1;
      }
    }
    seen();
  }).observe(document, { subtree: true, childList: true, attributes: true,
                         attributeOldValue: true,
                         attributeFilter: ['data-ready', 'data-state'] });
})();
"""


def machine() -> str:
    return (
        f"{os.cpu_count()} cpu, {platform.machine()}, {platform.system()} {platform.release()}, "
        "headless Debian chromium, server (uvicorn + live factory) in the same process"
    )


def emit(figure: str, value: float, unit: str) -> None:
    print(
        json.dumps({"figure": figure, "value": value, "unit": unit, "machine": machine()}),
        flush=True,
    )


def _plant_yaml(machines: int) -> str:
    spec = importlib.util.spec_from_file_location("bench_api", Path(__file__).with_name("api.py"))
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    text, _ = mod.plant_with(machines)
    return str(text)


def _session(demo: DemoHandle) -> str:
    """A signed-in session as the web app keeps it (sessionStorage ``andon.session``)."""
    import httpx

    email = demo.site.email("engineer")
    r = httpx.post(
        f"{demo.url}/api/v1/auth/login",
        json={"email": email, "password": demo.site.passwords[email]},
        timeout=60,
    )
    r.raise_for_status()
    pair = r.json()
    return json.dumps(
        {"access": pair["access_token"], "refresh": pair["refresh_token"], "email": email}
    )


def _open_board(browser: Browser, demo: DemoHandle, machines: int) -> tuple[Page, float]:
    context = browser.new_context(viewport=VIEWPORT)
    context.add_init_script(
        "if (!sessionStorage.getItem('andon.session')) "
        f"sessionStorage.setItem('andon.session', {json.dumps(_session(demo))});"
    )
    context.add_init_script(_PROBE)
    page = context.new_page()
    page.goto(f"{demo.url}/#/board")
    page.wait_for_selector('[data-page="board"][data-ready="1"]', timeout=60_000)
    page.wait_for_function("() => window.__boardReadyAt !== null", timeout=10_000)
    tiles = page.locator('[data-testid="tile"]').count()
    if tiles != machines:
        raise RuntimeError(f"the board shows {tiles} tiles, the plant has {machines} machines")
    return page, float(page.evaluate("() => window.__boardReadyAt"))


def _metrics(page: Page, cdp: Any) -> dict[str, float]:
    cdp.send("HeapProfiler.collectGarbage")
    got = cdp.send("Performance.getMetrics")["metrics"]
    return {m["name"]: float(m["value"]) for m in got}


def run(args: argparse.Namespace) -> None:
    text = _plant_yaml(args.machines)
    with tempfile.TemporaryDirectory(prefix="andon-bench-web-") as tmp:
        options = DemoOptions(
            text,
            Path(tmp),
            speed=args.speed,
            prefill_h=args.prefill,
            settings={"limits": {"api_rps": 0, "auth_per_s": 0}},
        )
        n = len(options.plant.machines())  # whole copied lines: at least --machines
        emit("machines", float(n), "machines")
        with demo_server(options) as demo, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
            try:
                times = []
                for _ in range(args.runs):
                    page, ms = _open_board(browser, demo, n)
                    times.append(ms)
                    page.context.close()
                emit("first_render_ms.p50", round(float(np.percentile(times, 50)), 1), "ms")
                emit("first_render_ms.p95", round(float(np.percentile(times, 95)), 1), "ms")

                page, _ = _open_board(browser, demo, n)
                cdp = page.context.new_cdp_session(page)
                cdp.send("Performance.enable")
                t0 = time.monotonic()
                samples: list[tuple[float, float, float]] = []
                end = t0 + args.minutes * 60.0
                while True:
                    m = _metrics(page, cdp)
                    samples.append(
                        ((time.monotonic() - t0) / 60.0, m["JSHeapUsedSize"] / 2**20, m["Nodes"])
                    )
                    if time.monotonic() >= end:
                        break
                    page.wait_for_timeout(min(args.sample_s, end - time.monotonic()) * 1000)
                updates = int(page.evaluate("() => window.__tileUpdates"))
                page.context.close()
            finally:
                browser.close()
    steady = samples[1:] if len(samples) > 2 else samples
    t = np.array([s[0] for s in steady])
    heap = np.array([s[1] for s in steady])
    slope = float(np.polyfit(t, heap, 1)[0]) if len(steady) >= 2 else 0.0
    emit("heap_start_mb", round(float(heap[0]), 2), "MiB")
    emit("heap_end_mb", round(float(heap[-1]), 2), "MiB")
    emit("heap_growth_mb_per_min", round(slope, 3), "MiB/min")
    emit("dom_nodes_start", steady[0][2], "nodes")
    emit("dom_nodes_end", steady[-1][2], "nodes")
    emit("live_tile_updates", float(updates), f"state changes in {args.minutes:g} min")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--machines", type=int, default=100)
    ap.add_argument("--minutes", type=float, default=10.0, help="live run for the heap")
    ap.add_argument("--runs", type=int, default=9, help="board loads for the render time")
    ap.add_argument("--speed", type=float, default=60.0, help="plant seconds per wall second")
    ap.add_argument("--prefill", type=float, default=2.0, help="plant hours before going live")
    ap.add_argument("--sample-s", type=float, default=10.0, help="seconds between heap samples")
    args = ap.parse_args()
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")  # never fetch a browser
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} missing: run `make services` (scripts/services-chromium.sh)")
    run(args)


if __name__ == "__main__":
    main()
