// Translations and formatting. Every user-visible string goes through t('key'); languages are
// the files listed in /static/i18n/index.json, so adding Japanese is adding ja.json and one
// line there. Numbers and dates use Intl with the user's locale and the SITE's time zone.

const BASE = '/static/i18n/';
const LANG_KEY = 'andon.lang';

let languages = [{ code: 'en', name: 'English' }];
let lang = 'en';
let dict = {};
let fallback = {};
let zone = 'UTC';
let locale = 'en';
const missing = new Set();
const listeners = new Set();
const dataWords = new Set();

async function fetchJson(name) {
  const r = await fetch(BASE + name, { headers: { Accept: 'application/json' } });
  if (!r.ok) throw new Error(`${BASE + name}: ${r.status}`);
  return r.json();
}

function pickLocale(code) {
  // the user's own regional variant of the chosen language when the browser has one
  const own = (navigator.languages || []).find(
    (l) => l === code || l.split('-')[0] === code.split('-')[0],
  );
  if (own && (own === code || !code.includes('-'))) return own;
  return code;
}

const files = new Map();

/** A translation file, requested once (the first page asks for it before it needs it). */
function langFile(code) {
  let p = files.get(code);
  if (!p) {
    p = fetchJson(`${code}.json`);
    p.catch(() => files.delete(code));
    files.set(code, p);
  }
  return p;
}

/** The language list, English (the fallback) and the language chosen last time are
 * requested together rather than one after the other. */
export async function initI18n() {
  const saved = localStorage.getItem(LANG_KEY);
  const idxP = fetchJson('index.json');
  const enP = langFile('en');
  if (saved && saved !== 'en') langFile(saved).catch(() => {});
  const [idx, en] = await Promise.all([idxP, enP]);
  languages = idx.languages;
  fallback = en;
  const browser = (navigator.languages || []).map((l) => languages.find((x) => x.code === l))[0];
  await setLang(saved || (browser && browser.code) || idx.default || 'en');
}

export function getLanguages() {
  return languages;
}

export function getLang() {
  return lang;
}

export async function setLang(code) {
  if (!languages.some((l) => l.code === code)) code = 'en';
  dict = code === 'en' ? fallback : await langFile(code);
  lang = code;
  locale = pickLocale(code);
  localStorage.setItem(LANG_KEY, code);
  document.documentElement.lang = code;
  numberCache.clear();
  dateCache.clear();
  listeners.forEach((fn) => fn(code));
}

export function onLangChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function setZone(tz) {
  zone = tz || 'UTC';
  dateCache.clear();
}

export function getZone() {
  return zone;
}

/** The translation of key, with {name} placeholders filled from params. */
export function t(key, params) {
  let s = dict[key];
  if (s === undefined) {
    missing.add(key);
    s = fallback[key] ?? key;
  }
  if (params) s = s.replace(/\{(\w+)\}/g, (m, k) => (k in params ? String(params[k]) : m));
  return s;
}

/** The translation of key when the language has it, else null (for server-sent codes). */
export function tMaybe(key, params) {
  return key in dict || key in fallback ? t(key, params) : null;
}

/** Words from data (machine names, ids) that may appear in attributes of any language. */
export function allowData(...texts) {
  for (const x of texts) {
    if (!x) continue;
    for (const w of String(x).match(/[A-Za-z][A-Za-z0-9_.-]*/g) || []) dataWords.add(w);
  }
}

// ---- formatting --------------------------------------------------------------------------

const numberCache = new Map();
const dateCache = new Map();

function nf(opts) {
  const k = JSON.stringify(opts);
  let f = numberCache.get(k);
  if (!f) numberCache.set(k, (f = new Intl.NumberFormat(locale, opts)));
  return f;
}

function df(opts) {
  const k = JSON.stringify(opts);
  let f = dateCache.get(k);
  if (!f) dateCache.set(k, (f = new Intl.DateTimeFormat(locale, { timeZone: zone, ...opts })));
  return f;
}

export const DASH = '–';

export function num(x, digits = 0) {
  if (x === null || x === undefined || Number.isNaN(x)) return DASH;
  if (Number(x.toFixed(digits)) === 0) x = 0; // -0.0001 is "0", not "-0"
  return nf({ maximumFractionDigits: digits, minimumFractionDigits: digits }).format(x);
}

/** A fraction 0..1 as a percentage. */
export function pct(x, digits = 1) {
  if (x === null || x === undefined || Number.isNaN(x)) return DASH;
  if (Number((x * 100).toFixed(digits)) === 0) x = 0;
  return nf({ style: 'percent', maximumFractionDigits: digits, minimumFractionDigits: digits })
    .format(x);
}

/** Date and time of day in the site's zone: year first and a 24-hour clock in every language
 * (a plant's log, not a US letter). zh-TW's own numeric date is year first already
 * (2026/12/02 14:05:09); English gets the ISO order (2026-12-02 14:05:09), since there is no
 * en-TW in CLDR: Chromium's en-TW is en-US, 12/2/26, 2:05:09 PM. */
