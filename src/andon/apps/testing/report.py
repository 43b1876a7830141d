"""The test report as one readable, self-contained HTML page (no scripts, no outside files)."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from andon.apps.testing.harness import AppTestReport

__all__ = ["render_html"]

_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:70rem;color:#222}
h1{margin-bottom:.2rem} .sub{color:#666;margin-top:0}
table{border-collapse:collapse;width:100%;margin:1rem 0}
th,td{border:1px solid #ddd;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f4f4f4} .pass{color:#0a6b2d;font-weight:600} .fail{color:#b00020;font-weight:600}
.verdict{font-size:1.3rem;padding:.6rem 1rem;border-radius:.3rem;display:inline-block}
.verdict.pass{background:#e3f5e9} .verdict.fail{background:#fde7ea}
code,pre{font-family:ui-monospace,monospace;font-size:.85rem} pre{white-space:pre-wrap;margin:0}
"""


def _fig(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict | list):
        return json.dumps(v, sort_keys=True)[:600]
    return str(v)


def _claimed(claim: dict[str, Any]) -> str:
    if claim.get("claimed") is not None:
        return f"at least {_fig(claim['claimed'])}"
    if claim.get("tolerance_pct") is not None:
        return f"within {_fig(claim['tolerance_pct'])} % of the truth"
    return "(no figure)"


def _ok(ok: bool) -> str:
    return '<span class="pass">pass</span>' if ok else '<span class="fail">FAIL</span>'


def render_html(report: AppTestReport) -> str:
    """The report as an HTML page: verdict, checks, claims (measured beside claimed), runs."""
    r = report
    title = f"andon app test: {r.app_id or r.path} {r.version or ''}".strip()
    rows = []
    for c in r.checks:
        figs = "<br>".join(
            f"{escape(k)}: <code>{escape(_fig(v))}</code>" for k, v in c.figures.items()
        )
        rows.append(
            f"<tr><td>{escape(c.name)}</td><td>{_ok(c.ok)}</td>"
            f"<td>{escape(c.detail)}</td><td>{figs}</td></tr>"
        )
    claims = []
    for cl in r.claims:
        verdict = escape(str(cl.get("verdict", "")))
        if cl.get("truth_basis"):
            verdict += f"<br><small>truth: {escape(str(cl['truth_basis']))}</small>"
        worst = [x for x in cl.get("machines") or () if x.get("error_pct") is not None]
        if worst:
            w = max(worst, key=lambda x: x["error_pct"])
            verdict += escape(
                f"; per machine up to {_fig(w['error_pct'])} % off ({w['machine']}, "
                f"{w['dataset']}: {_fig(w['estimated'])} vs {_fig(w['truth'])} kWh)"
            )
        claims.append(
            f"<tr><td>{escape(str(cl.get('metric')))}</td><td>{escape(str(cl.get('finding_type')))}</td>"
            f"<td>{escape(_claimed(cl))}</td><td>{escape(_fig(cl.get('measured')))}</td>"
            f"<td>{_ok(bool(cl.get('ok')))}</td><td>{verdict}</td></tr>"
        )
    runs = []
    for run in r.runs:
        runs.append(
            "<tr>"
            + "".join(
                f"<td>{escape(_fig(run.get(k)))}</td>"
                for k in (
                    "label",
                    "dataset",
                    "state",
                    "exit",
                    "restarts",
                    "findings",
                    "wall_s",
                    "cpu_s",
                    "peak_memory_mb",
                    "requests",
                )
            )
            + f"<td><pre>{escape(chr(10).join(run.get('log_tail', [])[-8:]))}</pre></td></tr>"
        )
    verdict = "pass" if r.ok else "fail"
    claims_html = (
        "<table><tr><th>metric</th><th>finding type</th><th>claimed</th><th>measured</th>"
        "<th></th><th>verdict</th></tr>" + "".join(claims) + "</table>"
        if claims
        else "<p>The manifest makes no claims.</p>"
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>{_CSS}</style></head><body>
<h1>{escape(title)}</h1>
<p class="sub">{escape(r.path)} · {r.duration_s:.1f} s · {len(r.checks)} checks</p>
<p class="verdict {verdict}">{"All checks pass" if r.ok else "Some checks fail"}</p>
<h2>Checks</h2>
<table><tr><th>check</th><th></th><th>what was found</th><th>figures</th></tr>
{"".join(rows)}</table>
<h2>Claims, measured</h2>
{claims_html}
<h2>Runs</h2>
<table><tr><th>run</th><th>dataset</th><th>state</th><th>exit</th><th>restarts</th><th>findings</th>
<th>wall s</th><th>CPU s</th><th>peak MB</th><th>requests</th><th>last log lines</th></tr>
{"".join(runs)}</table>
<h2>Figures</h2>
<pre>{escape(json.dumps(r.figures, indent=2, sort_keys=True))}</pre>
</body></html>
"""
