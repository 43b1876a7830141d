// Machine view: trends of its signals over any range (drag to zoom, or the buttons); narrow
// ranges read raw samples, wider ones server-side aggregates with a bucket chosen so each
// chart has about 600 points; each chart has the signal's name, its unit on the value axis and
// the site's time zone on the time axis. Also its state timeline, OEE trend, the loss waterfall
// of the range (ISO 22400), MTBF/MTTR and energy per part.

import { api } from '../api.js';
import { clear, h, raw, setAttr } from '../dom.js';
import { gantt, trendChart, waterfall, widthOf } from '../charts.js';
import { allowData, dataName, dateTime, duration, num, pct, stateLabel, t } from '../i18n.js';
import {
  bigFig, card, lossSteps, machineLabel, picker, rangeOf, serverNow, shortId, signalName,
  stateLegend, timeTitle,
} from './common.js';

const RAW_MAX_S = 1800;
const POINTS = 600;
const MIN_SPAN = 60e6;

/** Raw samples when the range is narrow, else aggregates with about POINTS buckets. */
export function plan(start, end) {
  const span = (end - start) / 1e6;
  if (span <= RAW_MAX_S) return { mode: 'raw', bucket: 0 };
  const nice = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 21600, 43200, 86400];
  const want = span / POINTS;
  return { mode: 'aggregate', bucket: nice.find((b) => b >= want) || 86400 };
}

