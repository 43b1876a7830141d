// Kiosk mode: the board for a TV across the room. Full screen, no navigation; one panel per
// line with big OEE, good parts and plan versus actual for the current shift, and a tile per
// machine whose colour, icon and text give its state. Sizes follow the viewport (kiosk.css),
// so the same page fills 1920x1080 and 3840x2160.
//
// Credentials: a board device's key (kept in localStorage, so a reboot does not log the TV
// out; it reads this site's kiosk and nothing else), or the signed-in user's session. A user
// who may manage boards opens the settings: line targets, and board devices (register, pair,
// revoke). Data: GET /kiosk every 15 s (figures) and the kiosk feed (states, alerts) live.

import { api, ApiError, stream } from '../api.js';
import { clear, h, raw, setAttr, setText } from '../dom.js';
import { setStateIcon, stateIcon } from '../icons.js';
import { allowData, duration, num, pct, stateLabel, t, time, tMaybe } from '../i18n.js';

const DEVICE_KEY = 'andon.kiosk';
const REFRESH_MS = 15000;

function shortId(path) {
  return path.split('/').pop();
}

/** The paired device of this browser: {site, key, name} or null. */
export function device() {
  try {
    const d = JSON.parse(localStorage.getItem(DEVICE_KEY) || 'null');
    return d && typeof d.site === 'string' && typeof d.key === 'string' ? d : null;
  } catch {
    return null;
  }
}

/** A pairing code is `<site id>.<device key>`; the key itself has no dot. */
export function parsePairing(code) {
  const s = String(code || '').trim();
  const cut = s.indexOf('.');
  if (cut <= 0) return null;
  const site = s.slice(0, cut);
  const key = s.slice(cut + 1);
  if (!/^[0-9a-f]{32}$/.test(site) || !/^andon_[0-9a-f]{32}_[A-Za-z0-9_-]+$/.test(key)) return null;
  return { site, key };
}

function pair(code, name) {
  const p = parsePairing(code);
  if (!p) return false;
  localStorage.setItem(DEVICE_KEY, JSON.stringify({ ...p, name: name || '' }));
  return true;
}

function unpair() {
  localStorage.removeItem(DEVICE_KEY);
}

function pairingLink(code, line) {
  const q = new URLSearchParams({ pair: code });
  if (line) q.set('line', line);
  return `${location.origin}${location.pathname}#/kiosk?${q}`;
}

function renderPairing(root, ctx, why) {
  const input = h('input', { class: 'input kiosk-pair-input', 'data-testid': 'kiosk-pair-code',
    autocomplete: 'off', spellcheck: 'false', 'aria-label': t('kiosk.pair.code') });
  const err = h('p', { class: 'error', role: 'alert', hidden: true }, t('kiosk.pair.bad'));
  const form = h('form', { class: 'kiosk-pair card', 'data-testid': 'kiosk-pair' },
    h('h1', null, t('kiosk.pair.title')),
    why ? h('p', { class: 'kiosk-why', 'data-testid': 'kiosk-why' }, t(why)) : null,
    h('p', { class: 'muted' }, t('kiosk.pair.body')),
    h('label', null, h('span', null, t('kiosk.pair.code')), input),
    err,
    h('div', { class: 'kiosk-pair-actions' },
      h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'kiosk-pair-go' },
        t('kiosk.pair.go')),
      h('a', { href: '#/board', class: 'btn btn-ghost' }, t('kiosk.pair.signin'))));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (!pair(input.value)) {
      err.hidden = false;
      return;
    }
    ctx.restart();
  });
  root.append(h('div', { class: 'kiosk-center' }, form));
  ctx.ready();
}

