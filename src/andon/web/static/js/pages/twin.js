// Twin what-if: pick a line, edit buffers, cycle times, MTBF/MTTR, crew and shifts; run the
// scenario as a job, follow its progress, then compare with today: throughput with its 95 %
// confidence interval, bottleneck and the money per day.

import { api } from '../api.js';
import { clear, h, raw } from '../dom.js';
import { allowData, num, pct, t, tMaybe } from '../i18n.js';
import { card, money, picker, shortId } from './common.js';

const POLL_MS = 700;

function numInput(testid, attrs, value, step, min) {
  return h('input', { type: 'number', class: 'input', 'data-testid': testid,
    step: step === 1 ? 1 : 'any', min,
    value: value ?? '', ...attrs });
}

export default {
  async render(root, params, ctx) {
    const st = await ctx.structure();
    if (!st.lines.length) {
      root.append(h('p', { class: 'empty' }, t('line.none')));
      return ctx.ready();
    }
    const lineId = params.get('line') || st.lines[0].line;
    const line = st.lines.find((l) => l.line === lineId) || st.lines[0];
    const base = `/sites/${encodeURIComponent(ctx.site.id)}`;
    const mayRun = ctx.can('twin:run');
    const sc = await api(`${base}/twin/scenario`, { query: { line: line.line }, signal: ctx.signal });
    allowData(...sc.shifts.map((s) => s.name));

    const label = (text, input) => h('label', { class: 'field' }, h('span', null, text), input);
    const bufIn = sc.buffers.map((b) => numInput('twin-buffer', { 'data-buffer': b.buffer,
      'aria-label': `${t('twin.buffer')} ${shortId(b.buffer)}` }, b.capacity, 1, 1));
    const mRows = sc.machines.map((m) => ({
      m,
      cycle: numInput('twin-cycle', { 'data-machine': m.machine,
        'aria-label': `${t('twin.cycle')} ${shortId(m.machine)}` }, m.cycle_time_s, 0.1, 0.1),
      mtbf: numInput('twin-mtbf', { 'data-machine': m.machine,
        'aria-label': `${t('kpi.mtbf')} ${shortId(m.machine)}` }, m.mtbf_h === null ? '' : +m.mtbf_h.toFixed(2), 0.1, 0.1),
      mttr: numInput('twin-mttr', { 'data-machine': m.machine,
        'aria-label': `${t('kpi.mttr')} ${shortId(m.machine)}` }, m.mttr_h === null ? '' : +m.mttr_h.toFixed(3), 0.01, 0.01),
    }));
    const crew = numInput('twin-crew', { id: 'twin-crew' }, sc.crew ?? '', 1, 1);
    const shifts = numInput('twin-shifts', { id: 'twin-shifts', max: Math.max(1, sc.shifts.length) },
      sc.shifts.length || '', 1, 1);
    const hours = numInput('twin-hours', { id: 'twin-hours', max: 720 }, 40, 1, 1);
    const reps = numInput('twin-replications', { id: 'twin-replications', max: 50 }, 5, 1, 2);
    const run = h('button', { type: 'submit', class: 'btn btn-primary btn-big', 'data-testid': 'twin-run',
      disabled: !mayRun }, t('twin.run'));
    const progress = h('progress', { max: 1, value: 0, 'data-testid': 'twin-progress',
      'data-status': 'idle', 'aria-label': t('twin.progress'), hidden: true });
    const status = h('p', { class: 'muted', role: 'status' });
    const out = h('div', null, h('p', { class: 'card muted' }, t('twin.hint')));
    // the line's rate today as the board and the line page give it (per planned production
    // hour), so the twin's "today" can be read against it
    const measured = h('p', { class: 'card', 'data-testid': 'twin-measured',
      'data-rate': sc.measured.throughput_per_h ?? '' },
    t('twin.measured', { n: num(sc.measured.throughput_per_h, 1), parts: num(sc.measured.good_out) }));

    const form = h('form', { class: 'twin-form card', 'data-testid': 'twin-form', novalidate: true },
      h('fieldset', null, h('legend', null, t('twin.buffers')),
        sc.buffers.length ? h('table', { class: 'data' }, h('tbody', null, sc.buffers.map((b, i) =>
          h('tr', null, h('th', null, raw(shortId(b.buffer))), h('td', null, bufIn[i])))))
          : h('p', { class: 'muted' }, t('twin.nobuffers'))),
      h('fieldset', null, h('legend', null, t('twin.machines')),
        h('table', { class: 'data' },
          h('thead', null, h('tr', null, h('th', null, t('energy.machine')), h('th', null, t('twin.cycle')),
            h('th', null, t('twin.mtbfh')), h('th', null, t('twin.mttrh')))),
          h('tbody', null, mRows.map((r) => h('tr', null, h('th', null, raw(shortId(r.m.machine))),
            h('td', null, r.cycle), h('td', null, r.mtbf), h('td', null, r.mttr)))))),
      h('fieldset', null, h('legend', null, t('twin.people')),
        h('div', { class: 'toolbar' }, label(t('twin.crew'), crew), label(t('twin.shifts'), shifts),
          label(t('twin.hours'), hours), label(t('twin.replications'), reps))),
      mayRun ? null : h('p', { class: 'muted' }, t('twin.cannotrun')),
      run, progress, status);

    root.append(h('div', { class: 'page-head' }, h('h1', null, t('nav.twin')),
      picker('twin-line', t('line.pick'), st.lines.map((l) => ({ value: l.line, label: l.name || shortId(l.line) })),
        line.line, (v) => ctx.go('twin', { line: v }))),
    measured, h('div', { class: 'grid-2' }, form, out));

    function changes() {
      const c = { buffers: {}, cycle_time_s: {}, mtbf_h: {}, mttr_h: {} };
      sc.buffers.forEach((b, i) => {
        const v = Number(bufIn[i].value);
        if (bufIn[i].value !== '' && v !== b.capacity) c.buffers[b.buffer] = v;
      });
      for (const r of mRows) {
        const cy = Number(r.cycle.value);
        if (r.cycle.value !== '' && Math.abs(cy - r.m.cycle_time_s) > 1e-9) c.cycle_time_s[r.m.machine] = cy;
        const f = Number(r.mtbf.value);
        if (r.mtbf.value !== '' && (r.m.mtbf_h === null || Math.abs(f - r.m.mtbf_h) > 0.005)) c.mtbf_h[r.m.machine] = f;
        const p = Number(r.mttr.value);
        if (r.mttr.value !== '' && (r.m.mttr_h === null || Math.abs(p - r.m.mttr_h) > 0.0005)) c.mttr_h[r.m.machine] = p;
      }
      if (crew.value !== '' && Number(crew.value) !== sc.crew) c.crew = Number(crew.value);
      const n = Number(shifts.value);
      if (shifts.value !== '' && n !== sc.shifts.length && n >= 1) c.shifts = sc.shifts.slice(0, n);
      return c;
    }

    function column(title, testid, r, cur) {
      // per planned production hour, as the board; the interval scales with it
      const k = r.per_planned_h != null && r.throughput_per_h ? r.per_planned_h / r.throughput_per_h : 1;
      return h('section', { class: 'card', 'data-testid': testid }, h('h3', null, title),
        h('div', { class: 'big-fig' }, h('span', { class: 'v', 'data-testid': 'twin-throughput' },
          t('unit.perh', { n: num(r.throughput_per_h * k, 2) })), h('span', { class: 'l' }, t('twin.perplanned'))),
        h('p', { 'data-testid': 'twin-ci' }, t('twin.ci', { lo: num(r.ci[0] * k, 2), hi: num(r.ci[1] * k, 2) })),
        h('p', { class: 'muted', 'data-testid': 'twin-perclock' }, t('twin.perclock', { n: num(r.throughput_per_h, 2) })),
        h('p', { 'data-testid': 'twin-bottleneck', 'data-machine': r.bottleneck || '' }, t('board.bottleneck'), ' ',
          r.bottleneck ? raw(shortId(r.bottleneck)) : '–'),
        cur);
    }

    function showResult(job) {
      clear(out);
      const r = job.result;
      const gain = r.today.throughput_per_h ? r.scenario.throughput_per_h / r.today.throughput_per_h - 1 : null;
      allowData(r.money.currency);
      out.append(h('div', { class: 'card', 'data-testid': 'twin-result', 'data-job': job.id },
        h('h2', null, t('twin.result')),
        h('div', { class: 'twin-result' },
          column(t('twin.today'), 'twin-today', r.today),
          column(t('twin.scenario'), 'twin-scenario', r.scenario,
            gain === null ? null : h('p', null, t('twin.gain', { p: `${gain > 0 ? '+' : ''}${pct(gain, 1)}` })))),
        h('p', { class: 'big-fig', 'data-testid': 'twin-money' },
          h('span', { class: 'v' }, money(r.money.per_day, r.money.currency)),
          h('span', { class: 'l' }, t('twin.moneyperday'))),
        h('p', { class: 'muted' }, tMaybe(`twin.source.${r.source}`) || '',
          ' · ', t('twin.runs', { n: num(r.replications), h: num(r.hours) }))));
    }

    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      if (!mayRun) return;
      run.disabled = true;
      clear(out);
      progress.hidden = false;
      progress.value = 0;
      progress.dataset.status = 'queued';
      status.textContent = t('twin.status.queued');
      try {
        let job = await api(`${base}/twin/jobs`, { method: 'POST', body: { line: line.line,
          hours: Number(hours.value), replications: Number(reps.value), changes: changes() } });
        while (ctx.alive() && (job.status === 'queued' || job.status === 'running')) {
          progress.value = job.progress;
          progress.dataset.status = job.status;
          status.textContent = `${t(`twin.status.${job.status}`)} ${pct(job.progress, 0)}`;
          await new Promise((r) => setTimeout(r, POLL_MS));
          job = await api(`${base}/twin/jobs/${encodeURIComponent(job.id)}`, { signal: ctx.signal });
        }
        if (!ctx.alive()) return;
        progress.value = 1;
        progress.dataset.status = job.status;
        status.textContent = t(`twin.status.${job.status}`);
        if (job.status === 'done') showResult(job);
        else out.append(h('p', { class: 'error', 'data-testid': 'twin-error' }, t('twin.failed'), ' ',
          raw(job.error || '')));
      } catch (ex) {
        if (ex.name === 'AbortError') return;
        progress.dataset.status = 'failed';
        status.textContent = '';
        out.append(h('p', { class: 'error', 'data-testid': 'twin-error' },
          ex.status === 422 ? t('twin.invalid') : ex.status === 429 ? t('twin.busy') : t('twin.failed'), ' ',
          raw(typeof ex.detail === 'string' ? ex.detail
            : Array.isArray(ex.detail) ? ex.detail.map((d) => d.msg).join('; ') : '')));
      } finally {
        run.disabled = !mayRun;
      }
    });
    ctx.ready();
  },
};
