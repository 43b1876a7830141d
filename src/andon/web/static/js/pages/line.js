// Line view: flow diagram (machines, buffers and fill levels), state Gantt of the range, OEE
// and its loss waterfall, downtime Pareto and bottleneck history.

import { api } from '../api.js';
import { clear, h, raw, s } from '../dom.js';
import { columns, gantt, pareto, trendChart, waterfall, widthOf } from '../charts.js';
import { allowData, dataName, duration, num, pct, stateLabel, t, time } from '../i18n.js';
import {
  bigFig, card, lineName, lossName, lossSteps, picker, rangePicker,
  reasonText, serverNow, shortId, siteRange, stateLegend, timeTitle,
} from './common.js';

export { lossName };

const PALETTE = 6;

function flowDiagram(flow, states, width, names) {
  // stage of each machine: 0 for machines fed by no buffer, else 1 + stage of the feeders
  const stage = new Map(flow.machines.map((m) => [m.machine, 0]));
  for (let pass = 0; pass < flow.machines.length; pass++) {
    for (const b of flow.buffers) {
      const from = Math.max(...b.from.map((m) => stage.get(m) ?? 0));
      for (const m of b.to) if ((stage.get(m) ?? 0) < from + 1) stage.set(m, from + 1);
    }
  }
  const nStages = Math.max(0, ...stage.values()) + 1;
  const cols = nStages * 2 - 1;
  const colW = width / cols;
  const perStage = new Map();
  for (const m of flow.machines) {
    const st = stage.get(m.machine);
    if (!perStage.has(st)) perStage.set(st, []);
    perStage.get(st).push(m);
  }
  const rows = Math.max(1, ...[...perStage.values()].map((x) => x.length));
  const rowH = 86;
  const height = rows * rowH + 20;
  const svg = s('svg', { class: 'chart', width, height, viewBox: `0 0 ${width} ${height}`,
    role: 'img', 'aria-label': t('line.flow') });
  svg.append(s('defs', null, s('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5,
    markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
  s('path', { d: 'M0,0 L10,5 L0,10 z', fill: '#9da7b3' }))));
  const pos = new Map();
  const boxW = Math.min(150, colW * 0.9);
  for (const [st, ms] of perStage) {
    ms.forEach((m, i) => {
      const cx = (st * 2 + 0.5) * colW;
      const cy = 10 + (i + 0.5) * (height - 20) / ms.length;
      pos.set(m.machine, { cx, cy });
    });
  }
  const bufs = flow.buffers.map((b) => {
    const st = Math.max(...b.from.map((m) => stage.get(m) ?? 0));
    const cx = (st * 2 + 1.5) * colW;
    return { b, cx, cy: height / 2 };
  });
  for (const { b, cx, cy } of bufs) {
    for (const m of b.from) {
      const p = pos.get(m);
      if (p) svg.append(s('path', { class: 'flow-arrow', d: `M${p.cx + boxW / 2},${p.cy} L${cx - 22},${cy}` }));
    }
    for (const m of b.to) {
      const p = pos.get(m);
      if (p) svg.append(s('path', { class: 'flow-arrow', d: `M${cx + 22},${cy} L${p.cx - boxW / 2},${p.cy}` }));
    }
  }
  for (const m of flow.machines) {
    const p = pos.get(m.machine);
    const state = states.get(m.machine) || 'offline';
    svg.append(s('g', { 'data-testid': 'flow-machine', 'data-machine': m.machine,
      'data-state': state, class: `st-${state}` },
    s('rect', { class: 'flow-box', x: p.cx - boxW / 2, y: p.cy - 30, width: boxW, height: 60, rx: 6 }),
    s('text', { class: 'flow-name', x: p.cx, y: p.cy - 8, 'text-anchor': 'middle', translate: 'no' },
      shortId(m.machine)),
    s('text', { x: p.cx, y: p.cy + 14, 'text-anchor': 'middle' }, stateLabel(state)),
    s('title', null, `${names.get(m.machine) || m.name} · ${stateLabel(state)}`)));
  }
  for (const { b, cx, cy } of bufs) {
    const level = b.level;
    const frac = level === null || level === undefined ? 0 : Math.min(1, level / b.capacity);
    const bh = 56;
    svg.append(s('g', { 'data-testid': 'flow-buffer', 'data-buffer': b.buffer,
      'data-level': level ?? '', 'data-capacity': b.capacity },
    s('rect', { class: 'flow-buf', x: cx - 20, y: cy - bh / 2, width: 40, height: bh, rx: 4 }),
    s('rect', { class: 'flow-fill', x: cx - 18, y: cy + bh / 2 - 2 - (bh - 4) * frac, width: 36,
      height: (bh - 4) * frac }),
    s('text', { x: cx, y: cy - bh / 2 - 6, 'text-anchor': 'middle', translate: 'no' }, shortId(b.buffer)),
    s('text', { class: 'val', x: cx, y: cy + bh / 2 + 16, 'text-anchor': 'middle' },
      level === null || level === undefined ? '–' : `${num(level)}/${num(b.capacity)}`)));
  }
  return svg;
}