export function dateTime(us) {
  if (us === null || us === undefined) return DASH;
  const opts = { year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit',
    minute: '2-digit', second: '2-digit', hourCycle: 'h23' };
  const parts = df(opts).formatToParts(new Date(us / 1000));
  const o = {};
  for (const x of parts) if (x.type !== 'literal') o[x.type] = x.value;
  if (lang.split('-')[0] === 'zh') return `${o.year}/${o.month}/${o.day} ${o.hour}:${o.minute}:${o.second}`;
  return `${o.year}-${o.month}-${o.day} ${o.hour}:${o.minute}:${o.second}`;
}

/** A name from the plant model in the current language: ``name_i18n[lang]`` (or of the
 * language without its region) when the model has one, else ``name``. */
export function dataName(x) {
  if (!x) return '';
  const tr = x.name_i18n || {};
  return tr[lang] || tr[lang.split('-')[0]] || x.name || '';
}

export function time(us, seconds = false) {
  if (us === null || us === undefined) return DASH;
  const o = { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' };
  if (seconds) o.second = '2-digit';
  return df(o).format(new Date(us / 1000));
}

export function day(us) {
  return df({ month: 'short', day: 'numeric' }).format(new Date(us / 1000));
}

/** Site-local date parts of a µs instant (for "today" in the site's zone). */
export function localParts(us) {
  const p = df({
    year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit',
    second: '2-digit', hourCycle: 'h23',
  }).formatToParts(new Date(us / 1000));
  const o = {};
  for (const x of p) if (x.type !== 'literal') o[x.type] = Number(x.value);
  return o;
}

/** µs of the site-local midnight starting the day that contains `us`. */
export function siteMidnight(us) {
  const p = localParts(us);
  const elapsed = ((p.hour % 24) * 3600 + p.minute * 60 + p.second) * 1e6 + (us % 1e6);
  return us - elapsed;
}

/** A duration in seconds as "1 h 05 min", "4 min 10 s", "12 s" (units translated). */
export function duration(sec) {
  if (sec === null || sec === undefined || Number.isNaN(sec)) return DASH;
  sec = Math.max(0, Math.floor(sec));
  const h = Math.floor(sec / 3600);
  const m = Math.floor((sec % 3600) / 60);
  const s = sec % 60;
  if (h >= 24) return t('dur.dh', { d: Math.floor(h / 24), h: h % 24 });
  if (h) return t('dur.hm', { h, m: String(m).padStart(2, '0') });
  if (m) return t('dur.ms', { m, s: String(s).padStart(2, '0') });
  return t('dur.s', { s });
}

export function stateLabel(state) {
  return t(`state.${state}`);
}

// ---- audit -------------------------------------------------------------------------------

const ALLOW = new Set([
  'OEE', 'kWh', 'kW', 'MTBF', 'MTTR', 'MTTA', 'CO2e', 'tCO2e', 'kg', 'CI', 'API', 'ID', 'SSE',
  'andon', 'Andon', 'h', 's', 'ms', 'min', 'UTC', 'TWD', 'USD', 'EUR', 'JPY', 'NT',
]);

function visible(el) {
  if (!el || !el.isConnected) return false;
  if (el.closest('[hidden],[aria-hidden="true"]')) return false;
  const cs = getComputedStyle(el);
  if (cs.display === 'none' || cs.visibility === 'hidden') return false;
  return el.getClientRects().length > 0;
}

function untranslated(text) {
  const words = text.match(/[A-Za-z][A-Za-z0-9_.-]*/g) || [];
  return words.filter((w) => !ALLOW.has(w) && !dataWords.has(w) && !/^[A-Z]{1,3}\d*$/.test(w)
    && !/\d/.test(w));
}

/** Visible text and attributes (title, aria-label, placeholder, alt) of the page that are not
 * in the current language: [{text, where}]. English is the source language: always []. Text
 * inside translate="no" (data: machine names and ids) is skipped. */
export function audit() {
  if (lang === 'en') return [];
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const text = n.nodeValue.trim();
    if (!text) continue;
    const el = n.parentElement;
    if (!el || el.closest('script,style,[translate="no"]')) continue;
    if (!visible(el)) continue;
    const bad = untranslated(text);
    if (bad.length) out.push({ text, where: describe(el), words: bad });
  }
  for (const el of document.body.querySelectorAll('[title],[aria-label],[placeholder],[alt]')) {
    if (!visible(el) && el.tagName !== 'svg') continue;
    for (const a of ['title', 'aria-label', 'placeholder', 'alt']) {
      const v = el.getAttribute(a);
      if (!v) continue;
      const bad = untranslated(v);
      if (bad.length) out.push({ text: v, where: `${describe(el)}@${a}`, words: bad });
    }
  }
  for (const k of missing) if (!(k in dict)) out.push({ text: k, where: 'missing key' });
  return out;
}

function describe(el) {
  const id = el.closest('[data-testid]');
  const page = el.closest('[data-page]');
  return `${page ? page.dataset.page : 'shell'}:${id ? id.dataset.testid : el.tagName}`;
}
