// Shift report of one line, to print at the end of a shift (A4 portrait) or read on screen:
// the shift's OEE with availability, performance and quality, good output against the
// line's target, the loss waterfall, the top stops (Pareto), the alarms of the shift and each
// machine's figures. `#/report?line=<line>&shift=<current|previous|µs>` (also
// `#/report/<line>?shift=…`): `current` is the shift under way up to now, `previous` the one
// before it, a number the shift that contains that instant, up to it. Every figure comes from
// the same endpoints as the line page, for the shift's range (`/kpi/ranges`).

import { api } from '../api.js';
import { h, raw } from '../dom.js';
import { pareto, waterfall } from '../charts.js';
import { dateTime, duration, num, pct, t, tMaybe } from '../i18n.js';
import {
  bigFig, card, lineName, lossSteps, machineLabel, picker, serverNow, shortId,
} from './common.js';
import { paretoRows } from './line.js';

/** Chart width in CSS px: fits the printable width of A4 portrait (210 mm less 2 × 12 mm
 * margins = 186 mm ≈ 703 px at 96 px/in), the same on screen so the page previews the print. */
export const PRINT_W = 680;
const TOP_STOPS = 8;

/** The shift range for the `shift` parameter: [start, end, label]. */
async function shiftRange(base, shift, now, signal) {
  const at = /^\d+$/.test(shift || '') ? Math.min(now, Number(shift)) : now;
  let r = (await api(`${base}/kpi/ranges`, { query: { at }, signal })).shift;
  if (shift === 'previous') {
    r = (await api(`${base}/kpi/ranges`, { query: { at: r.start - 1 }, signal })).shift;
  }
  return r;
}

function alertRows(alerts, line, start, end) {
  return alerts
    .filter((a) => a.machine && a.machine.startsWith(`${line}/`) && a.opened_at < end
      && (a.closed_at === null || a.closed_at > start))
    .sort((a, b) => a.opened_at - b.opened_at);
}

