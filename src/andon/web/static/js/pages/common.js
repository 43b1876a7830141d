// Helpers shared by pages: ranges in site time, pickers, chart cards, state legend.

import { api } from '../api.js';
import { h, raw } from '../dom.js';
import { stateIcon, STATES } from '../icons.js';
import { allowData, dataName, getZone, num, siteMidnight, stateLabel, t, tMaybe } from '../i18n.js';

export const H = 3600e6;

export function shortId(path) {
  return path ? path.split('/').pop() : '';
}

/** [start, end] µs for a named range ending now (server time). */
export function rangeOf(name, now) {
  if (name === 'today') return [siteMidnight(now), now];
  if (name === 'shift') return [now - 8 * H, now];
  if (name === '24h') return [now - 24 * H, now];
  if (name === '7d') return [now - 7 * 24 * H, now];
  if (name === '1h') return [now - H, now];
  if (name === '8h') return [now - 8 * H, now];
  return [now - 8 * H, now];
}

/** [start, end] µs for a named range, where "today" and "shift" are the site's production
 * day and current shift from its shift calendar (GET /kpi/ranges, the board's ranges);
 * other names as rangeOf. */
export async function siteRange(ctx, name, now) {
  if (name !== 'today' && name !== 'shift') return rangeOf(name, now);
  const r = await api(`/sites/${encodeURIComponent(ctx.site.id)}/kpi/ranges`,
    { query: { at: now }, signal: ctx.signal });
  return [r[name].start, r[name].end];
}

/** A row of toggle buttons; onPick(name) when one is chosen. */
export function rangePicker(names, current, onPick, testid = 'range-picker') {
  const box = h('div', { class: 'toolbar', role: 'group', 'data-testid': testid,
    'aria-label': t('range.label') });
  const btns = names.map((n) => {
    const b = h('button', { type: 'button', class: 'btn', 'data-range': n,
      'aria-pressed': n === current ? 'true' : 'false' }, t(`range.${n}`));
    b.addEventListener('click', () => {
      btns.forEach((x) => x.setAttribute('aria-pressed', x === b ? 'true' : 'false'));
      onPick(n);
    });
    return b;
  });
  box.append(...btns);
  return box;
}

export function picker(testid, label, options, value, onChange) {
  const sel = h('select', { class: 'select', 'data-testid': testid, 'aria-label': label,
    translate: 'no' });
  for (const o of options) sel.append(h('option', { value: o.value }, o.label));
  if (value) sel.value = value;
  sel.addEventListener('change', () => onChange(sel.value));
  return sel;
}

export function card(title, testid, ...body) {
  return h('section', { class: 'card chart-card', 'data-testid': testid },
    h('h2', null, title), ...body);
}

export function stateLegend() {
  return h('div', { class: 'legend' }, STATES.map((st) => h('span', { class: `legend-item st-${st}` },
    h('span', { class: 'swatch' }, stateIcon(st)), stateLabel(st))));
}

export function bigFig(label, value, testid) {
  return h('div', { class: 'big-fig', 'data-testid': testid },
    h('span', { class: 'v' }, value), h('span', { class: 'l' }, label));
}

/** Server "now": the board answer's clock, advanced at its rate (the demo runs on plant
 * time, 60 plant seconds per wall second, not on wall time). */
export async function serverNow(ctx) {
  const s = await ctx.structure();
  return Math.round(s.now + (Date.now() * 1000 - s.fetchedAt) * s.rate);
}

export function machineLabel(m) {
  const name = dataName(m);
  return name ? `${shortId(m.machine)} · ${name}` : shortId(m.machine);
}

/** A line's name in the current language (its id when the model gives none). */
export function lineName(l) {
  return dataName(l) || shortId(l.line);
}

/** The name of a signal ({signal, name, name_i18n, unit} of /machines/kpi): the model's name
 * in the current language, else the dashboard's name for its id, else the id. */
export function signalName(info, path) {
  const id = shortId(path);
  return dataName(info) || tMaybe(`signal.${id}`) || id;
}

/** The title of a time axis: "Time (Asia/Taipei)", the site's zone. */
export function timeTitle() {
  allowData(getZone()); // a zone name is data (Asia/Taipei), in every language
  return t('chart.time', { zone: getZone() });
}

/** The name of a loss of the waterfall (``planned_busy``, ``breakdown``, ...); a loss this
 * dashboard does not know yet shows its id. */
export function lossName(loss) {
  const k = loss.replace(/_s$/, '');
  return tMaybe(`loss.${k}`) || k;
}

/** Steps of `waterfall()` from the API's [{loss, seconds}] (planned busy time first, fully
 * productive time last, whatever losses come between), in hours. */
export function lossSteps(rows) {
  return rows.map((w, i) => ({
    label: lossName(w.loss), value: w.seconds / 3600,
    kind: i === 0 ? 'start' : i === rows.length - 1 ? 'total' : 'loss',
    attrs: { 'data-testid': 'waterfall-bar', 'data-loss': w.loss, 'data-seconds': w.seconds },
  }));
}

// ---- reason labels -----------------------------------------------------------------------
// The default reason tree (andon.kpi.reasons) has stable ids: its categories translate as
// `reasoncat.<category>` and its reasons as `reasons.<category>.<reason>` (keyed by category
// too, so a plant reason that reuses an id elsewhere keeps its own label). Plant-specific
// entries (failure-mode codes) show the server's label, marked as data for the i18n audit.

/** The label of a reason category ({id, label} from /reasons/tree, or just an id). */
export function categoryLabel(id, label) {
  const known = tMaybe(`reasoncat.${id}`);
  if (known) return known;
  allowData(label || id);
  return label || id;
}

/** The label of reason `id` in category `category` (`i18n`: the plant model's labels in
 * other languages, `label_i18n` of /reasons/tree). */
export function reasonLabel(category, id, label, i18n) {
  const known = tMaybe(`reasons.${category}.${id}`)
    || dataName({ name: '', name_i18n: i18n });
  if (known) return known;
  allowData(label || id);
  return label || id;
}

/** Whether the label of a category (reason with `id`) is data rather than interface text. */
export function isDataLabel(category, id) {
  return id === undefined ? !tMaybe(`reasoncat.${category}`)
    : !tMaybe(`reasons.${category}.${id}`);
}

/** A code a machine reported, as people read it: the translated label of the built-in reason
 * it names (break, changeover, ...), else the code itself, marked as data. */
export function codeText(tree, code) {
  for (const c of tree?.categories || []) {
    if (!c.reasons.some((r) => r.id === code)) continue;
    const known = tMaybe(`reasons.${c.id}.${code}`);
    if (known) return known;
  }
  return raw(code);
}

/** Category › reason as people read it, from the site's reason tree (null: ids only). */
export function reasonText(tree, category, reason) {
  const c = (tree?.categories || []).find((x) => x.id === category);
  const r = c?.reasons.find((x) => x.id === reason);
  return `${categoryLabel(category, c?.label)} › ${reasonLabel(category, reason, r?.label,
    r?.label_i18n)}`;
}

// An amount in a currency (ISO 4217 code), whole units, in the page's language; an unknown
// code falls back to the number and the code.
export function money(v, cur) {
  try {
    return new Intl.NumberFormat(document.documentElement.lang || 'en', { style: 'currency',
      currency: cur, maximumFractionDigits: 0 }).format(v);
  } catch {
    return `${num(v)} ${cur}`;
  }
}

export { raw };