export function paretoRows(dt, tree) {
  // unexplained downtime is one row, from `unexplained_s` (the API also lists it among the
  // rows as category "unexplained", which showed as "Unexplained ›" beside "Unexplained")
  const rows = dt.rows.filter((r) => r.category !== 'unexplained').map((r) => {
    const label = reasonText(tree, r.category, r.reason);
    return { label, value: r.seconds, text: `${duration(r.seconds)} · ${t('line.stops', { n: r.count })}`,
      attrs: { 'data-testid': 'pareto-row', 'data-category': r.category, 'data-reason': r.reason,
        'data-seconds': r.seconds } };
  });
  if (dt.unexplained_s > 0) {
    rows.push({ label: t('reasons.unexplained'), value: dt.unexplained_s, cls: 'bar-unexplained',
      text: duration(dt.unexplained_s),
      attrs: { 'data-testid': 'pareto-row', 'data-category': '', 'data-reason': 'unexplained',
        'data-seconds': dt.unexplained_s } });
  }
  rows.sort((a, b) => b.value - a.value);
  return rows;
}

/** The line's OEE and good output per bucket with the manager's targets as goal lines. */
function goalCharts(cardEl, trend, start, end, bucketS, goal, goalRate) {
  const oeeBox = h('div', null, h('h3', null, t('kpi.oee')));
  const rateBox = h('div', null, h('h3', null, t('line.trendrate')));
  cardEl.append(
    h('p', { class: 'muted' }, t('line.bucket', { n: bucketS / 60 }),
      goal ? null : ` ${t('line.notargets')}`),
    h('div', { class: 'grid-2' }, oeeBox, rateBox));
  const mid = trend.map((p) => (p.start + p.end) / 2);
  const tip = (i, v) => `${time(trend[i].start)}–${time(trend[i].end)} · ${v}`;
  const oee = trendChart({ width: widthOf(oeeBox), height: 210, start, end, label: t('kpi.oee'),
    series: [{ t: mid, v: trend.map((p) => p.oee), dots: true,
      title: (i) => tip(i, pct(trend[i].oee)) }],
    yMin: 0, yMax: 1, yFmt: (v) => pct(v, 0), yTitle: t('kpi.oee'), xTitle: timeTitle(),
    goals: goal?.oee != null ? [{ value: goal.oee,
      label: t('line.goalat', { v: pct(goal.oee, 0) }) }] : [] });
  oee.setAttribute('data-testid', 'trend-oee');
  const rate = trendChart({ width: widthOf(rateBox), height: 210, start, end,
    label: t('line.trendrate'),
    series: [{ t: mid, v: trend.map((p) => p.per_hour), dots: true,
      title: (i) => tip(i, `${t('unit.perh', { n: num(trend[i].per_hour, 1) })} · ${
        t('line.parts', { n: num(trend[i].good_out) })}`) }],
    yMin: 0, yTitle: t('line.rateaxis'), xTitle: timeTitle(),
    goals: goalRate != null ? [{ value: goalRate,
      label: t('line.goalat', { v: t('unit.perh', { n: num(goalRate, 1) }) }) }] : [] });
  rate.setAttribute('data-testid', 'trend-rate');
  oeeBox.append(oee);
  rateBox.append(rate);
}

