// The app shell: login gate, header (nav, site and language switchers, live status), hash
// router and the per-page context (abort signal, timers, permissions, site time zone).

import { api, loggedIn, logout, sessionEmail, whenLoggedOut } from './api.js';
import { clear, h, raw, setAttr } from './dom.js';
import {
  allowData, audit, getLang, getLanguages, initI18n, onLangChange, setLang, setZone, t,
} from './i18n.js';

// Page modules load on first visit (dynamic import): the board, the usual first page, does
// not wait for the twin or the charts of the line page. index.html preloads the board's.
const load = {
  login: () => import('./pages/login.js'),
  reset: () => import('./pages/reset.js'),
  forgot: () => import('./pages/forgot.js'),
  board: () => import('./pages/board.js'),
  line: () => import('./pages/line.js'),
  machine: () => import('./pages/machine.js'),
  reasons: () => import('./pages/reasons.js'),
  alarms: () => import('./pages/alarms.js'),
  findings: () => import('./pages/findings.js'),
  apps: () => import('./pages/apps.js'),
  energy: () => import('./pages/energy.js'),
  twin: () => import('./pages/twin.js'),
  admin: () => import('./pages/admin.js'),
  kiosk: () => import('./pages/kiosk.js'),
  report: () => import('./pages/report.js'),
};

/** Pages for whoever holds the link, signed in or not, without the shell: setting a new
 * password from a mailed reset link, and asking for one. */
const PUBLIC = new Set(['reset', 'forgot']);

const SITE_KEY = 'andon.site';
const PREFETCH_MAX_AGE_MS = 10000; // an older prefetched board is not shown as current
const ADMIN_PERMS = ['user:read', 'apikey:read', 'audit:read'];

const PAGES = {
  board: { nav: true },
  line: { nav: true },
  machine: { nav: true },
  reasons: { nav: true },
  alarms: { nav: true },
  findings: { nav: true },
  energy: { nav: true },
  twin: { nav: true },
  apps: { nav: true },
  admin: { nav: true, allowed: (c) => ADMIN_PERMS.some((p) => c.tenantWide(p)) },
  report: { nav: false }, // a line's shift report, linked from the line page
};

const state = {
  me: null,
  tenant: null,
  sites: [],
  site: null, // {id, key, name, timezone} as GET /sites gives it
  structure: null, // Promise of {lines:[{line,name,machines:[...]}], machines:[...], now, ...}
  tree: null, // Promise of the site's reason tree (changes only with the model)
  prefetch: null, // {site, board: Promise} started before the shell knew the site
  current: null, // {name, cleanup:[], abort}
};

const modules = new Map();

/** The default export of a page module, loaded once; a failed load is tried again later. */
function pageModule(name) {
  let p = modules.get(name);
  if (!p) {
    p = load[name]().then((m) => m.default);
    p.catch(() => modules.delete(name));
    modules.set(name, p);
  }
  return p;
}

const root = document.getElementById('app');
let shell = null;

// ---- permissions -------------------------------------------------------------------------

function tenantWide(p) {
  return !!state.me && state.me.tenant_wide.includes(p);
}

function can(p) {
  if (!state.me) return false;
  if (tenantWide(p)) return true;
  const here = state.site && state.me.per_site[state.site.id];
  return !!here && here.includes(p);
}

/** A principal as people know it: the server's name for it (``entered_by_name``) when given,
 * the signed-in user's own id as their email, else the id. */
function who(actor, name) {
  if (name) return name;
  if (!actor) return '–';
  const id = String(actor).replace(/^user:/, '');
  if (state.me && (id === state.me.id || actor === state.me.id) && sessionEmail()) {
    return sessionEmail();
  }
  return actor;
}

// ---- site --------------------------------------------------------------------------------

function useSite(site) {
  state.site = { ...site, timezone: site.timezone || 'UTC' };
  state.structure = null;
  state.tree = null;
  setZone(state.site.timezone);
  allowData(site.name, site.key);
  localStorage.setItem(SITE_KEY, site.id);
}

