// Small SVG charts written for the dashboard (no library: see docs/decisions/0700-*). Each
// function returns an <svg> sized to `width` (pixels of its container) with text in the
// document's font, so it scales with the page and stays crisp on big screens.

import { s } from './dom.js';
import { day, localParts, num, time } from './i18n.js';

const PAD = { l: 52, r: 12, t: 10, b: 24 };

function frame(width, height, label) {
  return s('svg', { class: 'chart', width, height, viewBox: `0 0 ${width} ${height}`,
    role: 'img', 'aria-label': label });
}

function niceStep(span, n) {
  const raw = span / Math.max(1, n);
  const p = 10 ** Math.floor(Math.log10(raw));
  const f = raw / p;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * p;
}

export function yTicks(lo, hi, n = 4) {
  if (!(hi > lo)) hi = lo + 1;
  const step = niceStep(hi - lo, n);
  const out = [];
  // each tick from its index (no accumulated float error), and +0 where it is zero: a tick
  // of -1e-17 or -0 printed as "-0"
  for (let i = Math.ceil(lo / step); i * step <= hi + step * 1e-9; i++) out.push(i * step || 0);
  return { ticks: out, digits: step < 1 ? Math.min(3, Math.ceil(-Math.log10(step) - 1e-9)) : 0 };
}

const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800,
  21600, 43200, 86400, 172800, 604800].map((x) => x * 1e6);

/** Time ticks between t0 and t1 (µs) at a round step; labels as site-local times. */
export function timeTicks(t0, t1, width) {
  const want = Math.max(2, Math.floor(width / 110));
  const step = TIME_STEPS.find((st) => (t1 - t0) / st <= want) || TIME_STEPS.at(-1);
  const out = [];
  // round steps in SITE time (hours and midnights of the plant, whatever its UTC offset)
  const p = localParts(t0);
  const off = Date.UTC(p.year, p.month - 1, p.day, p.hour % 24, p.minute, p.second) * 1000
    - (t0 - (t0 % 1e6));
  for (let v = Math.ceil((t0 + off) / step) * step - off; v <= t1; v += step) out.push(v);
  const fmt = step >= 86400e6 ? day : (v) => time(v, step < 60e6);
  return out.map((v) => ({ v, label: fmt(v) }));
}

function xAxis(svg, x0, x1, t0, t1, y, width) {
  const sx = (v) => x0 + ((v - t0) / (t1 - t0)) * (x1 - x0);
  svg.append(s('line', { class: 'axis', x1: x0, x2: x1, y1: y, y2: y }));
  for (const tk of timeTicks(t0, t1, width)) {
    const x = sx(tk.v);
    svg.append(s('line', { class: 'grid', x1: x, x2: x, y1: PAD.t, y2: y }));
    svg.append(s('text', { x, y: y + 16, 'text-anchor': 'middle' }, tk.label));
  }
}

/** Line chart over time. series: [{t:[µs], v:[num|null], lo?:[..], hi?:[..], dots?}];
 * start/end µs. onSelect(t0, t1) is called after a drag selection (zoom). Axis titles:
 * `yTitle` (the quantity and its unit, along the value axis) and `xTitle` (under the time
 * axis). `goals`: [{value, label}] drawn as dashed horizontal lines labelled at their right
 * end (a target: always inside the scale); `yMin`/`yMax`: values the scale includes;
 * `marks`: [{start, end, label}] time spans shaded behind the series (a finding's window). */
