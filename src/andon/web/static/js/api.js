// The API client: tokens in sessionStorage, one refresh at a time on 401, and a server-sent
// events reader over fetch (EventSource cannot send an Authorization header, and a token in
// a URL ends up in logs).

export const PREFIX = '/api/v1';
const KEY = 'andon.session';

export class ApiError extends Error {
  constructor(status, detail, path) {
    super(`${status} ${path}: ${typeof detail === 'string' ? detail : JSON.stringify(detail)}`);
    this.status = status;
    this.detail = detail;
    this.path = path;
  }
}

let session = null;
try {
  session = JSON.parse(sessionStorage.getItem(KEY) || 'null');
} catch {
  session = null;
}
let refreshing = null;
const onLogout = new Set();

export function loggedIn() {
  return session !== null;
}

/** The email the user signed in with (to show "you" as a name rather than an id). */
export function sessionEmail() {
  return session?.email ?? null;
}

export function whenLoggedOut(fn) {
  onLogout.add(fn);
}

function store(pair, email) {
  session = pair
    ? { access: pair.access_token, refresh: pair.refresh_token, email: email ?? session?.email }
    : null;
  if (session) sessionStorage.setItem(KEY, JSON.stringify(session));
  else sessionStorage.removeItem(KEY);
}

function url(path, query) {
  const u = new URL(PREFIX + path, location.origin);
  if (query) {
    for (const [k, v] of Object.entries(query)) {
      if (v === undefined || v === null) continue;
      if (Array.isArray(v)) v.forEach((x) => u.searchParams.append(k, String(x)));
      else u.searchParams.set(k, String(v));
    }
  }
  return u.pathname + u.search;
}

/** Sign in; `tenant` (optional): the organisation's id, for an email with accounts in
 * several (without it the oldest account of the email is the one tried). */
export async function login(email, password, tenant) {
  const body = { email, password };
  if (tenant) body.tenant = tenant;
  store(await anonymous('/auth/login', { method: 'POST', body }), email);
}

/** Finish a single sign-on with the code and state the provider sent the browser back with. */
export async function ssoLogin(code, state) {
  store(await anonymous('/auth/oidc/callback', { method: 'POST', body: { code, state } }), null);
}

/** A JSON request without the session's credentials (sign-in options, reset, single
 * sign-on); throws ApiError on a non-2xx answer. */
export async function anonymous(path, opts = {}) {
  const r = await fetch(url(path, opts.query), {
    method: opts.method || 'GET',
    headers: opts.body === undefined ? { Accept: 'application/json' }
      : { Accept: 'application/json', 'Content-Type': 'application/json' },
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
  });
  if (!r.ok) throw new ApiError(r.status, (await r.json().catch(() => ({}))).detail, path);
  return r.status === 204 ? null : r.json();
}

export async function logout() {
  const s = session;
  store(null);
  if (s) {
    await fetch(url('/auth/logout'), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ refresh_token: s.refresh }),
    }).catch(() => {});
  }
  onLogout.forEach((fn) => fn());
}

async function refresh() {
  if (!session) return false;
  if (!refreshing) {
    const token = session.refresh;
    refreshing = fetch(url('/auth/refresh'), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ refresh_token: token }),
    })
      .then(async (r) => {
        if (!r.ok) return false;
        store(await r.json());
        return true;
      })
      .catch(() => false)
      .finally(() => {
        refreshing = null;
      });
  }
  return refreshing;
}

async function send(path, opts, retried) {
  const headers = { Accept: 'application/json' };
  // `token`: a credential of its own (a kiosk's board-device key), never refreshed
  if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
  else if (session) headers.Authorization = `Bearer ${session.access}`;
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(url(path, opts.query), {
    method: opts.method || 'GET',
    headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    signal: opts.signal,
  });
  if (r.status === 401 && !retried && session && !opts.token) {
    if (await refresh()) return send(path, opts, true);
    store(null);
    onLogout.forEach((fn) => fn());
  }
  return r;
}

/** JSON request; throws ApiError on a non-2xx answer. */
export async function api(path, opts = {}) {
  const r = await send(path, opts, false);
  if (!r.ok) {
    const body = await r.json().catch(() => ({}));
    throw new ApiError(r.status, body.detail ?? r.statusText, path);
  }
  if (r.status === 204) return null;
  return r.json();
}

/** Text request (e.g. the site model as YAML); throws ApiError on a non-2xx answer. */
export async function apiText(path, opts = {}) {
  const r = await send(path, opts, false);
  if (!r.ok) throw new ApiError(r.status, r.statusText, path);
  return r.text();
}

/** Read a server-sent events stream until it ends; calls onEvent(name, data) per event.
 * Resolves with the reason of `event: end` (or 'closed'); rejects on HTTP errors. `token`:
 * send this credential instead of the session's. */
export async function stream(path, query, onEvent, signal, token) {
  const r = await send(path, { query, signal, token }, false);
  if (!r.ok || !r.body) throw new ApiError(r.status, r.statusText, path);
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return 'closed';
      buf += value;
      let cut;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        let name = 'message';
        const data = [];
        for (const line of block.split('\n')) {
          if (line.startsWith('event:')) name = line.slice(6).trim();
          else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
        }
        let parsed = null;
        try {
          parsed = data.length ? JSON.parse(data.join('\n')) : null;
        } catch {
          parsed = data.join('\n');
        }
        if (name === 'end') return (parsed && parsed.reason) || 'end';
        onEvent(name, parsed);
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}
