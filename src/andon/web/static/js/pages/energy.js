// Energy and carbon: consumption by machine and state, peak demand, kWh per part, tCO2e by
// month and the baseline (expected from the last weeks) against actual.

import { api } from '../api.js';
import { clear, h, raw } from '../dom.js';
import { columns, stackedRows, widthOf } from '../charts.js';
import { STATES } from '../icons.js';
import { allowData, dateTime, num, pct, stateLabel, t } from '../i18n.js';
import { bigFig, card, money, rangePicker, serverNow, shortId, siteRange, stateLegend } from './common.js';

function monthLabel(ym) {
  const [y, m] = ym.split('-').map(Number);
  return new Intl.DateTimeFormat(document.documentElement.lang || 'en', { year: '2-digit',
    month: 'short', timeZone: 'UTC' }).format(new Date(Date.UTC(y, m - 1, 15)));
}

export default {
  async render(root, params, ctx) {
    const base = `/sites/${encodeURIComponent(ctx.site.id)}`;
    let rangeName = params.get('range') || 'today';
    const body = h('div');
    root.append(h('div', { class: 'page-head' }, h('h1', null, t('nav.energy')),
      rangePicker(['today', '24h', '7d', '30d'], rangeName, (n) => {
        rangeName = n;
        load();
      })), body);

    async function load() {
      root.dataset.ready = '0';
      const now = await serverNow(ctx);
      const [start, end] = rangeName === '30d' ? [now - 30 * 86400e6, now] : await siteRange(ctx, rangeName, now);
      const e = await api(`${base}/energy`, { query: { start, end }, signal: ctx.signal });
      if (!ctx.alive()) return;
      clear(body);
      allowData(...e.by_machine.map((m) => m.machine));
      // one energy for the headline, emissions, cost, kWh per part and the months: the site
      // meters (base load included) where the site has them; the machines' total beside it
      const tot = e.total;
      const basis = t(`energy.basis.${tot.basis}`);
      if (tot.currency) allowData(tot.currency);
      const figs = h('div', { class: 'figs card', 'data-basis': tot.basis },
        bigFig(`${t('energy.total')} · ${basis}`, t('unit.kwh', { n: num(tot.kwh, 1) }), 'energy-total'),
        tot.basis === 'meters' ? bigFig(`${t('energy.total')} · ${t('energy.basis.machines')}`,
          t('unit.kwh', { n: num(tot.machines_kwh, 1) }), 'energy-machines') : null,
        bigFig(t('energy.cost'), tot.cost === null ? t('energy.nocost') : money(tot.cost, tot.currency),
          'energy-cost'),
        bigFig(e.peak_at ? t('energy.peak', { t: dateTime(e.peak_at) }) : t('energy.peaknone'), t('unit.kw', { n: num(e.peak_kw, 1) }),
          'peak-kw'),
        bigFig(t('energy.perpart', { n: num(tot.good_out) }), num(tot.kwh_per_part, 3), 'kwh-per-part-total'),
        bigFig(`${t('energy.co2')} · ${basis}`, tot.tco2e === null ? '–' : t('unit.tco2e', { n: num(tot.tco2e, 3) }),
          'co2-total'),
        bigFig(t('energy.grid'), e.grid ? t('unit.kgperkwh', { n: num(e.grid.factor_kg_per_kwh, 3) })
          : t('energy.nogrid')));
      const byCard = card(t('energy.bymachine'), 'energy-by-machine');
      const monthsCard = card(`${t('energy.months')} · ${basis}`, 'carbon-months');
      const baseCard = card(t('energy.baseline'), 'baseline');
      const table = h('table', { class: 'data', 'data-testid': 'kwh-per-part-table' },
        h('thead', null, h('tr', null, h('th', null, t('energy.machine')),
          h('th', { class: 'n' }, t('kpi.kwh')), h('th', { class: 'n' }, t('kpi.parts')),
          h('th', { class: 'n' }, t('kpi.kwhperpart')))),
        h('tbody', null, e.by_machine.map((m) => h('tr', { 'data-testid': 'kwh-row', 'data-machine': m.machine },
          h('td', null, raw(shortId(m.machine))), h('td', { class: 'n' }, num(m.kwh, 1)),
          h('td', { class: 'n' }, num(m.parts)), h('td', { class: 'n' }, num(m.kwh_per_part, 3))))));
      body.append(figs, h('div', { class: 'grid-2' }, byCard,
        h('div', null, monthsCard, baseCard)), card(t('kpi.kwhperpart'), 'kwh-per-part', table));

      const rows = e.by_machine.slice().sort((a, b) => b.kwh - a.kwh).map((m) => ({
        label: shortId(m.machine), text: t('unit.kwh', { n: num(m.kwh, 1) }),
        attrs: { 'data-testid': 'energy-row', 'data-machine': m.machine, 'data-kwh': m.kwh },
        parts: STATES.filter((s) => (m.by_state[s] || 0) > 0).map((s) => ({
          value: m.by_state[s], cls: `gantt-bar st-${s}`,
          title: `${stateLabel(s)} ${num(m.by_state[s], 1)}` })),
      }));
      byCard.append(stackedRows({ width: widthOf(byCard) - 28, rows, label: t('energy.bymachine') }),
        stateLegend());
      if (e.months.length) {
        monthsCard.append(columns({ width: widthOf(monthsCard) - 28, height: 180,
          label: t('energy.months'), fmt: (v) => num(v, 2),
          items: e.months.map((mo) => ({ label: monthLabel(mo.month),
            attrs: { 'data-testid': 'carbon-month', 'data-month': mo.month },
            parts: [{ value: mo.tco2e ?? 0, cls: 'bar', title: t('unit.tco2e', { n: num(mo.tco2e, 3) }) }] })) }));
      } else monthsCard.append(h('p', { class: 'muted' }, t('energy.nomonths')));
      if (e.baseline) {
        const d = e.baseline.actual_kwh / e.baseline.expected_kwh - 1;
        baseCard.append(h('div', { class: 'figs' },
          bigFig(t('energy.expected'), t('unit.kwh', { n: num(e.baseline.expected_kwh, 0) })),
          bigFig(t('energy.actual'), t('unit.kwh', { n: num(e.baseline.actual_kwh, 0) })),
          bigFig(t('energy.diff'), `${d > 0 ? '+' : ''}${pct(d, 1)}`)));
      } else baseCard.append(h('p', { class: 'muted' }, t('energy.nobaseline')));
      ctx.ready();
    }
    await load();
  },
};
