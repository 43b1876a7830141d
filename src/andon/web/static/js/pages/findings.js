// Findings inbox: what the installed apps found at this site, newest first, filtered by
// machine, app and verdict; a finding's detail draws its evidence (its signals over its
// window, read from the store) and, for operators and up, takes a verdict with a comment,
// which goes back to the app through the SDK (feedback.list).

import { api } from '../api.js';
import { trendChart, widthOf } from '../charts.js';
import { clear, h, raw } from '../dom.js';
import { allowData, dateTime, pct, t, tMaybe } from '../i18n.js';
import { machineLabel, picker, shortId, timeTitle } from './common.js';

const VERDICTS = ['open', 'confirmed', 'rejected', 'all'];

function verdictText(v) {
  return t(`findings.verdict.${v || 'open'}`);
}

export default {
  async render(root, params, ctx) {
    const base = `/sites/${encodeURIComponent(ctx.site.id)}`;
    const st = await ctx.structure();
    let machine = st.machines.some((m) => m.machine === params.get('machine'))
      ? params.get('machine') : '';
    let verdict = VERDICTS.includes(params.get('verdict')) ? params.get('verdict') : 'open';
    let selected = params.get('finding') || '';
    const mayReview = ctx.can('finding:review');

    const machinePick = picker('findings-machine', t('findings.machine'),
      [{ value: '', label: t('alarms.allmachines') },
        ...st.machines.map((x) => ({ value: x.machine, label: machineLabel(x) }))], machine,
      (v) => { machine = v; load(); });
    const verdictPick = picker('findings-verdict', t('findings.verdict'),
      VERDICTS.map((v) => ({ value: v, label: t(`findings.verdict.${v}`) })), verdict,
      (v) => { verdict = v; load(); });
    verdictPick.removeAttribute('translate');
    const list = h('tbody', { 'aria-live': 'polite' });
    const empty = h('p', { class: 'muted', 'data-testid': 'findings-empty', hidden: true },
      t('findings.none'));
    const detail = h('section', { class: 'card', 'data-testid': 'finding-detail', hidden: true });
    root.append(h('div', { class: 'page-head' }, h('h1', null, t('nav.findings')), machinePick,
      verdictPick),
    h('div', { class: 'grid-2' },
      h('section', { class: 'card' }, h('table', { class: 'data', 'data-testid': 'findings-table' },
        h('thead', null, h('tr', null, ['findings.when', 'findings.machine', 'findings.app',
          'findings.what', 'findings.score', 'findings.verdict'].map((k) => h('th', null, t(k))))),
        list), empty),
      detail));

    async function review(f, v, comment, buttons) {
      for (const b of buttons) b.disabled = true;
      try {
        await api(`${base}/findings/${encodeURIComponent(f.id)}/feedback`, { method: 'POST',
          body: { verdict: v, comment } });
        ctx.toast(t(`findings.saved.${v}`));
        await load();
      } catch {
        for (const b of buttons) b.disabled = false;
        ctx.toast(t('error.save'), 'error');
      }
    }

    async function show(id) {
      selected = id;
      for (const tr of list.querySelectorAll('tr')) {
        tr.classList.toggle('selected', tr.getAttribute('data-finding') === id);
      }
      const [f, ev] = await Promise.all([
        api(`${base}/findings/${encodeURIComponent(id)}`, { signal: ctx.signal }),
        api(`${base}/findings/${encodeURIComponent(id)}/evidence`, { signal: ctx.signal })
          .catch((e) => (e && e.status === 403 ? null : Promise.reject(e))),
      ]);
      allowData(f.title, f.machine, f.app_id, f.type, ...f.signals);
      clear(detail);
      detail.hidden = false;
      detail.setAttribute('data-finding', f.id);
      detail.setAttribute('data-verdict', f.verdict || 'open');
      const chart = h('div', { class: 'evidence', 'data-testid': 'evidence' });
      const evidenceRows = Object.entries(f.evidence || {}).map(([k, v]) => {
        allowData(k, String(v));
        return h('tr', null, raw(k, 'td'), raw(typeof v === 'object' ? JSON.stringify(v) : String(v), 'td'));
      });
      const history = h('ul', { class: 'history', 'data-testid': 'finding-history' },
        (f.feedback || []).map((x) => {
          allowData(x.comment);
          return h('li', { 'data-verdict': x.verdict }, verdictText(x.verdict), ' · ',
            raw(ctx.who(x.actor)), ' · ', dateTime(x.at),
            x.comment ? [' · ', raw(x.comment, 'q')] : null);
        }));
      detail.append(
        h('h2', null, raw(f.title)),
        h('p', { class: 'muted' }, raw(f.app_id), ' · ', raw(f.type), ' · ',
          f.machine ? raw(shortId(f.machine)) : t('findings.site'), ' · ',
          t('findings.window', { from: dateTime(f.start_us), to: dateTime(f.end_us) }), ' · ',
          t('findings.scoreis', { score: pct(f.score, 0) })),
        f.explanation ? raw(f.explanation, 'p') : null,
        chart,
        evidenceRows.length ? h('table', { class: 'data', 'data-testid': 'finding-evidence' },
          h('tbody', null, evidenceRows)) : null,
        h('h3', null, t('findings.verdicts')),
        (f.feedback || []).length ? history : h('p', { class: 'muted' }, t('findings.noverdict')));
      if (mayReview) {
        const comment = h('textarea', { class: 'input', rows: 2, maxlength: 2000,
          'data-testid': 'finding-comment', 'aria-label': t('findings.comment'),
          placeholder: t('findings.comment') });
        const yes = h('button', { type: 'button', class: 'btn', 'data-testid': 'finding-confirm' },
          t('findings.confirm'));
        const no = h('button', { type: 'button', class: 'btn', 'data-testid': 'finding-reject' },
          t('findings.reject'));
        yes.addEventListener('click', () => review(f, 'confirmed', comment.value.trim(), [yes, no]));
        no.addEventListener('click', () => review(f, 'rejected', comment.value.trim(), [yes, no]));
        detail.append(h('div', { class: 'review' }, comment, h('div', { class: 'toolbar' }, yes, no)));
      }
      if (ev === null) {
        chart.append(h('p', { class: 'muted' }, t('forbidden.title')));
        return;
      }
      const a = ev.series;
      if (!a.signals.length) {
        chart.append(h('p', { class: 'muted', 'data-testid': 'evidence-empty' }, t('findings.nosignals')));
        return;
      }
      const width = Math.max(280, widthOf(detail) - 28);
      a.signals.forEach((sig, i) => {
        const idx = [];
        for (let k = 0; k < a.index.length; k++) if (a.index[k] === i) idx.push(k);
        const half = ev.bucket_us / 2;
        const svg = trendChart({ width, height: 170, start: ev.from_us, end: ev.to_us,
          series: [{ t: idx.map((k) => a.bucket[k] + half), v: idx.map((k) => a.mean[k]),
            lo: idx.map((k) => a.min[k]), hi: idx.map((k) => a.max[k]) }],
          label: sig, yTitle: shortId(sig), xTitle: timeTitle(),
          marks: [{ start: ev.start_us, end: ev.end_us, label: t('findings.windowmark') }] });
        svg.setAttribute('data-testid', 'evidence-chart');
        svg.setAttribute('data-signal', sig);
        svg.setAttribute('data-points', String(idx.length));
        chart.append(svg);
      });
      if (ev.unknown.length) {
        chart.append(h('p', { class: 'muted' }, t('findings.unknown'), ' ',
          raw(ev.unknown.map(shortId).join(', '))));
      }
    }

    async function load() {
      const q = new URLSearchParams({ limit: '200' });
      if (machine) q.set('machine', machine);
      if (verdict !== 'all') q.set('verdict', verdict);
      const got = await api(`${base}/findings?${q}`, { signal: ctx.signal });
      clear(list);
      empty.hidden = got.findings.length > 0;
      for (const f of got.findings) {
        allowData(f.title, f.machine, f.app_id);
        const tr = h('tr', { 'data-testid': 'finding-row', 'data-finding': f.id,
          'data-verdict': f.verdict || 'open', tabindex: 0, class: 'clickable' },
        h('td', null, dateTime(f.created_at)),
        h('td', null, f.machine ? raw(shortId(f.machine)) : t('findings.site')),
        h('td', null, raw(f.app_id)),
        h('td', null, raw(f.title)),
        h('td', { class: 'n' }, pct(f.score, 0)),
        h('td', null, tMaybe(`findings.verdict.${f.verdict || 'open'}`)));
        tr.addEventListener('click', () => show(f.id));
        tr.addEventListener('keydown', (e) => { if (e.key === 'Enter') show(f.id); });
        list.append(tr);
      }
      if (selected) await show(selected).catch(() => { detail.hidden = true; });
    }

    await load();
    ctx.ready();
  },
};