export default {
  async render(root, params, ctx) {
    root.classList.add('kiosk');
    // a pairing link: keep the credential, then drop it from the address bar and history
    const code = params.get('pair');
    if (code) {
      const ok = pair(code);
      const q = new URLSearchParams(params);
      q.delete('pair');
      const rest = q.toString();
      history.replaceState(null, '', `#/kiosk${rest ? `?${rest}` : ''}`);
      if (!ok) return renderPairing(root, ctx, 'kiosk.pair.bad');
    }
    const dev = device();
    if (ctx.why && !dev) return renderPairing(root, ctx, ctx.why);
    const token = dev ? dev.key : undefined;
    const siteId = dev ? dev.site : ctx.site && ctx.site.id;
    if (!siteId) return renderPairing(root, ctx, null);
    const line = params.get('line') || undefined;
    const base = `/sites/${encodeURIComponent(siteId)}`;
    const get = (path, opts = {}) => api(base + path, { ...opts, token, signal: ctx.signal });

    let first;
    try {
      first = await get('/kiosk', { query: { line } });
      if (ctx.zone) ctx.zone(first.timezone);
    } catch (e) {
      if (e instanceof ApiError && dev && (e.status === 401 || e.status === 404)) {
        unpair(); // revoked, expired or its site deleted: this screen must be paired again
        return renderPairing(root, ctx, 'kiosk.revoked');
      }
      throw e;
    }

    // ---- layout ------------------------------------------------------------------------
    let clock = { now: first.board.now, at: Date.now() * 1000, rate: 1 };
    const nowUs = () => clock.now + (Date.now() * 1000 - clock.at) * clock.rate;
    const clockEl = h('span', { class: 'kiosk-clock', 'data-testid': 'kiosk-clock' });
    const shiftEl = h('span', { class: 'kiosk-shift', 'data-testid': 'kiosk-shift' });
    const conn = h('span', { class: 'kiosk-conn', 'data-testid': 'kiosk-conn',
      'data-status': 'connecting', role: 'status', title: t('conn.connecting') });
    const alertsEl = h('div', { class: 'kiosk-alerts', 'data-testid': 'kiosk-alerts',
      'aria-live': 'polite' });
    const linesEl = h('div', { class: 'kiosk-lines', 'data-testid': 'kiosk-lines' });
    const tools = h('span', { class: 'kiosk-tools' });
    allowData(first.site);
    const siteName = first.site;
    root.append(
      h('header', { class: 'kiosk-head' },
        h('span', { class: 'kiosk-brand', translate: 'no' },
          h('span', { class: 'brand-mark', 'aria-hidden': 'true' }), 'andon'),
        raw(siteName, 'h1', { class: 'kiosk-site' }),
        shiftEl, clockEl, conn, tools),
      linesEl,
      alertsEl,
    );

    const panels = new Map(); // line path -> refs
    const tiles = new Map(); // machine path -> refs

    function makeTile(m) {
      const icon = stateIcon(m.state);
      const text = h('span', { class: 'ktile-state' });
      const since = h('span', { class: 'ktile-since', 'data-testid': 'kiosk-since' });
      const el = h('div', { class: 'ktile', 'data-testid': 'kiosk-tile', 'data-machine': m.machine },
        h('span', { class: 'ktile-top' }, icon,
          raw(shortId(m.machine), 'span', { class: 'ktile-id' })),
        text, since);
      const ref = { el, icon, text, since, state: null, sinceUs: 0 };
      tiles.set(m.machine, ref);
      return ref;
    }

    function patchState(ref, state, sinceUs) {
      if (ref.state !== state) {
        ref.state = state;
        ref.el.className = `ktile st-${state}`;
        setAttr(ref.el, 'data-state', state);
        setStateIcon(ref.icon, state);
        setText(ref.text, stateLabel(state));
      }
      if (sinceUs) ref.sinceUs = sinceUs;
    }

    function fig(label, testid) {
      const value = h('span', { class: 'kfig-value', 'data-testid': testid });
      const sub = h('span', { class: 'kfig-sub' });
      const el = h('div', { class: 'kfig' }, h('span', { class: 'kfig-label' }, label), value,
        sub);
      return { el, value, sub };
    }

    function makePanel(x) {
      const oee = fig(t('kpi.oee'), 'kiosk-oee');
      const good = fig(t('kiosk.good'), 'kiosk-actual');
      const plan = fig(t('kiosk.plan'), 'kiosk-plan');
      const bar = h('div', { class: 'kbar-fill' });
      const goal = h('div', { class: 'kbar-goal', hidden: true });
      const progress = h('div', { class: 'kbar', 'data-testid': 'kiosk-progress', role: 'img' },
        bar, goal);
      const grid = h('div', { class: 'ktiles' });
      const el = h('section', { class: 'kpanel', 'data-testid': 'kiosk-line', 'data-line': x.line },
        raw(x.name || shortId(x.line), 'h2', { class: 'kpanel-name' }),
        h('div', { class: 'kfigs' }, oee.el, good.el, plan.el),
        progress,
        grid);
      const ref = { el, oee, good, plan, bar, goal, progress, grid };
      panels.set(x.line, ref);
      return ref;
    }

    function patchPanel(ref, x) {
      const tgt = x.target;
      setText(ref.oee.value, pct(x.oee, 0));
      const oeeGoal = tgt && tgt.oee !== null && tgt.oee !== undefined;
      setText(ref.oee.sub, oeeGoal ? t('kiosk.goal', { v: pct(tgt.oee, 0) }) : '');
      setAttr(ref.oee.el, 'data-vs', !oeeGoal || x.oee === null ? ''
        : x.oee >= tgt.oee ? 'ahead' : 'behind');
      const s = x.shift;
      setText(ref.good.value, num(s.actual));
      setText(ref.good.sub, tMaybe(`kiosk.shiftname`, { name: s.shift.split(' ').slice(1).join(' ') })
        || '');
      const hasPlan = s.plan !== null && s.plan !== undefined;
      setText(ref.plan.value, hasPlan ? num(s.plan) : '–');
      const diff = hasPlan ? s.actual - s.plan : null;
      setText(ref.plan.sub, diff === null ? t('kiosk.notarget')
        : t(diff >= 0 ? 'kiosk.ahead' : 'kiosk.behind', { n: num(Math.abs(diff)) }));
      const vs = diff === null ? '' : diff >= 0 ? 'ahead' : 'behind';
      setAttr(ref.plan.el, 'data-vs', vs);
      setAttr(ref.good.el, 'data-vs', vs);
      // the bar: actual against the whole shift's plan; the goal mark is where plan is now
      const whole = s.per_hour ? (s.per_hour * s.planned_total_s) / 3600 : null;
      ref.goal.hidden = !whole;
      if (whole) {
        ref.bar.style.width = `${Math.min(100, (100 * s.actual) / whole)}%`;
        ref.goal.style.left = `${Math.min(100, (100 * s.plan) / whole)}%`;
        setAttr(ref.progress, 'aria-label', t('kiosk.progress', { actual: num(s.actual),
          plan: num(s.plan), whole: num(whole) }));
      } else {
        ref.bar.style.width = '0%';
      }
      setAttr(ref.progress, 'data-vs', vs);
    }

    function tick() {
      const now = nowUs();
      setText(clockEl, time(now));
      for (const ref of tiles.values()) {
        if (ref.sinceUs) setText(ref.since, duration(Math.max(0, now - ref.sinceUs) / 1e6));
      }
    }

    function renderAlerts(list) {
      clear(alertsEl);
      const open = list.filter((a) => !a.closed_at);
      alertsEl.hidden = open.length === 0;
      for (const a of open.slice(0, 4)) {
        const known = tMaybe(`alert.kind.${a.kind}`, { machine: a.machine ? shortId(a.machine) : '' });
        alertsEl.append(h('span', { class: `kalert sev-${a.severity}`, 'data-testid': 'kiosk-alert' },
          known ? h('span', null, known) : raw(a.message, 'span')));
      }
      if (open.length > 4) alertsEl.append(h('span', { class: 'kalert' }, `+${open.length - 4}`));
    }

    let openAlerts = new Map();
    function apply(k) {
      clock = { now: k.board.now, at: Date.now() * 1000, rate: k.board.clock_rate || 1 };
      allowData(...k.lines.map((x) => x.name), ...k.board.machines.map((m) => m.name));
      if (k.lines.length) {
        const s = k.lines[0].shift;
        const name = s.shift.split(' ').slice(1).join(' '); // the plant model's shift name
        allowData(name);
        setText(shiftEl, t('kiosk.shift', { name, from: time(s.start), to: time(s.end) }));
      }
      setAttr(linesEl, 'data-n', k.lines.length);
      for (const x of k.lines) {
        let ref = panels.get(x.line);
        if (!ref) {
          ref = makePanel(x);
          linesEl.append(ref.el);
        }
        patchPanel(ref, x);
      }
      for (const m of k.board.machines) {
        let ref = tiles.get(m.machine);
        if (!ref) {
          ref = makeTile(m);
          const p = panels.get(m.line);
          if (p) p.grid.append(ref.el);
        }
        if ((m.since ?? 0) >= ref.sinceUs) patchState(ref, m.state, m.since);
      }
      for (const ref of panels.values()) {
        setAttr(ref.grid, 'data-n', ref.grid.children.length);
      }
      openAlerts = new Map(k.board.alerts.map((a) => [a.id, a]));
      renderAlerts([...openAlerts.values()]);
      tick();
    }

    apply(first);
    if (!dev && ctx.can('board:manage')) tools.append(settingsButton(root, ctx, base, first));
    ctx.ready();
    ctx.every(1000, tick);
    ctx.every(REFRESH_MS, async () => {
      try {
        apply(await get('/kiosk', { query: { line } }));
      } catch (e) {
        if (e instanceof ApiError && dev && e.status === 401) {
          unpair();
          ctx.restart('kiosk.revoked');
        } else if (e.name !== 'AbortError') console.warn('kiosk refresh failed', e);
      }
    });

    // ---- live ----------------------------------------------------------------------------
    const status = (st) => {
      setAttr(conn, 'data-status', st);
      setAttr(conn, 'title', t(`conn.${st}`));
    };
    const onEvent = (name, data) => {
      if (name === 'states' && Array.isArray(data)) {
        for (const x of data) {
          const ref = tiles.get(x.machine);
          if (ref) patchState(ref, x.state, x.since);
        }
        tick();
      } else if (name === 'alerts' && Array.isArray(data)) {
        for (const a of data) {
          if (a.closed_at) openAlerts.delete(a.id);
          else openAlerts.set(a.id, a);
        }
        renderAlerts([...openAlerts.values()]);
      }
      status('live');
    };
    (async () => {
      let wait = 500;
      while (ctx.alive()) {
        status('connecting');
        try {
          const why = await stream(`${base}/kiosk/feed`, { line, interval_s: 1, max_ticks: 600 },
            onEvent, ctx.signal, token);
          if (why === 'credentials no longer valid' && dev) {
            // revoked (or expired): the next request says which; the refresh handles it
            try {
              await get('/kiosk', { query: { line } });
            } catch (e) {
              if (e instanceof ApiError && e.status === 401) {
                unpair();
                ctx.restart('kiosk.revoked');
                return;
              }
            }
          }
          wait = 500;
        } catch (e) {
          if (!ctx.alive()) break;
          if (e instanceof ApiError && dev && e.status === 401) {
            unpair();
            ctx.restart('kiosk.revoked');
            return;
          }
          status('offline');
          wait = Math.min(wait * 2, 15000);
        }
        if (!ctx.alive()) break;
        await new Promise((r) => setTimeout(r, wait));
      }
    })();
    ctx.onLeave(() => {
      panels.clear();
      tiles.clear();
    });
  },
};