export default {
  async render(root, params, ctx) {
    const st = await ctx.structure();
    const mid = params.get('machine') || st.machines[0]?.machine;
    const m = st.machines.find((x) => x.machine === mid);
    if (!m) {
      root.append(h('p', { class: 'error', 'data-testid': 'page-error' }, t('machine.unknown')));
      return ctx.ready();
    }
    const base = `/sites/${encodeURIComponent(ctx.site.id)}`;
    const sitePrefix = m.machine.split('/')[0];
    const prefix = m.machine.slice(sitePrefix.length + 1);
    const last = await api(`${base}/telemetry/last`, { query: { prefix }, signal: ctx.signal });
    const signals = last.values.map((v) => v.signal).filter((sg) => sg.startsWith(`${m.machine}/`));
    allowData(...signals.map(shortId));

    const now0 = await serverNow(ctx);
    let [start, end] = rangeOf('8h', now0);
    let follow = true;
    const trendsEl = h('div', { class: 'grid-2' });
    const kpiEl = h('div', { class: 'grid-2' });
    const timeline = card(t('machine.timeline'), 'state-timeline');
    const rangeText = h('span', { class: 'muted', 'data-testid': 'trend-range' });

    const zoom = h('div', { class: 'toolbar', role: 'group', 'data-testid': 'trend-zoom',
      'aria-label': t('machine.zoom') });
    const zbtn = (key, text, fn) => {
      const b = h('button', { type: 'button', class: 'btn', 'data-zoom': key }, text);
      b.addEventListener('click', fn);
      zoom.append(b);
    };
    zbtn('in', t('zoom.in'), () => {
      const c = (start + end) / 2;
      const half = Math.max(MIN_SPAN, (end - start) / 2) / 2;
      setRange(Math.round(c - half), Math.round(c + half), false);
    });
    zbtn('out', t('zoom.out'), async () => {
      const now = await serverNow(ctx);
      const c = (start + end) / 2;
      const half = end - start;
      const b = Math.min(now, Math.round(c + half));
      setRange(Math.max(0, b - 2 * half), b, b >= now);
    });
    zbtn('reset', t('zoom.reset'), async () => {
      const [a, b] = rangeOf('8h', await serverNow(ctx));
      setRange(a, b, true);
    });
    for (const r of ['1h', '8h', '24h', '7d']) {
      const b = h('button', { type: 'button', class: 'btn', 'data-range': r }, t(`range.${r}`));
      b.addEventListener('click', async () => {
        const [a, e] = rangeOf(r, await serverNow(ctx));
        setRange(a, e, true);
      });
      zoom.append(b);
    }

    root.append(
      h('div', { class: 'page-head' },
        h('h1', null, t('nav.machine'), ' · ', raw(machineLabel(m))),
        picker('machine-picker', t('machine.pick'), st.machines.map((x) => ({ value: x.machine,
          label: machineLabel(x) })), m.machine, (v) => ctx.go('machine', { machine: v }))),
      kpiEl,
      h('section', { class: 'card' }, h('div', { class: 'page-head' },
        h('h2', null, t('machine.trends')), zoom, rangeText),
      h('p', { class: 'muted' }, t('machine.draghint')), trendsEl),
      timeline,
    );

    // signal names and units come with the first /machines/kpi answer (loadKpi)
    let gotInfo;
    const infoP = new Promise((res) => { gotInfo = res; });
    const charts = new Map();
    const titles = new Map();
    for (const sg of signals) {
      const title = h('h3', { 'data-testid': 'trend-title' }, raw(shortId(sg)));
      const wrap = h('div', { class: 'trend-wrap', 'data-testid': 'trend', 'data-signal': sg },
        title);
      charts.set(sg, wrap);
      titles.set(sg, title);
      trendsEl.append(wrap);
    }
    const info = new Map();
    infoP.then((list) => {
      for (const x of list) info.set(x.signal, x);
      allowData(...list.map((x) => x.unit), ...list.map(dataName)); // data, not interface text
      for (const [sg, title] of titles) {
        const x = info.get(sg) || {};
        clear(title);
        title.append(dataName(x) ? raw(dataName(x)) : signalName(x, sg),
          x.unit ? raw(` (${x.unit})`, 'span', { class: 'muted' }) : '');
        setAttr(title.closest('[data-testid="trend"]'), 'data-unit', x.unit || '');
      }
    });
    if (!signals.length) trendsEl.append(h('p', { class: 'muted' }, t('machine.nosignals')));

    let seq = 0;
    async function loadTrends() {
      const my = ++seq;
      root.dataset.ready = '0';
      const p = plan(start, end);
      const series = new Map(signals.map((sg) => [sg, { t: [], v: [], lo: null, hi: null }]));
      if (signals.length && p.mode === 'raw') {
        const r = await api(`${base}/telemetry/range`, { query: { signal: signals, start, end },
          signal: ctx.signal });
        for (let i = 0; i < r.ts.length; i++) {
          const se = series.get(r.signals[r.index[i]]);
          if (!se) continue;
          se.t.push(r.ts[i]);
          se.v.push(r.value[i]);
        }
      } else if (signals.length) {
        const r = await api(`${base}/telemetry/aggregate`, { query: { signal: signals, start, end,
          bucket_s: p.bucket }, signal: ctx.signal });
        for (const se of series.values()) { se.lo = []; se.hi = []; }
        for (let i = 0; i < r.bucket.length; i++) {
          const se = series.get(r.signals[r.index[i]]);
          if (!se) continue;
          se.t.push(r.bucket[i] + (p.bucket * 1e6) / 2);
          se.v.push(r.mean[i]);
          se.lo.push(r.min[i]);
          se.hi.push(r.max[i]);
        }
      }
      await infoP;
      if (my !== seq || !ctx.alive()) return false;
      rangeText.textContent = `${dateTime(start)} – ${dateTime(end)}`;
      for (const [sg, wrap] of charts) {
        setAttr(wrap, 'data-start', start);
        setAttr(wrap, 'data-end', end);
        setAttr(wrap, 'data-mode', p.mode);
        setAttr(wrap, 'data-bucket-s', p.bucket);
        wrap.querySelector('svg')?.remove();
        const x = info.get(sg) || {};
        wrap.append(trendChart({ width: widthOf(wrap), height: 190, start, end,
          series: [series.get(sg)], label: signalName(x, sg), yTitle: x.unit || '',
          xTitle: timeTitle(), onSelect: (a, b) => setRange(a, b, false) }));
      }
      return true;
    }

    async function loadKpi() {
      const span = (end - start) / 1e6;
      const bucket = Math.max(60, Math.ceil(span / 24 / 60) * 60);
      const [k, states] = await Promise.all([
        api(`${base}/machines/kpi`, { query: { machine: m.machine, start, end, bucket_s: bucket },
          signal: ctx.signal }),
        api(`${base}/states`, { query: { machine: m.machine, start, end }, signal: ctx.signal }),
      ]).catch((e) => {
        gotInfo([]); // the trends draw without names and units rather than wait forever
        throw e;
      });
      gotInfo(k.signals || []);
      if (!ctx.alive()) return;
      clear(kpiEl);
      const figs = card(t('machine.kpis'), 'machine-kpis', h('div', { class: 'figs' },
        bigFig(t('kpi.mtbf'), duration(k.mtbf_s), 'mtbf'),
        bigFig(t('kpi.mttr'), duration(k.mttr_s), 'mttr'),
        bigFig(t('kpi.mtta'), duration(k.mtta_s), 'mtta'),
        bigFig(t('kpi.failures'), num(k.failures), 'failures'),
        bigFig(t('kpi.kwh'), num(k.kwh, 1), 'kwh'),
        bigFig(t('kpi.kwhperpart'), num(k.kwh_per_part, 3), 'kwh-per-part')));
      const oeeCard = card(t('machine.oeetrend'), 'oee-trend');
      const lossCard = card(t('machine.losses'), 'machine-losses');
      kpiEl.append(figs, oeeCard, lossCard);
      oeeCard.append(trendChart({ width: widthOf(oeeCard) - 28, height: 170, start, end,
        series: [{ t: k.trend.map((x) => x.start + (bucket * 1e6) / 2), v: k.trend.map((x) => x.oee) }],
        label: t('machine.oeetrend'), yFmt: (v) => pct(v, 0), yTitle: t('kpi.oee'),
        xTitle: timeTitle() }));
      const wf = waterfall({ width: widthOf(lossCard) - 28, steps: lossSteps(k.waterfall),
        label: t('machine.losses'), fmt: (v) => t('unit.h', { n: num(v, 1) }) });
      wf.setAttribute('data-testid', 'waterfall');
      lossCard.append(wf);
      timeline.querySelector('svg')?.remove();
      timeline.querySelector('.legend')?.remove();
      const bars = states.start.map((s0, i) => ({ start: s0, end: states.end[i], state: states.state[i] }));
      timeline.append(gantt({ width: widthOf(timeline) - 28, start, end, rowH: 36,
        rows: [{ key: m.machine, label: shortId(m.machine), bars }], label: t('machine.timeline'),
        stateText: stateLabel }), stateLegend());
    }

    async function setRange(a, b, fol) {
      start = a;
      end = b;
      follow = fol;
      try {
        const [ok] = await Promise.all([loadTrends(), loadKpi()]);
        if (ok) ctx.ready();
      } catch (e) {
        if (e.name !== 'AbortError') ctx.toast(t('error.load'), 'error');
        ctx.ready();
      }
    }
    await Promise.all([loadTrends(), loadKpi()]);
    ctx.ready();
    ctx.every(15000, async () => {
      if (!follow) return;
      const now = await serverNow(ctx);
      const span = end - start;
      start = now - span;
      end = now;
      await loadTrends().catch(() => {});
    });
  },
};