function structureOf(b) {
  const lines = b.lines.map((l) => ({ ...l, machines: [] }));
  const byLine = new Map(lines.map((l) => [l.line, l]));
  for (const m of b.machines) {
    allowData(m.machine, m.name, m.line, m.area);
    const l = byLine.get(m.line);
    if (l) l.machines.push(m);
  }
  for (const l of lines) allowData(l.line, l.name);
  // `now` is the server's clock (a demo's plant clock) at `fetchedAt` (client µs); it runs
  // `rate` times faster than the wall clock
  return { lines, machines: b.machines, now: b.now, rate: b.clock_rate || 1,
    fetchedAt: Date.now() * 1000 };
}

/** Lines and machines of the site, from the board (cached per site). */
function structure() {
  if (!state.structure) {
    const id = state.site.id;
    state.structure = api(`/sites/${encodeURIComponent(id)}/board`).then(structureOf);
    state.structure.catch(() => {
      state.structure = null;
    });
  }
  return state.structure;
}

/** The board answer for the current site: the one started at boot when it was for this site
 * (taken once), else a fresh request. Every board answer also refreshes the structure. */
function board(signal) {
  const id = state.site.id;
  const pre = state.prefetch;
  state.prefetch = null;
  const fresh = () => api(`/sites/${encodeURIComponent(id)}/board`, { signal });
  const usable = pre && pre.site === id && Date.now() - pre.at < PREFETCH_MAX_AGE_MS;
  const p = usable ? pre.board.catch(fresh) : fresh();
  return p.then((b) => {
    if (state.site && state.site.id === id) state.structure = Promise.resolve(structureOf(b));
    return b;
  });
}

/** The site's reason tree (cached per site: it changes only with the plant model; shared by
 * pages, so no page's abort signal cancels it). */
function reasonTree() {
  if (!state.tree) {
    state.tree = api(`/sites/${encodeURIComponent(state.site.id)}/reasons/tree`);
    state.tree.catch(() => {
      state.tree = null;
    });
  }
  return state.tree;
}

// ---- routing -----------------------------------------------------------------------------

