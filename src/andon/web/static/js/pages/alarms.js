// The alarm console: machine alerts and signal alarms, active or past, filtered by state,
// machine and kind; acknowledge, shelve for a while with a reason (hidden from the board but
// counted) and unshelve; and the signal alarm limits, which an engineer may override.

import { api } from '../api.js';
import { clear, h, raw } from '../dom.js';
import { allowData, dataName, dateTime, num, t, tMaybe } from '../i18n.js';
import { machineLabel, picker, shortId } from './common.js';

const STATES = ['active', 'shelved', 'cleared', 'all'];
const KINDS = ['down', 'offline', 'unexplained_stop', 'high_high', 'high', 'low', 'low_low',
  'rate'];
const LIMIT_FIELDS = ['high_high', 'high', 'low', 'low_low', 'rate_per_min', 'deadband',
  'on_delay_s', 'off_delay_s'];
const SHELVE_S = [900, 3600, 4 * 3600, 8 * 3600, 24 * 3600];
const SINCE_H = { '': 0, '8h': 8, '24h': 24, '7d': 168 };

/** An alert's text in the page's language: the machine alerts' own words, a signal alarm's
 * kind and value against its limit in the signal's unit. */
export function alarmText(a, unit = '') {
  if (a.signal && a.value !== null && a.threshold !== null) {
    allowData(unit);
    return t(`alarm.kind.${a.kind}`, {
      value: num(a.value, Math.abs(a.value) < 100 ? 2 : 0),
      limit: num(a.threshold, Math.abs(a.threshold) < 100 ? 2 : 0),
      unit,
    });
  }
  return tMaybe(`alert.kind.${a.kind}`, { machine: a.machine ? shortId(a.machine) : '' })
    || a.message;
}

