// The andon board: one tile per machine (state colour + icon + text), OEE, parts and a ticking
// time in state; lines with throughput and bottleneck; open alerts. The board is fetched once
// and then patched in place: live `states`/`alerts` events from the SSE stream, and a re-fetch
// every 15 s for OEE and parts. Tiles are created once per machine and reused, the clock is
// one interval for all tiles, and no listener is added per event.

import { api, stream } from '../api.js';
import { clear, h, raw, setAttr, setText } from '../dom.js';
import { setStateIcon, stateIcon, STATES } from '../icons.js';
import {
  allowData, dataName, dateTime, duration, num, pct, stateLabel, t, tMaybe,
} from '../i18n.js';

const REFRESH_MS = 15000;

function shortId(path) {
  return path.split('/').pop();
}

export function alertText(a) {
  if (a.signal && a.value !== null && a.value !== undefined && a.threshold !== null
    && a.threshold !== undefined) {
    const signal = shortId(a.signal);
    allowData(signal);
    const d = (x) => (Math.abs(x) < 100 ? 2 : 0);
    return tMaybe(`alarm.board.${a.kind}`, { signal, value: num(a.value, d(a.value)),
      limit: num(a.threshold, d(a.threshold)) });
  }
  return tMaybe(`alert.kind.${a.kind}`, { machine: a.machine ? shortId(a.machine) : '' });
}

