// Downtime reason entry for operators at a machine: the stops of the last day that need a
// reason (down, not micro-stops; filters for machine and kind), newest first; tap a
// category, then a reason (two taps, 56 px targets) and the entry is recorded with who and
// when (the server audits it). A machine is offered the generic reasons and its own failure
// modes only.

import { api } from '../api.js';
import { clear, h, raw } from '../dom.js';
import { dataName, dateTime, duration, stateLabel, t, time } from '../i18n.js';
import {
  categoryLabel, codeText, isDataLabel, machineLabel, picker, reasonLabel, reasonText, serverNow,
  shortId,
} from './common.js';

const LOOKBACK = 24 * 3600e6;
const MAX_ROWS = 60;
/** The kind filter: what needs a reason (default), then every kind of stop. */
const KINDS = {
  need: { kind: 'down', micro: 'false' },
  down: { kind: 'down' },
  idle: { kind: 'idle' },
  planned: { kind: 'planned' },
  all: {},
};

export default {
  async render(root, params, ctx) {
    const base = `/sites/${encodeURIComponent(ctx.site.id)}`;
    const mayWrite = ctx.can('reason:write');
    const st = await ctx.structure();
    const names = new Map(st.machines.map((m) => [m.machine, dataName(m)]));
    let onlyOpen = true;
    let kind = KINDS[params.get('kind')] ? params.get('kind') : 'need';
    let machine = names.has(params.get('machine')) ? params.get('machine') : '';
    const list = h('div', { class: 'stops', 'aria-live': 'polite' });
    const machinePick = picker('stops-machine', t('reasons.machine'),
      [{ value: '', label: t('reasons.allmachines') },
        ...st.machines.map((x) => ({ value: x.machine, label: machineLabel(x) }))], machine,
      (v) => { machine = v; load(); });
    const kindPick = picker('stops-kind', t('reasons.kind'), Object.keys(KINDS).map((k) => ({
      value: k, label: t(`stopkind.${k}`) })), kind, (v) => { kind = v; load(); });
    kindPick.removeAttribute('translate');
    const filter = h('button', { type: 'button', class: 'btn', 'data-testid': 'stops-filter',
      'aria-pressed': 'true' }, t('reasons.onlyopen'));
    filter.addEventListener('click', () => {
      onlyOpen = !onlyOpen;
      filter.setAttribute('aria-pressed', String(onlyOpen));
      load();
    });
    root.append(h('div', { class: 'page-head' }, h('h1', null, t('nav.reasons')), machinePick,
      kindPick, filter,
      mayWrite ? null : h('p', { class: 'muted' }, t('reasons.readonly'))), list);

    const tree = await ctx.reasonTree();
    if (!ctx.alive()) return;
    const labelOf = new Map();
    for (const c of tree.categories) {
      labelOf.set(c.id, categoryLabel(c.id, c.label));
      for (const r of c.reasons) {
        labelOf.set(`${c.id}/${r.id}`, reasonLabel(c.id, r.id, r.label, r.label_i18n));
      }
    }

    function entered(stop) {
      return h('p', { class: 'stop-entered', 'data-testid': 'stop-entered' },
        h('strong', null, reasonText(tree, stop.category, stop.reason)), ' · ',
        stop.entered_by
          ? [t('reasons.enteredby'), ' ', raw(ctx.who(stop.entered_by, stop.entered_by_name)),
            ' · ', dateTime(stop.entered_at)]
          : t('reasons.frommachine'));
    }

    function row(stop) {
      const explained = !!stop.reason && stop.category !== 'unexplained';
      const el = h('article', { class: 'card stop-row', 'data-testid': 'stop-row',
        'data-machine': stop.machine, 'data-start': stop.start, 'data-explained': explained ? '1' : '0',
        'aria-label': `${shortId(stop.machine)} ${time(stop.start)}` });
      const secs = (stop.end - stop.start) / 1e6;
      el.append(h('div', { class: 'stop-head' },
        h('strong', null, raw(shortId(stop.machine))), raw(names.get(stop.machine) || '', 'span', { class: 'muted' }),
        h('span', null, stateLabel(stop.state)),
        h('span', null, t('reasons.at', { t: dateTime(stop.start) })),
        h('span', null, t('reasons.lasted', { d: duration(secs) })),
        stop.code ? h('span', { class: 'muted', 'data-testid': 'stop-code' }, t('reasons.code'), ' ',
          codeText(tree, stop.code)) : null));
      if (explained) el.append(entered(stop));
      if (mayWrite) el.append(chooser(stop, el));
      return el;
    }

    function chooser(stop, el) {
      const box = h('div', { class: 'choice', role: 'group', 'aria-label': t('reasons.category') });
      const second = h('div', { class: 'choice', role: 'group', 'aria-label': t('reasons.reason'),
        hidden: true });
      const fits = (r) => !r.machines || r.machines.includes(stop.machine);
      for (const c of tree.categories) {
        const offered = c.reasons.filter(fits);
        if (!offered.length) continue;
        const b = h('button', { type: 'button', class: 'btn', 'data-testid': 'category-btn',
          'data-category': c.id, 'aria-pressed': 'false' }, labelOf.get(c.id));
        if (isDataLabel(c.id)) b.setAttribute('translate', 'no');
        b.addEventListener('click', () => {
          box.querySelectorAll('[aria-pressed]').forEach((x) => x.setAttribute('aria-pressed', String(x === b)));
          clear(second);
          for (const r of offered) {
            const rb = h('button', { type: 'button', class: 'btn', 'data-testid': 'reason-btn',
              'data-category': c.id, 'data-reason': r.id }, labelOf.get(`${c.id}/${r.id}`));
            if (isDataLabel(c.id, r.id)) rb.setAttribute('translate', 'no');
            rb.addEventListener('click', () => assign(stop, c.id, r.id, el, rb));
            second.append(rb);
          }
          second.hidden = false;
          second.querySelector('button')?.focus();
        });
        box.append(b);
      }
      return h('div', null, box, second);
    }

    async function assign(stop, category, reason, el, btn) {
      btn.disabled = true;
      try {
        const got = await api(`${base}/stops/reason`, { method: 'POST',
          body: { machine: stop.machine, start: stop.start, category, reason } });
        const fresh = row({ ...stop, ...got });
        el.replaceWith(fresh);
        ctx.toast(t('reasons.saved'));
        fresh.querySelector('[data-testid="stop-entered"]')?.setAttribute('tabindex', '-1');
      } catch (e) {
        btn.disabled = false;
        ctx.toast(e.status === 403 ? t('forbidden.title') : t('error.save'), 'error');
      }
    }

    let seq = 0;
    async function load() {
      const my = ++seq; // a filter changed again meanwhile: only the latest answer is shown
      root.dataset.ready = '0';
      const now = await serverNow(ctx);
      const got = await api(`${base}/stops`, { query: { start: now - LOOKBACK, end: now,
        unexplained: onlyOpen ? 'true' : undefined, machine: machine || undefined,
        ...KINDS[kind] }, signal: ctx.signal });
      if (my !== seq || !ctx.alive()) return;
      clear(list);
      const stops = got.stops.slice().sort((a, b) => b.start - a.start).slice(0, MAX_ROWS);
      if (!stops.length) list.append(h('p', { class: 'empty' }, t('reasons.none')));
      for (const s of stops) list.append(row(s));
      ctx.ready();
    }
    await load();
  },
};
