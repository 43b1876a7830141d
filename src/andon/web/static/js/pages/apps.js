// Apps: the catalog of tested apps (what each asks for, the vendor's claims beside what its
// test run measured) and, for the tenant admin, the installed instances with their status,
// the install dialog (sites, settings from the app's schema, the permissions accepted) and
// uninstall (access ends at once; findings stay, see docs/decisions/0902-*).

import { api } from '../api.js';
import { clear, h, raw } from '../dom.js';
import { allowData, dateTime, getLang, num, pct, t, tMaybe } from '../i18n.js';

const PERCENT = new Set(['precision', 'recall']);

/** The app's name in the page's language (the manifest has en and zh-TW). */
export function appName(manifest, fallback = '') {
  const n = (manifest && manifest.name) || {};
  const text = (getLang() === 'zh-TW' ? n['zh-TW'] : n.en) || n.en || fallback;
  allowData(text);
  return text;
}

/** A permission as the admin reads it before accepting it. */
function permText(p) {
  return tMaybe(`apps.perm.${p.replace(':', '_')}`) || p;
}

function figure(metric, v) {
  if (typeof v !== 'number') return '–';
  if (PERCENT.has(metric)) return pct(v, 0);
  if (metric === 'lead_time_s') return t('apps.seconds', { n: num(v, 0) });
  return num(v, Math.abs(v) < 100 ? 2 : 0);
}

function claimsTable(m, figures) {
  const claims = m.claims || [];
  if (!claims.length) return h('p', { class: 'muted' }, t('apps.noclaims'));
  return h('table', { class: 'data', 'data-testid': 'claims' },
    h('thead', null, h('tr', null, h('th', null, t('apps.claim')),
      h('th', { class: 'n' }, t('apps.claimed')), h('th', { class: 'n' }, t('apps.measured')))),
    h('tbody', null, claims.map((c) => {
      const got = ((figures && figures.claims) || []).find((x) => x.metric === c.metric) || {};
      const label = tMaybe(`apps.metric.${c.metric}`) || c.metric;
      allowData(got.verdict);
      return h('tr', { 'data-testid': 'claim-row', 'data-metric': c.metric,
        'data-ok': got.ok === true ? '1' : '0' },
      h('td', null, label),
      h('td', { class: 'n' }, figure(c.metric, c.target)),
      h('td', { class: 'n', 'data-testid': 'claim-measured', title: got.verdict || '' },
        figure(c.metric, got.measured)));
    })));
}

function permList(perms) {
  return h('ul', { class: 'perm-list', 'data-testid': 'permissions' },
    perms.map((p) => h('li', { 'data-perm': p }, permText(p))));
}

/** A settings field for one property of the manifest's schema. */
function settingField(name, spec) {
  allowData(name);
  let control;
  if (spec.enum) {
    control = h('select', { class: 'select', name },
      spec.enum.map((v) => raw(String(v), 'option', { value: String(v) })));
  } else if (spec.type === 'boolean') {
    control = h('input', { type: 'checkbox', name });
    control.checked = !!spec.default;
  } else {
    control = h('input', { class: 'input', name, type: spec.type === 'string' ? 'text' : 'number',
      step: spec.type === 'integer' ? '1' : 'any' });
    if (spec.minimum !== undefined) control.min = String(spec.minimum);
    if (spec.maximum !== undefined) control.max = String(spec.maximum);
  }
  if (spec.default !== undefined && spec.type !== 'boolean') control.value = String(spec.default);
  control.setAttribute('data-setting', name);
  return h('label', { class: 'field' }, raw(spec.title || name, 'span', { class: 'field-label' }),
    control, spec.description ? raw(spec.description, 'span', { class: 'muted field-hint' }) : null);
}

function settingValue(el, spec) {
  if (spec.type === 'boolean') return el.checked;
  if (spec.type === 'number') return Number(el.value);
  if (spec.type === 'integer') return Number.parseInt(el.value, 10);
  return el.value;
}