function parseHash() {
  const hash = location.hash.replace(/^#\/?/, '');
  const [path, q] = hash.split('?');
  const params = new URLSearchParams(q || '');
  // `#/report/<line path>` is `#/report?line=<line path>`
  const [name, ...rest] = (path || '').split('/');
  if (name === 'report' && rest.length && !params.has('line')) {
    params.set('line', decodeURIComponent(rest.join('/')));
  }
  return { name: name || 'board', params };
}

export function go(name, params) {
  const q = params ? new URLSearchParams(params).toString() : '';
  const target = `#/${name}${q ? `?${q}` : ''}`;
  if (location.hash === target) route();
  else location.hash = target;
}

function leave() {
  const cur = state.current;
  if (!cur) return;
  cur.abort.abort();
  for (const fn of cur.cleanup) {
    try {
      fn();
    } catch (e) {
      console.error(e);
    }
  }
  state.current = null;
}

function pageRoot(name) {
  return h('section', { class: `page page-${name}`, 'data-page': name, 'data-ready': '0' });
}

function makeCtx(name, sec) {
  const abort = new AbortController();
  const cleanup = [];
  state.current = { name, cleanup, abort };
  return {
    signal: abort.signal,
    site: state.site,
    sites: state.sites,
    me: state.me,
    can,
    tenantWide,
    structure,
    board,
    reasonTree,
    go,
    toast,
    onLeave: (fn) => cleanup.push(fn),
    every(ms, fn) {
      const id = setInterval(fn, ms);
      cleanup.push(() => clearInterval(id));
      return id;
    },
    ready() {
      if (!abort.signal.aborted) setAttr(sec, 'data-ready', '1');
    },
    live: setLive,
    who,
    alive: () => !abort.signal.aborted,
  };
}

function fail(sec, err) {
  if (err && err.name === 'AbortError') return;
  console.error(err);
  sec.append(h('p', { class: 'error', 'data-testid': 'page-error', role: 'alert' },
    err && err.status === 403 ? t('forbidden.title') : t('error.load')));
  setAttr(sec, 'data-ready', '1');
}

async function route() {
  const { name, params } = parseHash();
  if (name === 'main') return; // skip link target, not a route
  leave();
  if (name === 'kiosk') {
    renderKiosk(params, null);
    return;
  }
  if (PUBLIC.has(name)) {
    renderPublic(name, params);
    return;
  }
  if (!loggedIn()) {
    renderLogin();
    return;
  }
  if (name === 'login') {
    location.replace('#/board');
    return;
  }
  const entry = PAGES[name];
  const mod = entry ? pageModule(name) : null; // loads while the shell starts
  mod?.catch(() => {});
  if (!shell) {
    try {
      await startShell();
    } catch (e) {
      console.error(e);
      renderLogin();
      return;
    }
    if (parseHash().name !== name) return; // the user moved on meanwhile: that route renders
  }
  const main = shell.main;
  clear(main);
  highlight(name);
  if (!entry) {
    const sec = pageRoot('notfound');
    sec.append(h('h1', null, t('notfound.title')));
    main.append(sec);
    setAttr(sec, 'data-ready', '1');
    return;
  }
  if (entry.allowed && !entry.allowed({ can, tenantWide })) {
    const sec = pageRoot('forbidden');
    sec.append(
      h('h1', { 'data-testid': 'forbidden' }, t('forbidden.title')),
      h('p', null, t('forbidden.body')),
    );
    main.append(sec);
    setAttr(sec, 'data-ready', '1');
    return;
  }
  const sec = pageRoot(name);
  main.append(sec);
  document.title = `${t(`nav.${name}`)} · andon`;
  const ctx = makeCtx(name, sec);
  try {
    const page = await mod;
    if (ctx.alive()) await page.render(sec, params, ctx);
  } catch (e) {
    if (ctx.alive()) fail(sec, e);
  }
}

// ---- kiosk -------------------------------------------------------------------------------

/** Kiosk mode: the page fills the screen, no shell. It runs on a paired board device's key
 * without any session, or on the signed-in user's session (then the session and the site
 * are loaded first, as the shell would). ``why``: a message for the pairing form. */
async function renderKiosk(params, why) {
  leave();
  shell = null;
  starting = null;
  clear(root);
  const sec = pageRoot('kiosk');
  root.append(h('main', { id: 'main', class: 'kiosk-main' }, sec));
  const mod = pageModule('kiosk');
  if (loggedIn() && !state.me) {
    try {
      const [me, sites, tenant] = await (boot || fetchSession());
      boot = null;
      Object.assign(state, { me, sites, tenant });
      const site = sites.find((x) => x.id === localStorage.getItem(SITE_KEY)) || sites[0];
      if (site) useSite(site);
    } catch (e) {
      console.error(e);
    }
  }
  if (parseHash().name !== 'kiosk') return;
  const ctx = makeCtx('kiosk', sec);
  ctx.site = state.site;
  ctx.why = why;
  ctx.restart = (reason) => renderKiosk(parseHash().params, reason || null);
  ctx.zone = setZone;
  try {
    const page = await mod;
    if (ctx.alive()) await page.render(sec, params, ctx);
  } catch (e) {
    if (ctx.alive()) fail(sec, e);
  }
}

// ---- login -------------------------------------------------------------------------------

function renderLogin() {
  shell = null;
  starting = null;
  setLive(null);
  clear(root);
  const sec = pageRoot('login');
  root.append(h('main', { id: 'main', class: 'login-main' }, sec));
  const ctx = makeCtx('login', sec);
  pageModule('login').then((login) => ctx.alive() && login.render(sec, new URLSearchParams(), {
    ...ctx,
    langSwitcher,
    async done() {
      const { name } = parseHash();
      if (name === 'login' || !name) location.hash = '#/board';
      else route();
    },
  })).catch((e) => ctx.alive() && fail(sec, e));
  // the hash stays as asked: after signing in, that page opens (deep links survive login)
}

function renderPublic(name, params) {
  shell = null;
  starting = null;
  setLive(null);
  clear(root);
  const sec = pageRoot(name);
  root.append(h('main', { id: 'main', class: 'login-main' }, sec));
  const ctx = makeCtx(name, sec);
  ctx.langSwitcher = langSwitcher;
  pageModule(name).then((page) => ctx.alive() && page.render(sec, params, ctx))
    .catch((e) => ctx.alive() && fail(sec, e));
}

// ---- shell -------------------------------------------------------------------------------

function langSwitcher() {
  const sel = h('select', { 'data-testid': 'lang-switcher', 'aria-label': t('shell.language'),
    class: 'select', translate: 'no' });
  for (const l of getLanguages()) sel.append(h('option', { value: l.code }, l.name));
  sel.value = getLang();
  sel.addEventListener('change', () => setLang(sel.value));
  return sel;
}

function prefetchBoard(id) {
  const board = api(`/sites/${encodeURIComponent(id)}/board`);
  board.catch(() => {});
  state.prefetch = { site: id, board, at: Date.now() };
}

/** Who the user is, the sites and the tenant, requested together. When the route shows the
 * board, the board of the site chosen last time is requested with them (a wrong guess costs
 * one request whose answer is dropped), or, on a first visit, as soon as the sites are known
 * (the shell does not need to wait for it). */
function fetchSession() {
  state.prefetch = null; // never an answer fetched for an earlier session
  const want = localStorage.getItem(SITE_KEY);
  const sites = api('/sites');
  if (parseHash().name === 'board') {
    if (want) prefetchBoard(want);
    else {
      sites.then((list) => {
        if (list.length && !state.prefetch && !state.site) prefetchBoard(list[0].id);
      }).catch(() => {});
    }
  }
  return Promise.all([api('/auth/me'), sites, api('/tenant').catch(() => null)]);
}

let boot = null; // the session requests started with the page, before i18n was ready
let starting = null;

function startShell() {
  if (!starting) {
    const session = boot || fetchSession();
    boot = null;
    starting = session.then(([me, sites, tenant]) => {
      state.me = me;
      state.sites = sites;
      state.tenant = tenant;
      allowData(me.tenant_id, tenant && tenant.name, sessionEmail());
      const want = localStorage.getItem(SITE_KEY);
      const site = sites.find((s) => s.id === want) || sites[0];
      if (site) useSite(site);
      if (state.prefetch && state.prefetch.site !== (site && site.id)) state.prefetch = null;
      buildShell();
    });
    starting.catch(() => {
      starting = null;
    });
  }
  return starting;
}

function buildShell() {
  clear(root);
  const nav = h('nav', { 'data-testid': 'nav', 'aria-label': t('shell.nav'), class: 'nav' });
  const links = {};
  for (const [name, e] of Object.entries(PAGES)) {
    if (!e.nav) continue;
    if (e.allowed && !e.allowed({ can, tenantWide })) continue;
    const a = h('a', { href: `#/${name}`, 'data-testid': 'nav-link', 'data-route': name,
      class: 'nav-link' }, h('span', { class: `icon icon-${name}`, 'aria-hidden': 'true' }),
    t(`nav.${name}`));
    links[name] = a;
    nav.append(a);
  }
  const siteSel = h('select', { 'data-testid': 'site-switcher', 'aria-label': t('shell.site'),
    class: 'select', translate: 'no' });
  for (const s of state.sites) siteSel.append(h('option', { value: s.id }, s.name));
  if (state.site) siteSel.value = state.site.id;
  siteSel.addEventListener('change', async () => {
    const s = state.sites.find((x) => x.id === siteSel.value);
    if (!s) return;
    leave();
    useSite(s);
    route();
  });
  const conn = h('span', { 'data-testid': 'conn-status', 'data-status': 'idle', class: 'conn',
    role: 'status', hidden: true }, h('span', { class: 'conn-dot', 'aria-hidden': 'true' }),
  h('span', { class: 'conn-text' }));
  const out = h('button', { type: 'button', class: 'btn btn-ghost', 'data-testid': 'logout' },
    t('shell.logout'));
  out.addEventListener('click', () => logout());
  const skip = h('a', { href: '#main', class: 'skip-link', 'data-testid': 'skip-link' },
    t('shell.skip'));
  const main = h('main', { id: 'main', tabindex: '-1' });
  skip.addEventListener('click', (e) => {
    e.preventDefault();
    main.focus();
  });
  const header = h('header', { class: 'topbar' },
    h('a', { class: 'brand', href: '#/board', translate: 'no' },
      h('span', { class: 'brand-mark', 'aria-hidden': 'true' }), 'andon'),
    nav,
    h('div', { class: 'topbar-tools' },
      h('label', { class: 'tool' }, h('span', { class: 'sr-only' }, t('shell.site')), siteSel),
      h('label', { class: 'tool' }, h('span', { class: 'sr-only' }, t('shell.language')),
        langSwitcher()),
      conn,
      h('span', { 'data-testid': 'user-menu', class: 'user', title: sessionEmail() || '' },
        h('span', { class: 'sr-only' }, t('shell.tenant')),
        raw(state.tenant ? state.tenant.name : state.me.tenant_id)),
      out));
  const toasts = h('div', { class: 'toasts', 'aria-live': 'polite', role: 'status' });
  root.append(skip, header, main, toasts);
  shell = { main, links, conn, toasts };
  if (!state.site) {
    main.append(h('p', { class: 'empty' }, t('shell.nosite')));
  }
}

function highlight(name) {
  if (!shell) return;
  for (const [n, a] of Object.entries(shell.links)) {
    if (n === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

function setLive(status) {
  if (!shell) return;
  // null: the page streams nothing, so there is no connection to report
  setAttr(shell.conn, 'data-status', status || 'idle');
  shell.conn.hidden = !status;
  if (status) shell.conn.querySelector('.conn-text').textContent = t(`conn.${status}`);
}

export function toast(text, kind = 'info') {
  if (!shell) return;
  const el = h('div', { class: `toast toast-${kind}`, 'data-testid': 'toast' }, text);
  shell.toasts.append(el);
  setTimeout(() => el.remove(), 5000);
}

// ---- start -------------------------------------------------------------------------------

window.andonI18nAudit = audit;
window.andonReady = () => new Promise((resolve) => {
  const check = () => {
    const p = document.querySelector('[data-page]');
    if (p && p.dataset.ready === '1') resolve(p.dataset.page);
    else requestAnimationFrame(check);
  };
  check();
});

// Translations, the session and the first page's module all load at once.
const first = parseHash().name;
if (loggedIn()) {
  boot = fetchSession();
  boot.catch(() => {});
}
pageModule(loggedIn() ? (PAGES[first] ? first : 'board') : 'login').catch(() => {});
const i18nReady = initI18n().catch((e) => console.error(e));

whenLoggedOut(() => {
  leave();
  state.me = null;
  i18nReady.then(() => renderLogin());
});

onLangChange(() => {
  if (PUBLIC.has(parseHash().name)) {
    route();
    return;
  }
  if (!loggedIn()) {
    leave();
    renderLogin();
    return;
  }
  if (shell) {
    leave();
    buildShell();
    route();
  }
});

window.addEventListener('hashchange', () => route());

i18nReady.then(() => route());