export default {
  async render(root, params, ctx) {
    const st = await ctx.structure();
    if (!st.lines.length) {
      root.append(h('p', { class: 'empty' }, t('line.none')));
      return ctx.ready();
    }
    const lineId = params.get('line') || st.lines[0].line;
    const line = st.lines.find((l) => l.line === lineId);
    if (!line) {
      root.append(h('p', { class: 'error', 'data-testid': 'page-error' }, t('line.unknown')));
      return ctx.ready();
    }
    let rangeName = params.get('range') || 'today';
    const base = `/sites/${encodeURIComponent(ctx.site.id)}`;
    const body = h('div', { class: 'line-body' });
    root.append(
      h('div', { class: 'page-head' },
        h('h1', null, t('nav.line'), ' · ', raw(lineName(line))),
        picker('line-picker', t('line.pick'), st.lines.map((l) => ({ value: l.line,
          label: lineName(l) })), line.line,
        (v) => ctx.go('line', { line: v, range: rangeName })),
        rangePicker(['shift', 'today', '24h', '7d'], rangeName, (n) => {
          rangeName = n;
          load();
        }),
        h('a', { class: 'btn', 'data-testid': 'report-link',
          href: `#/report?${new URLSearchParams({ line: line.line, shift: 'current' })}` },
        t('report.link'))),
      body);

    let seq = 0;
    let flowTimer = null;
    async function load() {
      const my = ++seq;
      root.dataset.ready = '0';
      const now = await serverNow(ctx);
      const [start, end] = await siteRange(ctx, rangeName, now);
      const bucket = Math.max(60, Math.round((end - start) / 1e6 / 48 / 60) * 60);
      const q = { line: line.line, start, end };
      const machines = line.machines.map((m) => m.machine);
      // the goal chart's buckets: a quarter of an hour over a shift, else an hour
      const trendS = rangeName === 'shift' ? 900 : 3600;
      const [flow, kpi, states, dt, tree, bns, board, targets] = await Promise.all([
        api(`${base}/lines/flow`, { query: { line: line.line }, signal: ctx.signal }),
        api(`${base}/lines/kpi`, { query: { ...q, bucket_s: trendS }, signal: ctx.signal }),
        api(`${base}/states`, { query: { start, end, machine: machines }, signal: ctx.signal }),
        api(`${base}/kpi/downtime`, { query: q, signal: ctx.signal }),
        ctx.reasonTree().catch(() => null),
        api(`${base}/lines/bottlenecks`, { query: { ...q, bucket_s: bucket }, signal: ctx.signal }),
        api(`${base}/board`, { signal: ctx.signal }),
        api(`${base}/targets`, { signal: ctx.signal }).catch(() => []),
      ]);
      const goal = targets.find((x) => x.line === line.line);
      // a per-shift target alone is a rate over the shift's planned production time
      // (decision 0614): the kiosk's plan computes it, so the goal line is the kiosk's rate
      const goalRate = goal?.per_hour ?? (goal?.per_shift ? await api(`${base}/kiosk`,
        { query: { line: line.line }, signal: ctx.signal })
        .then((k) => k.lines[0]?.shift.per_hour ?? null).catch(() => null) : null);
      if (my !== seq || !ctx.alive()) return;
      clear(body);
      const cur = new Map(board.machines.map((m) => [m.machine, m.state]));
      allowData(...flow.machines.map((m) => m.name));

      const flowCard = card(t('line.flow'), 'flow-card');
      const oeeCard = card(t('line.oee'), 'line-oee-card');
      const ganttCard = card(t('line.gantt'), 'gantt');
      const paretoCard = card(t('line.pareto'), 'pareto');
      const bnCard = card(t('line.bottlenecks'), 'bottleneck-history');
      const trendCard = card(t('line.trend'), 'line-trend');
      body.append(flowCard, h('div', { class: 'grid-2' }, oeeCard, paretoCard), trendCard,
        ganttCard, bnCard);
      const names = new Map(line.machines.map((m) => [m.machine, dataName(m)]));
      let flowSvg = flowDiagram(flow, cur, widthOf(flowCard) - 28, names);
      flowSvg.setAttribute('data-testid', 'flow');
      flowCard.append(flowSvg);
      // buffer levels and machine states live: the diagram alone is redrawn every 10 s
      if (flowTimer) clearInterval(flowTimer);
      flowTimer = ctx.every(10000, async () => {
        try {
          const [f, b] = await Promise.all([
            api(`${base}/lines/flow`, { query: { line: line.line }, signal: ctx.signal }),
            api(`${base}/board`, { signal: ctx.signal })]);
          if (my !== seq || !ctx.alive()) return;
          const next = flowDiagram(f, new Map(b.machines.map((m) => [m.machine, m.state])),
            widthOf(flowCard) - 28, names);
          next.setAttribute('data-testid', 'flow');
          flowSvg.replaceWith(next);
          flowSvg = next;
        } catch (e) {
          if (e.name !== 'AbortError') console.warn('flow refresh failed', e);
        }
      });

      oeeCard.append(h('div', { class: 'figs', 'data-testid': 'line-oee' },
        bigFig(t('kpi.oee'), pct(kpi.oee.oee), 'line-oee-value'),
        bigFig(t('kpi.availability'), pct(kpi.oee.availability)),
        bigFig(t('kpi.performance'), pct(kpi.oee.performance)),
        bigFig(t('kpi.quality'), pct(kpi.oee.quality)),
        bigFig(t('board.throughput'), t('unit.perh', { n: num(kpi.throughput_per_h, 1) }))));
      if (goal) {
        // the manager's targets (set in kiosk mode) beside what the line did
        const vs = (v, g) => (v === null || v === undefined || g === null ? '' : v >= g ? 'ahead'
          : 'behind');
        oeeCard.append(h('p', { class: 'goals', 'data-testid': 'line-goals' },
          goal.oee !== null ? h('span', { 'data-vs': vs(kpi.oee.oee, goal.oee),
            'data-testid': 'goal-oee' }, `${t('kpi.oee')} ${t('line.goal')} ${pct(goal.oee, 0)}`)
            : null,
          goal.per_hour !== null ? h('span', { 'data-vs': vs(kpi.throughput_per_h, goal.per_hour),
            'data-testid': 'goal-rate' }, `${t('board.throughput')} ${t('line.goal')} `
            + t('unit.perh', { n: num(goal.per_hour, 1) })) : null));
      }
      const steps = lossSteps(kpi.waterfall);
      const wf = waterfall({ width: widthOf(oeeCard) - 28, steps, label: t('line.waterfall'),
        fmt: (v) => t('unit.h', { n: num(v, 1) }) });
      wf.setAttribute('data-testid', 'waterfall');
      oeeCard.append(h('h3', null, t('line.waterfall')), wf);

      goalCharts(trendCard, kpi.trend, start, end, trendS, goal, goalRate);

      const byM = new Map(machines.map((m) => [m, []]));
      for (let i = 0; i < states.index.length; i++) {
        byM.get(states.machines[states.index[i]])?.push({ start: states.start[i],
          end: states.end[i], state: states.state[i] });
      }
      ganttCard.append(gantt({ width: widthOf(ganttCard) - 28, start, end,
        rows: line.machines.map((m) => ({ key: m.machine, label: shortId(m.machine),
          bars: byM.get(m.machine) || [] })), label: t('line.gantt'), stateText: stateLabel }),
      stateLegend());

      const rows = paretoRows(dt, tree);
      if (rows.length) {
        paretoCard.append(pareto({ width: widthOf(paretoCard) - 28, rows, label: t('line.pareto') }));
      } else paretoCard.append(h('p', { class: 'muted' }, t('line.nostops')));

      const idx = new Map(machines.map((m, i) => [m, i % PALETTE]));
      // sole share per machine, then the shifting time once: a bucket fills at most 100 %
      const items = bns.buckets.map((b) => ({
        label: time(b.start),
        attrs: { 'data-testid': 'bottleneck-bucket', 'data-machine': b.bottleneck || '',
          'data-total': machines.reduce((a, m) => a + (b.shares[m] || 0), 0) + (b.shifting || 0) },
        parts: [...machines.filter((m) => (b.shares[m] || 0) > 0).map((m) => ({
          value: b.shares[m], cls: `bar pal-${idx.get(m)}`, machine: m,
          title: `${shortId(m)} ${pct(b.shares[m], 0)}` })),
        ...(b.shifting > 0 ? [{ value: b.shifting, cls: 'bar pal-shifting', machine: '',
          title: `${t('line.shifting')} ${pct(b.shifting, 0)}` }] : [])],
      }));
      bnCard.append(columns({ width: widthOf(bnCard) - 28, height: 200, items,
        label: t('line.bottlenecks'), fmt: (v) => pct(v, 0), max: 1 }),
      h('div', { class: 'legend', 'data-testid': 'bottleneck-legend' }, machines.map((m) => h('span',
        { class: 'legend-item', 'data-machine': m },
        h('span', { class: `swatch pal-${idx.get(m)}` }), raw(shortId(m)))),
      h('span', { class: 'legend-item', 'data-machine': '' }, h('span', { class: 'swatch pal-shifting' }),
        t('line.shifting'))));
      ctx.ready();
    }
    await load();
  },
};