// ---- settings (users who manage boards) ----------------------------------------------------

function settingsButton(root, ctx, base, k) {
  const btn = h('button', { type: 'button', class: 'btn btn-ghost kiosk-gear',
    'data-testid': 'kiosk-settings', 'aria-expanded': 'false' }, t('kiosk.settings'));
  let panel = null;
  btn.addEventListener('click', () => {
    if (panel) {
      panel.remove();
      panel = null;
      setAttr(btn, 'aria-expanded', 'false');
      return;
    }
    panel = settingsPanel(ctx, base, k);
    root.append(panel);
    setAttr(btn, 'aria-expanded', 'true');
  });
  return btn;
}

function settingsPanel(ctx, base, k) {
  const opts = { signal: ctx.signal };
  const targetsForm = h('form', { class: 'kset-targets', 'data-testid': 'kiosk-targets' });
  const head = h('div', { class: 'kset-row kset-headrow' },
    h('span', null, t('kiosk.line')), h('span', null, t('kiosk.target.oee')),
    h('span', null, t('kiosk.target.perhour')), h('span', null, t('kiosk.target.pershift')));
  targetsForm.append(head);
  const inputs = [];
  for (const x of k.lines) {
    const tg = x.target || {};
    const field = (name, value, step, label) => h('input', { class: 'input', type: 'number',
      min: '0', step, name, value: value ?? '', 'aria-label': `${x.name} ${label}`,
      'data-testid': `target-${name}`, 'data-line': x.line });
    const oee = field('oee', tg.oee !== null && tg.oee !== undefined ? Math.round(tg.oee * 1000) / 10
      : '', '0.1', t('kiosk.target.oee'));
    const ph = field('per_hour', tg.per_hour, '0.1', t('kiosk.target.perhour'));
    const ps = field('per_shift', tg.per_shift, '1', t('kiosk.target.pershift'));
    inputs.push({ line: x.line, oee, ph, ps });
    targetsForm.append(h('div', { class: 'kset-row' }, raw(x.name, 'span'), oee, ph, ps));
  }
  targetsForm.append(h('button', { type: 'submit', class: 'btn btn-primary',
    'data-testid': 'target-save' }, t('kiosk.target.save')));
  targetsForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const val = (el) => (el.value === '' ? null : Number(el.value));
    try {
      for (const r of inputs) {
        const oee = val(r.oee);
        await api(`${base}/targets`, { ...opts, method: 'PUT', body: {
          line: r.line, oee: oee === null ? null : oee / 100, per_hour: val(r.ph),
          per_shift: val(r.ps) } });
      }
      ctx.toast(t('kiosk.target.saved'));
      ctx.restart();
    } catch (err) {
      console.warn(err);
      ctx.toast(t('error.save'), 'error');
    }
  });

  const devList = h('ul', { class: 'kset-devices', 'data-testid': 'kiosk-devices' });
  const name = h('input', { class: 'input', 'data-testid': 'device-name', required: true,
    maxlength: '200', 'aria-label': t('kiosk.device.name'), placeholder: t('kiosk.device.name') });
  const made = h('div', { class: 'kset-made', hidden: true, 'data-testid': 'device-made' });
  const devForm = h('form', { class: 'kset-devform' }, name,
    h('button', { type: 'submit', class: 'btn', 'data-testid': 'device-add' },
      t('kiosk.device.add')));

  async function loadDevices() {
    const list = await api(`${base}/board-devices`, opts);
    clear(devList);
    for (const d of list) {
      const rev = d.revoked_at
        ? h('span', { class: 'muted' }, t('admin.revoked'))
        : h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'device-revoke',
          'data-device': d.id }, t('admin.revoke'));
      devList.append(h('li', { 'data-testid': 'device-row', 'data-device': d.id },
        raw(d.name, 'span'), rev));
    }
  }
  devList.addEventListener('click', async (e) => {
    const b = e.target.closest('[data-testid="device-revoke"]');
    if (!b) return;
    b.disabled = true;
    try {
      await api(`${base}/board-devices/${encodeURIComponent(b.dataset.device)}`,
        { ...opts, method: 'DELETE' });
      await loadDevices();
    } catch {
      b.disabled = false;
      ctx.toast(t('error.save'), 'error');
    }
  });
  devForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const r = await api(`${base}/board-devices`, { ...opts, method: 'POST',
        body: { name: name.value } });
      const code = `${r.device.site_id}.${r.secret}`;
      const link = pairingLink(code);
      const here = h('button', { type: 'button', class: 'btn btn-primary',
        'data-testid': 'device-use-here' }, t('kiosk.device.usehere'));
      here.addEventListener('click', () => {
        pair(code, r.device.name);
        ctx.restart();
      });
      clear(made);
      made.append(
        h('p', null, t('kiosk.device.once')),
        h('code', { class: 'kset-code', 'data-testid': 'device-code', translate: 'no' }, code),
        h('p', null, h('a', { href: link, 'data-testid': 'device-link', translate: 'no' },
          t('kiosk.device.link'))),
        here);
      made.hidden = false;
      name.value = '';
      await loadDevices();
    } catch {
      ctx.toast(t('error.save'), 'error');
    }
  });
  loadDevices().catch(() => {});
  return h('aside', { class: 'kiosk-settings card', 'data-testid': 'kiosk-settings-panel' },
    h('h2', null, t('kiosk.targets')), targetsForm,
    h('h2', null, t('kiosk.devices')), devList, devForm, made);
}