export default {
  async render(root, _params, ctx) {
    const mayManage = ctx.tenantWide('app:manage');
    const sites = ctx.sites || [];
    const installed = h('tbody');
    const installedCard = h('section', { class: 'card', 'data-testid': 'installed' },
      h('h2', null, t('apps.installed')),
      h('table', { class: 'data' }, h('thead', null, h('tr', null,
        ['apps.app', 'apps.version', 'apps.sites', 'apps.status', 'apps.since', '']
          .map((k) => h('th', null, k ? t(k) : '')))), installed),
      h('p', { class: 'muted', 'data-testid': 'installed-empty', hidden: true }, t('apps.noinstalled')));
    const catalog = h('div', { class: 'grid-2', 'data-testid': 'catalog' });
    root.append(h('div', { class: 'page-head' }, h('h1', null, t('nav.apps'))),
      mayManage ? installedCard : null,
      h('h2', null, t('apps.catalog')), catalog);

    const siteName = (id) => {
      const s = sites.find((x) => x.id === id);
      allowData(s ? s.name : id);
      return s ? s.name : id;
    };
    let apps = [];

    async function uninstall(inst, btn) {
      const sure = h('button', { type: 'button', class: 'btn btn-small btn-danger',
        'data-testid': 'uninstall-confirm' }, t('apps.uninstallnow'));
      const cell = btn.parentElement;
      clear(cell).append(h('span', { class: 'muted' }, t('apps.uninstallwhat')), ' ', sure);
      sure.addEventListener('click', async () => {
        sure.disabled = true;
        try {
          await api(`/apps/installations/${encodeURIComponent(inst.id)}`, { method: 'DELETE' });
          ctx.toast(t('apps.uninstalled', { app: inst.name }));
          await loadInstalled();
        } catch {
          sure.disabled = false;
          ctx.toast(t('error.save'), 'error');
        }
      });
      sure.focus();
    }

    async function showLogs(inst, tr) {
      const next = tr.nextElementSibling;
      if (next && next.getAttribute('data-testid') === 'instance-logs') {
        next.remove();
        return;
      }
      const lines = await api(`/apps/installations/${encodeURIComponent(inst.id)}/logs?limit=50`);
      const body = lines.length
        ? h('ol', { class: 'log-lines' }, lines.map((x) => {
          allowData(x.text, x.stream, x.level);
          return raw(`${x.stream} ${x.level}: ${x.text}`, 'li');
        }))
        : h('p', { class: 'muted' }, t('apps.nologs'));
      tr.after(h('tr', { 'data-testid': 'instance-logs', 'data-installation': inst.id },
        h('td', { colspan: 6 }, body)));
    }

    async function loadInstalled() {
      if (!mayManage) return;
      const rows = await api('/apps/installations');
      clear(installed);
      installedCard.querySelector('[data-testid="installed-empty"]').hidden = rows.length > 0;
      for (const inst of rows) {
        const app = apps.find((a) => a.app_id === inst.app_id);
        const btn = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'uninstall' },
          t('apps.uninstall'));
        btn.addEventListener('click', () => uninstall(inst, btn));
        const logBtn = h('button', { type: 'button', class: 'btn btn-small',
          'data-testid': 'instance-logs-open' }, t('apps.logs'));
        allowData(inst.version);
        const state = inst.status.state;
        const use = state === 'running' ? t('apps.use', { cpu: num(inst.status.cpu_s, 1),
          mb: num(inst.status.rss_mb, 0) }) : null;
        const tr = h('tr', { 'data-testid': 'installation-row', 'data-installation': inst.id,
          'data-app': inst.app_id, 'data-status': state },
        h('td', null, raw(app ? appName(app.manifest, inst.name) : inst.name)),
        h('td', null, raw(inst.version)),
        h('td', null, raw(inst.site_ids.map(siteName).join(', '))),
        h('td', { 'data-testid': 'installation-status' },
          tMaybe(`apps.state.${state.replace(' ', '_')}`) || state,
          use ? h('span', { class: 'muted' }, ` · ${use}`) : null,
          inst.status.last_exit_reason
            ? raw(` · ${inst.status.last_exit_reason}`, 'span', { class: 'muted' }) : null),
        h('td', null, dateTime(inst.installed_at)),
        h('td', { class: 'actions' }, logBtn, ' ', btn));
        logBtn.addEventListener('click', () => showLogs(inst, tr));
        installed.append(tr);
      }
    }

    function installDialog(app) {
      const m = app.manifest;
      const props = (m.settings && m.settings.properties) || {};
      const siteChecks = sites.map((s) => {
        allowData(s.name);
        const box = h('input', { type: 'checkbox', value: s.id, 'data-testid': 'install-site' });
        box.checked = sites.length === 1 || (ctx.site && s.id === ctx.site.id);
        return h('label', { class: 'check' }, box, raw(s.name));
      });
      const fields = Object.entries(props).map(([k, spec]) => settingField(k, spec));
      const accept = h('input', { type: 'checkbox', 'data-testid': 'install-accept' });
      const ok = h('button', { type: 'button', class: 'btn', 'data-testid': 'install-ok',
        disabled: true }, t('apps.install'));
      const cancel = h('button', { type: 'button', class: 'btn', 'data-testid': 'install-cancel' },
        t('admin.cancel'));
      const error = h('p', { class: 'error', role: 'alert', hidden: true, 'data-testid': 'install-error' });
      accept.addEventListener('change', () => { ok.disabled = !accept.checked; });
      const dlg = h('dialog', { class: 'dialog card', 'data-testid': 'install-dialog',
        'aria-labelledby': 'install-title' },
      h('h2', { id: 'install-title' }, t('apps.installtitle', { app: appName(m, app.name) })),
      h('fieldset', { class: 'checks' }, h('legend', null, t('apps.sites')), siteChecks),
      fields.length ? h('fieldset', { class: 'checks' }, h('legend', null, t('apps.settings')), fields)
        : null,
      h('p', { class: 'field-label' }, t('apps.asks')),
      permList(m.permissions || []),
      h('label', { class: 'check' }, accept, t('apps.accept')),
      error,
      h('div', { class: 'toolbar' }, cancel, ok));
      cancel.addEventListener('click', () => dlg.close());
      dlg.addEventListener('close', () => dlg.remove());
      ok.addEventListener('click', async () => {
        const chosen = siteChecks.map((l) => l.querySelector('input')).filter((b) => b.checked)
          .map((b) => b.value);
        if (!chosen.length) {
          error.textContent = t('apps.needsite');
          error.hidden = false;
          return;
        }
        const settings = {};
        for (const f of fields) {
          const el = f.querySelector('[data-setting]');
          const name = el.getAttribute('data-setting');
          settings[name] = settingValue(el, props[name]);
        }
        ok.disabled = true;
        try {
          await api('/apps/installations', { method: 'POST', body: {
            app_id: app.app_id, version: app.version, site_ids: chosen,
            accepted_permissions: m.permissions || [], settings } });
          dlg.close();
          ctx.toast(t('apps.installedok', { app: appName(m, app.name) }));
          await loadInstalled();
        } catch (e) {
          ok.disabled = false;
          error.textContent = t('apps.installfailed');
          if (e && e.detail) error.append(' ', raw(String(JSON.stringify(e.detail)).slice(0, 300)));
          error.hidden = false;
        }
      });
      document.body.append(dlg);
      dlg.showModal();
    }

    function appCard(a) {
      const m = a.manifest;
      allowData(a.vendor, a.version, a.category, m.licence);
      const install = mayManage ? h('button', { type: 'button', class: 'btn',
        'data-testid': 'install' }, t('apps.install')) : null;
      install?.addEventListener('click', () => installDialog(a));
      const desc = m.description ? appName({ name: m.description }) : '';
      return h('section', { class: 'card app-card', 'data-testid': 'catalog-app', 'data-app': a.app_id },
        h('h3', null, raw(appName(m, a.name)), ' ', raw(a.version, 'span', { class: 'muted' })),
        h('p', { class: 'muted' }, raw(a.vendor), ' · ',
          tMaybe(`apps.category.${a.category}`) || raw(a.category), ' · ', raw(m.licence || '')),
        desc ? raw(desc, 'p') : null,
        h('p', { class: 'field-label' }, t('apps.asks')),
        permList(m.permissions || []),
        h('p', { class: 'field-label' }, t('apps.claims')),
        claimsTable(m, a.figures),
        h('div', { class: 'toolbar' }, install));
    }

    apps = await api('/apps/catalog', { signal: ctx.signal });
    clear(catalog);
    if (!apps.length) catalog.append(h('p', { class: 'muted' }, t('apps.nocatalog')));
    for (const a of apps) catalog.append(appCard(a));
    await loadInstalled();
    ctx.ready();
    ctx.every(10_000, () => loadInstalled().catch(() => {}));
  },
};