export function trendChart({ width, height = 180, start, end, series, label, onSelect, yFmt,
  yTitle, xTitle, goals = [], yMin, yMax, marks = [] }) {
  const svg = frame(width, height, label);
  const x0 = PAD.l + (yTitle ? 18 : 0);
  const x1 = width - PAD.r;
  const yb = height - PAD.b - (xTitle ? 18 : 0);
  if (yTitle) {
    const cy = (PAD.t + yb) / 2;
    svg.append(s('text', { class: 'axis-title', 'data-testid': 'y-title', x: 12, y: cy,
      'text-anchor': 'middle', transform: `rotate(-90 12 ${cy})` }, yTitle));
  }
  if (xTitle) {
    svg.append(s('text', { class: 'axis-title', 'data-testid': 'x-title', x: (x0 + x1) / 2,
      y: height - 4, 'text-anchor': 'middle' }, xTitle));
  }
  let lo = Infinity;
  let hi = -Infinity;
  for (const se of series) {
    for (const arr of [se.v, se.lo, se.hi]) {
      if (!arr) continue;
      for (const v of arr) if (v !== null && v !== undefined) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    }
  }
  for (const v of [...goals.map((g) => g.value), yMin, yMax]) {
    if (v !== null && v !== undefined && Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  }
  if (!Number.isFinite(lo)) { lo = 0; hi = 1; }
  if (hi === lo) { hi += 1; lo -= 1; }
  const { ticks, digits } = yTicks(lo, hi);
  lo = Math.min(lo, ticks[0]);
  hi = Math.max(hi, ticks.at(-1));
  const sx = (t) => x0 + ((t - start) / (end - start)) * (x1 - x0);
  const sy = (v) => yb - ((v - lo) / (hi - lo)) * (yb - PAD.t);
  for (const v of ticks) {
    svg.append(s('line', { class: 'grid', x1: x0, x2: x1, y1: sy(v), y2: sy(v) }));
    svg.append(s('text', { class: 'y-tick', x: x0 - 6, y: sy(v) + 4, 'text-anchor': 'end' },
      yFmt ? yFmt(v) : num(v, digits)));
  }
  xAxis(svg, x0, x1, start, end, yb, width);
  for (const mk of marks) {
    const a = sx(Math.max(start, mk.start));
    const b = sx(Math.min(end, mk.end));
    svg.append(s('rect', { class: 'mark', 'data-testid': 'chart-mark', x: a.toFixed(1), y: PAD.t,
      width: Math.max(2, b - a).toFixed(1), height: yb - PAD.t },
    mk.label ? s('title', null, mk.label) : null));
  }
  for (const se of series) {
    if (se.lo && se.hi) {
      let d = '';
      let back = '';
      for (let i = 0; i < se.t.length; i++) {
        if (se.lo[i] === null || se.hi[i] === null) continue;
        d += `${d ? 'L' : 'M'}${sx(se.t[i]).toFixed(1)},${sy(se.hi[i]).toFixed(1)}`;
        back = `L${sx(se.t[i]).toFixed(1)},${sy(se.lo[i]).toFixed(1)}${back}`;
      }
      if (d) svg.append(s('path', { class: 'band', d: `${d}${back}Z` }));
    }
    let d = '';
    let pen = false;
    for (let i = 0; i < se.t.length; i++) {
      const v = se.v[i];
      if (v === null || v === undefined) { pen = false; continue; }
      d += `${pen ? 'L' : 'M'}${sx(se.t[i]).toFixed(1)},${sy(v).toFixed(1)}`;
      pen = true;
    }
    svg.append(s('path', { class: `series ${se.cls || ''}`, d: d || 'M0,0' }));
    if (se.dots) {
      // one dot per value: a bucket between two gaps (a break on each side) stays visible
      for (let i = 0; i < se.t.length; i++) {
        const v = se.v[i];
        if (v === null || v === undefined) continue;
        svg.append(s('circle', { class: `dot ${se.cls || ''}`, cx: sx(se.t[i]).toFixed(1),
          cy: sy(v).toFixed(1), r: 3.5 }, se.title ? s('title', null, se.title(i)) : null));
      }
    }
  }
  for (const g of goals) {
    const y = sy(g.value);
    svg.append(s('g', { class: 'goal', 'data-testid': 'goal-line', 'data-value': g.value },
      s('line', { class: 'goal-line', x1: x0, x2: x1, y1: y, y2: y }),
      // the label above its line, or below where the line is at the top of the plot
      s('text', { class: 'goal-label', x: x1 - 4, y: y - 5 < PAD.t + 10 ? y + 15 : y - 5,
        'text-anchor': 'end' }, g.label)));
  }
  if (onSelect) {
    const sel = s('rect', { class: 'sel', x: 0, y: PAD.t, width: 0, height: yb - PAD.t,
      visibility: 'hidden' });
    svg.append(sel);
    let from = null;
    const px = (e) => {
      const r = svg.getBoundingClientRect();
      return Math.min(x1, Math.max(x0, ((e.clientX - r.left) / r.width) * width));
    };
    svg.addEventListener('pointerdown', (e) => {
      from = px(e);
      svg.setPointerCapture(e.pointerId);
      sel.setAttribute('x', from);
      sel.setAttribute('width', 0);
      sel.setAttribute('visibility', 'visible');
    });
    svg.addEventListener('pointermove', (e) => {
      if (from === null) return;
      const x = px(e);
      sel.setAttribute('x', Math.min(from, x));
      sel.setAttribute('width', Math.abs(x - from));
    });
    const done = (e) => {
      if (from === null) return;
      const x = px(e);
      const a = Math.min(from, x);
      const b = Math.max(from, x);
      from = null;
      sel.setAttribute('visibility', 'hidden');
      if (b - a < 6) return;
      const t = (p) => Math.round(start + ((p - x0) / (x1 - x0)) * (end - start));
      onSelect(t(a), t(b));
    };
    svg.addEventListener('pointerup', done);
    svg.addEventListener('pointercancel', () => { from = null; sel.setAttribute('visibility', 'hidden'); });
  }
  return svg;
}

/** Gantt of states: rows [{key, label, bars:[{start,end,state}]}]; stateText(state) for titles. */
export function gantt({ width, start, end, rows, label, stateText, rowH = 26 }) {
  const labelW = 110;
  const height = rows.length * rowH + PAD.b + PAD.t;
  const svg = frame(width, height, label);
  svg.setAttribute('data-testid', 'gantt-svg');
  const x0 = labelW;
  const x1 = width - PAD.r;
  const sx = (t) => x0 + ((Math.max(start, Math.min(end, t)) - start) / (end - start)) * (x1 - x0);
  rows.forEach((row, i) => {
    const y = PAD.t + i * rowH;
    svg.append(s('text', { x: labelW - 8, y: y + rowH / 2 + 4, 'text-anchor': 'end',
      translate: 'no' }, row.label));
    for (const b of row.bars) {
      const x = sx(b.start);
      const w = Math.max(0.5, sx(b.end) - x);
      svg.append(s('rect', { class: `gantt-bar st-${b.state}`, x, y: y + 3, width: w,
        height: rowH - 6, 'data-testid': 'gantt-bar', 'data-state': b.state },
      s('title', null, `${stateText(b.state)} ${time(b.start)}–${time(b.end)}`)));
    }
  });
  xAxis(svg, x0, x1, start, end, height - PAD.b, width);
  return svg;
}

/** Horizontal bars, largest first, with a cumulative-% line (Pareto). rows: [{label, value,
 * text, attrs, cls}] */
export function pareto({ width, rows, label, barH = 30 }) {
  // label above each bar (long reason names stay whole); value and cumulative % at its end
  const rowH = barH + 16;
  const height = rows.length * rowH + PAD.t;
  const svg = frame(width, height, label);
  const x0 = 4;
  const x1 = width - 200;
  const max = Math.max(1, ...rows.map((r) => r.value));
  const total = rows.reduce((a, r) => a + r.value, 0) || 1;
  let cum = 0;
  rows.forEach((r, i) => {
    const y = PAD.t + i * rowH;
    cum += r.value;
    const w = Math.max(1, ((x1 - x0) * r.value) / max);
    const g = s('g', r.attrs || {});
    g.append(
      s('text', { class: 'val', x: x0, y: y + 10 }, r.label),
      s('rect', { class: `bar ${r.cls || ''}`, x: x0, y: y + 15, height: barH - 8, width: w }),
      s('text', { x: x0 + w + 6, y: y + 15 + (barH - 8) / 2 + 4 },
        `${r.text} · ${num((100 * cum) / total, 0)} %`),
    );
    svg.append(g);
  });
  return svg;
}

/** Waterfall: start total, losses going down, end total. steps: [{label, value, kind:
 * 'start'|'loss'|'total', attrs}] ; fmt(value) for labels. */
export function waterfall({ width, height = 240, steps, label, fmt }) {
  const svg = frame(width, height, label);
  const x0 = PAD.l;
  const x1 = width - PAD.r;
  const yb = height - 44;
  const max = Math.max(1, ...steps.filter((x) => x.kind !== 'loss').map((x) => x.value));
  const sy = (v) => yb - (v / max) * (yb - PAD.t - 14);
  const bw = (x1 - x0) / steps.length;
  let level = 0;
  svg.append(s('line', { class: 'axis', x1: x0, x2: x1, y1: yb, y2: yb }));
  steps.forEach((st, i) => {
    let top;
    let bot;
    if (st.kind === 'loss') { top = level; bot = level - st.value; level = bot; }
    else { top = st.value; bot = 0; level = st.value; }
    const x = x0 + i * bw + bw * 0.15;
    const g = s('g', st.attrs || {});
    g.append(
      s('rect', { class: `wf-${st.kind}`, x, width: bw * 0.7, y: sy(top),
        height: Math.max(1, sy(bot) - sy(top)) }),
      s('text', { class: 'val', x: x + bw * 0.35, y: sy(top) - 4, 'text-anchor': 'middle' },
        fmt(st.value)),
      wrapText(st.label, x + bw * 0.35, yb + 16, bw),
    );
    svg.append(g);
  });
  return svg;
}

function wrapText(text, x, y, width) {
  // two lines at most: split at the space nearest the middle when the label is too wide;
  // narrow columns (ten losses in a third of a screen) get a smaller font
  const el = s('text', { x, y, 'text-anchor': 'middle', class: width < 76 ? 'small' : null });
  const words = text.split(' ');
  if (text.length * (width < 76 ? 5.4 : 6.5) <= width || words.length < 2) {
    el.textContent = text;
    return el;
  }
  let best = 1;
  for (let i = 1; i < words.length; i++) {
    const a = words.slice(0, i).join(' ').length;
    const b = words.slice(0, best).join(' ').length;
    if (Math.abs(a - text.length / 2) < Math.abs(b - text.length / 2)) best = i;
  }
  el.append(s('tspan', { x, dy: 0 }, words.slice(0, best).join(' ')),
    s('tspan', { x, dy: 14 }, words.slice(best).join(' ')));
  return el;
}

/** Vertical bars (stacked when `parts`): items [{label, parts:[{value, cls, title, machine}],
 * attrs}]; `max`: the top of the scale at least (1 for shares: a full bar is 100 %). */
export function columns({ width, height = 200, items, label, fmt, max: least = 1e-9 }) {
  const svg = frame(width, height, label);
  const x0 = PAD.l;
  const x1 = width - PAD.r;
  const yb = height - PAD.b;
  const max = Math.max(least, ...items.map((it) => it.parts.reduce((a, p) => a + p.value, 0)));
  const { ticks } = yTicks(0, max);
  const top = Math.max(max, ticks.at(-1));
  const sy = (v) => yb - (v / top) * (yb - PAD.t);
  for (const v of ticks) {
    svg.append(s('line', { class: 'grid', x1: x0, x2: x1, y1: sy(v), y2: sy(v) }));
    svg.append(s('text', { x: x0 - 6, y: sy(v) + 4, 'text-anchor': 'end' }, fmt(v)));
  }
  const bw = (x1 - x0) / Math.max(1, items.length);
  const every = Math.ceil(items.length / Math.max(1, Math.floor((x1 - x0) / 60)));
  items.forEach((it, i) => {
    const g = s('g', it.attrs || {});
    let acc = 0;
    const x = x0 + i * bw + bw * 0.1;
    for (const p of it.parts) {
      const y = sy(acc + p.value);
      g.append(s('rect', { class: p.cls || 'bar', x, width: Math.max(1, bw * 0.8), y,
        height: Math.max(0, sy(acc) - y), 'data-machine': p.machine },
      p.title ? s('title', null, p.title) : null));
      acc += p.value;
    }
    if (i % every === 0) {
      g.append(s('text', { x: x + bw * 0.4, y: yb + 16, 'text-anchor': 'middle' }, it.label));
    }
    svg.append(g);
  });
  svg.append(s('line', { class: 'axis', x1: x0, x2: x1, y1: yb, y2: yb }));
  return svg;
}

/** Horizontal stacked bars: rows [{label, parts:[{value, cls, title}], text, attrs}] */
export function stackedRows({ width, rows, label, barH = 26 }) {
  const labelW = Math.min(200, width * 0.3);
  const height = rows.length * barH + PAD.t + 4;
  const svg = frame(width, height, label);
  const x0 = labelW;
  const x1 = width - 90;
  const max = Math.max(1e-9, ...rows.map((r) => r.parts.reduce((a, p) => a + p.value, 0)));
  rows.forEach((r, i) => {
    const y = PAD.t + i * barH;
    const g = s('g', r.attrs || {});
    g.append(s('text', { x: labelW - 8, y: y + barH / 2 + 4, 'text-anchor': 'end',
      translate: 'no' }, r.label));
    let acc = 0;
    for (const p of r.parts) {
      const x = x0 + ((x1 - x0) * acc) / max;
      const w = ((x1 - x0) * p.value) / max;
      g.append(s('rect', { class: p.cls, x, y: y + 3, width: Math.max(0, w), height: barH - 6 },
        p.title ? s('title', null, p.title) : null));
      acc += p.value;
    }
    g.append(s('text', { class: 'val', x: x0 + ((x1 - x0) * acc) / max + 6, y: y + barH / 2 + 4 },
      r.text));
    svg.append(g);
  });
  return svg;
}

/** Width available inside an element (falls back to 600 before layout). */
export function widthOf(el) {
  return Math.max(280, Math.floor(el.clientWidth || el.getBoundingClientRect().width || 600));
}
