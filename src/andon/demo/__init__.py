"""``andon demo``: the composition root of the demo. It wires the virtual factory
(``andon.sim``) to the same services a production install runs (ingest gateway, store, KPI
facade, the platform API and the web pages) and shows them: headless and live (``run``), read
through real protocols by an edge agent (``protocols``), in the terminal (``terminal``) or in
the web dashboard (``web``). Nothing below imports this package (``docs/layering.md``)."""

from andon.demo.run import DemoRun, default_start, run_headless, run_live

__all__ = ["DemoRun", "default_start", "run_headless", "run_live"]