export default {
  async render(root, params, ctx) {
    const base = `/sites/${encodeURIComponent(ctx.site.id)}`;
    const st = await ctx.structure();
    let state = STATES.includes(params.get('state')) ? params.get('state') : 'active';
    let machine = st.machines.some((m) => m.machine === params.get('machine'))
      ? params.get('machine') : '';
    let kind = KINDS.includes(params.get('kind')) ? params.get('kind') : '';
    let since = params.get('since') in SINCE_H ? params.get('since') : '';

    const statePick = picker('alarms-state', t('alarms.state'),
      STATES.map((s) => ({ value: s, label: t(`alarms.state.${s}`) })), state,
      (v) => { state = v; load(); });
    statePick.removeAttribute('translate');
    const machinePick = picker('alarms-machine', t('alarms.machine'),
      [{ value: '', label: t('alarms.allmachines') },
        ...st.machines.map((x) => ({ value: x.machine, label: machineLabel(x) }))], machine,
      (v) => { machine = v; load(); });
    const kindPick = picker('alarms-kind', t('alarms.kind'),
      [{ value: '', label: t('alarms.allkinds') },
        ...KINDS.map((k) => ({ value: k, label: t(`alarms.kindname.${k}`) }))], kind,
      (v) => { kind = v; load(); });
    kindPick.removeAttribute('translate');
    const sincePick = picker('alarms-since', t('alarms.since'),
      Object.keys(SINCE_H).map((k) => ({ value: k, label: t(`alarms.since.${k || 'any'}`) })),
      since, (v) => { since = v; load(); });
    sincePick.removeAttribute('translate');
    const shelvedCount = h('span', { class: 'muted', 'data-testid': 'alarms-shelved' });
    const list = h('tbody', { 'aria-live': 'polite' });
    const table = h('table', { class: 'data', 'data-testid': 'alarms-table' },
      h('thead', null, h('tr', null,
        ['alarms.severity', 'alarms.source', 'alarms.what', 'alarms.opened', 'alarms.cleared',
          'alarms.acked', 'alarms.shelved', ''].map((k) => h('th', null, k ? t(k) : '')))),
      list);
    const empty = h('p', { class: 'muted', 'data-testid': 'alarms-empty', hidden: true },
      t('alarms.none'));
    const limitsBody = h('tbody');
    const limits = h('section', { class: 'card', 'data-testid': 'alarm-limits' },
      h('h2', null, t('alarms.limits')),
      h('table', { class: 'data' }, h('thead', null, h('tr', null,
        h('th', null, t('alarms.signal')), h('th', null, t('alarms.from')),
        LIMIT_FIELDS.map((f) => h('th', { class: 'n' }, t(`alarms.field.${f}`))),
        h('th', null, ''))),
      limitsBody));
    root.append(h('div', { class: 'page-head' }, h('h1', null, t('nav.alarms')), statePick,
      machinePick, kindPick, sincePick, shelvedCount),
    h('section', { class: 'card' }, table, empty), limits);

    function source(a) {
      const m = a.machine ? st.machines.find((x) => x.machine === a.machine) : null;
      const label = a.signal ? shortId(a.signal) : shortId(a.machine);
      const owner = a.signal && a.machine ? `${shortId(a.machine)} · ` : '';
      allowData(a.signal, a.machine, label);
      return raw(`${owner}${label}`, 'span', { title: m ? dataName(m) || label : label });
    }

    function shelveForm(a, cell) {
      const dur = h('select', { class: 'select', 'data-testid': 'shelve-duration',
        'aria-label': t('alarms.duration') },
      SHELVE_S.map((s) => h('option', { value: String(s) }, t('alarms.for', {
        d: s >= 3600 ? t('dur.hm', { h: s / 3600, m: '00' }) : t('dur.ms', { m: s / 60, s: '00' }),
      }))));
      dur.value = '3600';
      const why = h('input', { class: 'input', 'data-testid': 'shelve-reason', maxlength: 500,
        'aria-label': t('alarms.reason'), placeholder: t('alarms.reason') });
      const ok = h('button', { type: 'button', class: 'btn btn-small',
        'data-testid': 'shelve-confirm' }, t('alarms.shelve'));
      ok.addEventListener('click', async () => {
        if (!why.value.trim()) {
          why.focus();
          ctx.toast(t('alarms.needreason'), 'error');
          return;
        }
        ok.disabled = true;
        try {
          await api(`${base}/alerts/${encodeURIComponent(a.id)}/shelve`, { method: 'POST',
            body: { duration_s: Number(dur.value), reason: why.value.trim() } });
          load();
        } catch {
          ok.disabled = false;
          ctx.toast(t('error.save'), 'error');
        }
      });
      clear(cell).append(h('div', { class: 'toolbar' }, dur, why, ok));
      why.focus();
    }

    async function act(path) {
      try {
        await api(path, { method: 'POST' });
        load();
      } catch {
        ctx.toast(t('error.save'), 'error');
      }
    }

    function row(a, now) {
      const shelved = a.shelved_until && a.shelved_until > now;
      const actions = h('td', { class: 'actions' });
      if (ctx.can('alert:ack')) {
        if (!a.acked_at) {
          const b = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'alarm-ack' },
            t('board.ack'));
          b.addEventListener('click', () => act(`${base}/alerts/${encodeURIComponent(a.id)}/ack`));
          actions.append(b);
        }
        if (shelved) {
          const b = h('button', { type: 'button', class: 'btn btn-small',
            'data-testid': 'alarm-unshelve' }, t('alarms.unshelve'));
          b.addEventListener('click', () => act(`${base}/alerts/${encodeURIComponent(a.id)}/unshelve`));
          actions.append(b);
        } else if (!a.closed_at) {
          const b = h('button', { type: 'button', class: 'btn btn-small',
            'data-testid': 'alarm-shelve' }, t('alarms.shelve'));
          b.addEventListener('click', () => shelveForm(a, actions));
          actions.append(b);
        }
      }
      return h('tr', { class: `alarm-row sev-${a.severity}`, 'data-testid': 'alarm-row',
        'data-alert': a.id, 'data-kind': a.kind, 'data-signal': a.signal || '',
        'data-acked': a.acked_at ? '1' : '0', 'data-shelved': shelved ? '1' : '0',
        'data-closed': a.closed_at ? '1' : '0' },
      h('td', null, h('span', { class: 'sev' }, tMaybe(`severity.${a.severity}`) || raw(a.severity))),
      h('td', null, source(a)),
      h('td', { 'data-testid': 'alarm-text' }, alarmText(a, units.get(a.signal))),
      h('td', null, dateTime(a.opened_at)),
      h('td', null, a.closed_at ? dateTime(a.closed_at) : '–'),
      h('td', null, a.acked_at ? [raw(ctx.who(a.acked_by)), ' · ', dateTime(a.acked_at)] : '–'),
      h('td', { 'data-testid': 'alarm-shelf' }, shelved
        ? [t('alarms.until', { t: dateTime(a.shelved_until) }), ' · ', raw(a.shelve_reason || '')]
        : '–'),
      actions);
    }

    const units = new Map();
    let seq = 0;
    async function load() {
      const mine = ++seq;
      const query = { state, limit: 200 };
      if (machine) query.machine = machine;
      if (kind) query.kind = kind;
      const b = await ctx.structure();
      const now = Math.round(b.now + (Date.now() * 1000 - b.fetchedAt) * b.rate);
      if (SINCE_H[since]) query.start = Math.max(0, now - SINCE_H[since] * 3600e6);
      const got = await api(`${base}/alarms`, { query, signal: ctx.signal });
      if (mine !== seq || !ctx.alive()) return;
      clear(list).append(...got.alarms.map((a) => row(a, now)));
      empty.hidden = got.alarms.length > 0;
      shelvedCount.textContent = t('alarms.shelvedcount', { n: num(got.shelved) });
      ctx.ready();
    }

    function limitRow(x) {
      allowData(x.signal, x.unit);
      const cells = LIMIT_FIELDS.map((f) => h('td', { class: 'n', 'data-field': f },
        x.alarms[f] === undefined ? '–'
          : num(x.alarms[f], Number.isInteger(x.alarms[f]) ? 0 : 2)));
      const tr = h('tr', { 'data-testid': 'limit-row', 'data-signal': x.signal,
        'data-source': x.source },
      h('td', null, raw(x.signal.split('/').slice(-2).join('/'), 'span', { title: x.signal }),
        x.unit ? raw(` (${x.unit})`, 'span', { class: 'muted' }) : null),
      h('td', null, t(`alarms.source.${x.source}`)), ...cells, h('td', { class: 'actions' }));
      if (!ctx.can('site:write')) return tr;
      const edit = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'limit-edit' },
        t('alarms.edit'));
      edit.addEventListener('click', () => editLimits(x, tr));
      tr.lastChild.append(edit);
      if (x.source === 'engineer') {
        const back = h('button', { type: 'button', class: 'btn btn-small',
          'data-testid': 'limit-reset' }, t('alarms.reset'));
        back.addEventListener('click', () => saveLimits(x.signal, null));
        tr.lastChild.append(back);
      }
      return tr;
    }

    function editLimits(x, tr) {
      const inputs = {};
      LIMIT_FIELDS.forEach((f, i) => {
        const inp = h('input', { class: 'input input-num', type: 'number', step: 'any',
          'data-testid': `limit-${f}`, 'aria-label': t(`alarms.field.${f}`),
          value: x.alarms[f] === undefined ? '' : String(x.alarms[f]) });
        inputs[f] = inp;
        clear(tr.children[i + 2]).append(inp);
      });
      const save = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'limit-save' },
        t('alarms.save'));
      save.addEventListener('click', () => {
        const body = {};
        for (const [f, inp] of Object.entries(inputs)) {
          if (inp.value !== '') body[f] = Number(inp.value);
        }
        saveLimits(x.signal, body);
      });
      clear(tr.lastChild).append(save);
    }

    async function saveLimits(signal, alarms) {
      try {
        await api(`${base}/alarms/limits`, { method: 'PUT', body: { signal, alarms } });
        loadLimits();
      } catch (e) {
        const d = e && Array.isArray(e.detail) && e.detail[0];
        ctx.toast(d ? `${t('error.save')}: ${d.msg}` : t('error.save'), 'error');
        loadLimits(); // the limits in force again, not the refused edit
      }
    }

    async function loadLimits() {
      const got = await api(`${base}/alarms/limits`, { signal: ctx.signal });
      if (!ctx.alive()) return;
      for (const x of got) units.set(x.signal, x.unit);
      clear(limitsBody).append(...got.map(limitRow));
    }

    await loadLimits();
    await load();
    ctx.every(5000, () => load().catch(() => {}));
  },
};