export default {
  async render(root, params, ctx) {
    const st = await ctx.structure();
    const line = st.lines.find((l) => l.line === (params.get('line') || st.lines[0]?.line));
    if (!line) {
      root.append(h('p', { class: 'error', 'data-testid': 'page-error' }, t('line.unknown')));
      return ctx.ready();
    }
    const base = `/sites/${encodeURIComponent(ctx.site.id)}`;
    const shift = params.get('shift') || 'current';
    const now = await serverNow(ctx);
    const r = await shiftRange(base, shift, now, ctx.signal);
    const { start, end } = r;
    const q = { line: line.line, start, end };
    const [kpi, dt, tree, alerts, targets] = await Promise.all([
      api(`${base}/lines/kpi`, { query: q, signal: ctx.signal }),
      api(`${base}/kpi/downtime`, { query: q, signal: ctx.signal }),
      ctx.reasonTree().catch(() => null),
      api(`${base}/alerts`, { query: { status: 'all', limit: 1000 }, signal: ctx.signal })
        .catch(() => []),
      api(`${base}/targets`, { signal: ctx.signal }).catch(() => []),
    ]);
    if (!ctx.alive()) return;
    root.dataset.start = start;
    root.dataset.end = end;
    root.dataset.line = line.line;

    const nav = h('div', { class: 'toolbar no-print' },
      picker('report-line', t('line.pick'), st.lines.map((l) => ({ value: l.line,
        label: lineName(l) })), line.line, (v) => ctx.go('report', { line: v, shift })),
      h('a', { class: 'btn', 'data-testid': 'report-previous',
        href: `#/report?${new URLSearchParams({ line: line.line, shift: String(start - 1) })}` },
      t('report.previous')),
      h('a', { class: 'btn', 'data-testid': 'report-current',
        href: `#/report?${new URLSearchParams({ line: line.line, shift: 'current' })}` },
      t('report.current')),
      h('button', { type: 'button', class: 'btn btn-primary', 'data-testid': 'report-print',
        onclick: () => window.print() }, t('report.print')));

    const under = end >= now - 1e6 && shift !== 'previous' && !/^\d+$/.test(shift);
    const head = h('header', { class: 'report-head' },
      h('h1', null, t('report.title'), ' · ', raw(lineName(line))),
      h('p', { 'data-testid': 'report-shift' }, raw(r.label), ' · ', dateTime(start), ' – ',
        dateTime(end), under ? ` (${t('report.underway')})` : ''),
      h('p', { class: 'muted' }, t('report.printed', { t: dateTime(now) })));

    // figures: OEE and its factors, output against the target (per hour × planned time)
    const target = targets.find((x) => x.line === line.line);
    let plan = null;
    if (target?.per_hour && kpi.planned_production_s !== undefined) {
      plan = (target.per_hour * kpi.planned_production_s) / 3600;
    } else if (target?.per_shift) plan = target.per_shift;
    const figs = card(t('report.figures'), 'report-figures', h('div', { class: 'figs' },
      bigFig(t('kpi.oee'), pct(kpi.oee.oee), 'report-oee'),
      bigFig(t('kpi.availability'), pct(kpi.oee.availability), 'report-availability'),
      bigFig(t('kpi.performance'), pct(kpi.oee.performance), 'report-performance'),
      bigFig(t('kpi.quality'), pct(kpi.oee.quality), 'report-quality'),
      bigFig(t('report.output'), num(kpi.good_out), 'report-output'),
      plan === null ? null : bigFig(t('report.plan'), num(plan), 'report-plan'),
      kpi.throughput_per_h === null || kpi.throughput_per_h === undefined ? null
        : bigFig(t('board.throughput'), t('unit.perh', { n: num(kpi.throughput_per_h, 1) }),
          'report-rate')));

    const wf = waterfall({ width: PRINT_W, steps: lossSteps(kpi.waterfall),
      label: t('line.waterfall'), fmt: (v) => t('unit.h', { n: num(v, 2) }) });
    wf.setAttribute('data-testid', 'waterfall');
    const losses = card(t('line.waterfall'), 'report-losses', wf);

    const rows = paretoRows(dt, tree).slice(0, TOP_STOPS);
    const stops = card(t('report.topstops'), 'report-pareto', rows.length
      ? pareto({ width: PRINT_W, rows, label: t('line.pareto'), barH: 22 })
      : h('p', { class: 'muted' }, t('line.nostops')));

    const mine = alertRows(alerts, line.line, start, end);
    const alarmTable = mine.length ? h('table', { class: 'data', 'data-testid': 'report-alarms' },
      h('thead', null, h('tr', null, h('th', null, t('report.opened')),
        h('th', null, t('report.closed')), h('th', null, t('machine.pick')),
        h('th', null, t('report.alarm')), h('th', null, t('report.ackedby')))),
      h('tbody', null, mine.map((a) => h('tr', { 'data-testid': 'report-alarm', 'data-alert': a.id },
        h('td', null, dateTime(a.opened_at)),
        h('td', null, a.closed_at === null ? t('report.stillopen') : dateTime(a.closed_at)),
        h('td', null, raw(shortId(a.machine))),
        h('td', null, tMaybe(`alert.kind.${a.kind}`, { machine: shortId(a.machine) })
          || raw(a.message)),
        h('td', null, a.acked_by ? raw(ctx.who(a.acked_by)) : '–')))))
      : h('p', { class: 'muted', 'data-testid': 'report-noalarms' }, t('report.noalarms'));
    const alarms = card(t('report.alarms'), 'report-alarms-card', alarmTable);

    const byMachine = new Map(st.machines.map((m) => [m.machine, m]));
    const machines = card(t('report.machines'), 'report-machines', h('table', { class: 'data' },
      h('thead', null, h('tr', null, h('th', null, t('machine.pick')),
        h('th', { class: 'n' }, t('kpi.oee')), h('th', { class: 'n' }, t('kpi.availability')),
        h('th', { class: 'n' }, t('kpi.performance')), h('th', { class: 'n' }, t('kpi.quality')),
        h('th', { class: 'n' }, t('report.good')), h('th', { class: 'n' }, t('report.scrap')))),
      h('tbody', null, kpi.machines.map((m) => h('tr', { 'data-machine': m.machine },
        h('td', null, raw(machineLabel(byMachine.get(m.machine) || { machine: m.machine }))),
        h('td', { class: 'n' }, pct(m.oee)), h('td', { class: 'n' }, pct(m.availability)),
        h('td', { class: 'n' }, pct(m.performance)), h('td', { class: 'n' }, pct(m.quality)),
        h('td', { class: 'n' }, num(m.good)), h('td', { class: 'n' }, num(m.scrap)))))));

    root.classList.add('report');
    root.append(nav, head, figs, losses, stops, alarms, machines,
      h('p', { class: 'muted report-foot' }, t('report.downtime', {
        d: duration(dt.downtime_s), u: duration(dt.unexplained_s) })));
    ctx.ready();
  },
};