export default {
  async render(root, _params, ctx) {
    const site = ctx.site;
    if (!site) return ctx.ready();
    const base = `/sites/${encodeURIComponent(site.id)}`;
    // the server's clock: `now` of the last board answer, advanced at its `clock_rate` (a
    // demo's plant clock runs 60x faster than the wall clock, and so must time in state)
    let clock = { now: Date.now() * 1000, at: Date.now() * 1000, rate: 1 };
    const nowUs = () => clock.now + (Date.now() * 1000 - clock.at) * clock.rate;
    const tiles = new Map(); // machine path -> refs
    const lineCards = new Map();
    const alertRows = new Map();

    const summary = h('div', { class: 'board-summary', 'data-testid': 'board-summary' });
    const counts = {};
    for (const st of STATES) {
      const n = h('span', { class: 'count-n' }, '0');
      counts[st] = n;
      summary.append(h('span', { class: `state-count st-${st}`, 'data-testid': 'state-count',
        'data-state': st }, stateIcon(st), h('span', null, stateLabel(st)), n));
    }
    const linesEl = h('div', { class: 'board-lines' });
    const alertList = h('ul', { class: 'alert-list' });
    const noAlerts = h('p', { class: 'muted' }, t('board.noalerts'));
    const shelvedNote = h('a', { class: 'muted', href: '#/alarms?state=shelved',
      'data-testid': 'board-shelved', hidden: true });
    const alertsPanel = h('aside', { class: 'alerts-panel card', 'data-testid': 'alerts-panel',
      'aria-labelledby': 'alerts-title' },
    h('h2', { id: 'alerts-title' }, t('board.alerts')), noAlerts, alertList, shelvedNote);
    root.append(
      h('div', { class: 'page-head' }, h('h1', null, t('nav.board'), ' · ', raw(site.name)),
        summary, h('a', { href: '#/kiosk', class: 'btn btn-ghost', 'data-testid': 'kiosk-link' },
          t('kiosk.link'))),
      h('div', { class: 'board-grid' }, linesEl, alertsPanel),
    );

    function makeTile(m) {
      const stateText = h('span', { class: 'tile-state-text' });
      const icon = stateIcon(m.state);
      const stateEl = h('span', { class: 'tile-state', 'data-testid': 'tile-state' }, icon,
        stateText);
      const oee = h('span', { class: 'tile-oee', 'data-testid': 'tile-oee' });
      const parts = h('span', { class: 'tile-parts', 'data-testid': 'tile-parts' });
      const since = h('span', { class: 'tile-since', 'data-testid': 'tile-since' });
      const alerts = h('span', { class: 'tile-alerts', 'data-testid': 'tile-alerts', hidden: true },
        '0');
      const el = h('a', { class: 'tile', 'data-testid': 'tile', 'data-machine': m.machine,
        href: `#/machine?machine=${encodeURIComponent(m.machine)}` },
      h('span', { class: 'tile-head' }, raw(shortId(m.machine), 'span', { class: 'tile-id' }),
        alerts),
      raw(dataName(m), 'span', { class: 'tile-name' }),
      stateEl,
      h('span', { class: 'tile-figs' },
        h('span', { class: 'fig' }, h('span', { class: 'fig-label' }, t('kpi.oee')), oee),
        h('span', { class: 'fig' }, h('span', { class: 'fig-label' }, t('kpi.parts')), parts)),
      since);
      const ref = { el, icon, stateText, oee, parts, since, alerts, state: null, sinceUs: 0,
        name: dataName(m), id: shortId(m.machine) };
      tiles.set(m.machine, ref);
      return ref;
    }

    function patchState(ref, state, sinceUs) {
      if (ref.state !== state) {
        ref.state = state;
        setAttr(ref.el, 'data-state', state);
        ref.el.className = `tile st-${state}`;
        setStateIcon(ref.icon, state);
        setText(ref.stateText, stateLabel(state));
      }
      if (sinceUs !== undefined && sinceUs !== null && ref.sinceUs !== sinceUs) {
        ref.sinceUs = sinceUs;
        setAttr(ref.since, 'data-since', sinceUs);
      }
    }

    function patchFigures(ref, m) {
      setText(ref.oee, pct(m.oee));
      setText(ref.parts, num(m.good));
      const a = m.alerts || 0;
      ref.alerts.hidden = a === 0;
      setText(ref.alerts, num(a));
      setAttr(ref.alerts, 'title', t('board.alertcount', { n: a }));
    }

    function tick() {
      const now = nowUs();
      for (const ref of tiles.values()) {
        if (ref.sinceUs) setText(ref.since, duration((now - ref.sinceUs) / 1e6));
      }
    }

    function recount() {
      const c = Object.fromEntries(STATES.map((s) => [s, 0]));
      for (const ref of tiles.values()) c[ref.state] = (c[ref.state] || 0) + 1;
      for (const s of STATES) setText(counts[s], num(c[s]));
    }

    function makeLine(l) {
      const thr = h('span', { 'data-testid': 'line-throughput', class: 'line-thr' });
      const bn = h('span', { 'data-testid': 'line-bottleneck', class: 'line-bn' });
      const grid = h('div', { class: 'tiles' });
      const el = h('section', { class: 'line-card card', 'data-testid': 'line-card',
        'data-line': l.line, 'aria-label': dataName(l) || shortId(l.line) },
      h('header', { class: 'line-head' },
        h('h2', null, h('a', { href: `#/line?line=${encodeURIComponent(l.line)}` },
          raw(dataName(l) || shortId(l.line)))),
        h('span', { class: 'line-meta' },
          h('span', null, t('board.throughput'), ' ', thr),
          h('span', null, t('board.bottleneck'), ' ', bn))),
      grid);
      const ref = { el, thr, bn, grid };
      lineCards.set(l.line, ref);
      return ref;
    }

    function patchLine(ref, l) {
      setText(ref.thr, l.throughput_per_h === null || l.throughput_per_h === undefined ? '–'
        : t('unit.perh', { n: num(l.throughput_per_h, 1) }));
      setAttr(ref.bn, 'data-machine', l.bottleneck || '');
      clear(ref.bn);
      ref.bn.append(l.bottleneck ? raw(shortId(l.bottleneck)) : document.createTextNode('–'));
    }

    function renderAlerts(list) {
      const open = list.filter((a) => !a.closed_at);
      const keep = new Set(open.map((a) => a.id));
      for (const [id, row] of alertRows) {
        if (!keep.has(id)) {
          row.remove();
          alertRows.delete(id);
        }
      }
      for (const a of open) upsertAlert(a);
      noAlerts.hidden = alertRows.size > 0;
    }

    function upsertAlert(a) {
      let row = alertRows.get(a.id);
      // shelved alerts leave the board (the alarm console lists them) until their end
      if (a.closed_at || (a.shelved_until && a.shelved_until > nowUs())) {
        if (row) row.remove();
        alertRows.delete(a.id);
        noAlerts.hidden = alertRows.size > 0;
        return;
      }
      if (row && row.dataset.acked === (a.acked_at ? '1' : '0')) return;
      const known = alertText(a);
      const text = known ? h('span', null, known) : raw(a.message, 'span');
      const ack = a.acked_at
        ? h('span', { class: 'muted' }, t('board.acked'))
        : ctx.can('alert:ack')
          ? h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'alert-ack',
            'data-alert': a.id }, t('board.ack'))
          : null;
      const fresh = h('li', { class: `alert-row sev-${a.severity}`, 'data-testid': 'alert-row',
        'data-alert': a.id, 'data-severity': a.severity, 'data-acked': a.acked_at ? '1' : '0' },
      h('span', { class: 'sev' }, tMaybe(`severity.${a.severity}`) || raw(a.severity)),
      a.machine ? raw(shortId(a.machine), 'span', { class: 'alert-m' }) : null,
      text,
      h('time', { class: 'muted' }, dateTime(a.opened_at)),
      ack);
      if (row) row.replaceWith(fresh);
      else alertList.prepend(fresh);
      alertRows.set(a.id, fresh);
      noAlerts.hidden = true;
    }

    alertList.addEventListener('click', async (e) => {
      const b = e.target.closest('[data-testid="alert-ack"]');
      if (!b) return;
      b.disabled = true;
      try {
        upsertAlert(await api(`${base}/alerts/${encodeURIComponent(b.dataset.alert)}/ack`,
          { method: 'POST' }));
      } catch {
        b.disabled = false;
        ctx.toast(t('error.save'), 'error');
      }
    });

    function apply(board, first) {
      clock = { now: board.now, at: Date.now() * 1000, rate: board.clock_rate || 1 };
      shelvedNote.hidden = !board.shelved_alerts;
      shelvedNote.textContent = t('board.shelved', { n: num(board.shelved_alerts || 0) });
      // a big plant fits one screen: smaller tiles, lines side by side
      root.classList.toggle('dense', board.machines.length > 30);
      allowData(...board.machines.map((m) => m.name), ...board.lines.map((l) => l.name));
      for (const l of board.lines) {
        let ref = lineCards.get(l.line);
        if (!ref) {
          ref = makeLine(l);
          linesEl.append(ref.el);
        }
        patchLine(ref, l);
      }

      const frag = new Map();
      for (const m of board.machines) {
        let ref = tiles.get(m.machine);
        if (!ref) {
          ref = makeTile(m);
          const lc = lineCards.get(m.line);
          if (lc) {
            if (!frag.has(lc)) frag.set(lc, document.createDocumentFragment());
            frag.get(lc).append(ref.el);
          } else {
            let other = lineCards.get('');
            if (!other) {
              other = makeLine({ line: '', name: t('board.other') });
              linesEl.append(other.el);
            }
            other.grid.append(ref.el);
          }
        }
        // a live event may be newer than this answer: keep whichever state began later
        if (first || (m.since ?? 0) >= ref.sinceUs) patchState(ref, m.state, m.since);
        patchFigures(ref, m);
      }
      for (const [lc, f] of frag) lc.grid.append(f);
      renderAlerts(board.alerts || []); // the full open set: authoritative over live deltas
      recount();
      tick();
    }

    apply(await ctx.board(ctx.signal), true);
    ctx.ready();
    ctx.every(1000, tick);
    ctx.every(REFRESH_MS, async () => {
      try {
        apply(await ctx.board(ctx.signal), false);
      } catch (e) {
        if (e.name !== 'AbortError') console.warn('board refresh failed', e);
      }
    });

    // ---- live ----------------------------------------------------------------------------
    const onEvent = (name, data) => {
      if (name === 'states' && Array.isArray(data)) {
        for (const x of data) {
          const ref = tiles.get(x.machine);
          if (!ref) continue;
          patchState(ref, x.state, x.since);
        }
        recount();
        tick();
      } else if (name === 'alerts' && Array.isArray(data)) {
        for (const a of data) upsertAlert(a);
      }
      ctx.live('live');
    };
    (async () => {
      let wait = 500;
      while (ctx.alive()) {
        ctx.live('connecting');
        try {
          await stream(`${base}/live`, { interval_s: 1, max_ticks: 600 }, onEvent, ctx.signal);
          wait = 500;
        } catch (e) {
          if (!ctx.alive()) break;
          ctx.live('offline');
          wait = Math.min(wait * 2, 15000);
        }
        if (!ctx.alive()) break;
        await new Promise((r) => setTimeout(r, wait));
      }
    })();
    ctx.onLeave(() => {
      ctx.live(null);
      tiles.clear();
      lineCards.clear();
      alertRows.clear();
    });
  },
};
