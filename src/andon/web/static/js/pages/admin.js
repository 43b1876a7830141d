// Tenant administration (tenant-wide grants only): users with their roles, API keys (never
// their secrets) and the newest entries of the hash-chained audit log. With `user:write` a
// tenant admin adds a user with one role (at one site or all of them) and deletes users; with
// `apikey:write` creates a key (its secret is shown this once, with a copy button) and revokes
// keys. Deleting and revoking ask first, in a modal <dialog> (Esc cancels, focus stays in it).

import { api } from '../api.js';
import { clear, h, raw } from '../dom.js';
import { allowData, dateTime, t, tMaybe } from '../i18n.js';
import { card } from './common.js';

const AUDIT_ROWS = 200;
const ROLES = ['viewer', 'operator', 'engineer', 'manager', 'tenant-admin'];
// what each kind of key may hold (andon.platform.permissions.KEY_KIND_PERMISSIONS)
const KEY_PERMS = {
  app: ['tenant:read', 'site:read', 'telemetry:read', 'state:read', 'kpi:read'],
  edge: ['ingest:write', 'site:read'],
};
const TTL_DAYS = 90;

function table(testid, heads, rows) {
  return h('table', { class: 'data', 'data-testid': testid },
    h('thead', null, h('tr', null, heads.map((x) => h('th', { scope: 'col' }, x)))),
    h('tbody', null, rows));
}

const roleName = (r) => tMaybe(`role.${r}`) || r;
const permName = (p) => tMaybe(`perm.${p.replace(':', '_')}`) || p;

/** Why a request failed, for people: a translated sentence and the server's words as data. */
function failure(e) {
  const d = e && e.detail;
  let said = '';
  if (typeof d === 'string') said = d;
  else if (Array.isArray(d) && d.length) said = d.map((x) => `${(x.loc || []).slice(-1)[0]}: ${x.msg}`).join('; ');
  const what = e && e.status === 409 ? t('admin.err.conflict')
    : e && (e.status === 400 || e.status === 422) ? t('admin.err.invalid')
      : e && e.status === 403 ? t('forbidden.title') : t('error.save');
  return said ? [what, ' ', raw(said, 'span', { class: 'muted' })] : [what];
}

/** Ask before a destructive action: a modal dialog; resolves true when confirmed. */
function confirmDialog(title, body, okText) {
  return new Promise((resolve) => {
    const ok = h('button', { type: 'button', class: 'btn btn-danger', 'data-testid': 'confirm-ok' },
      okText);
    const cancel = h('button', { type: 'button', class: 'btn', 'data-testid': 'confirm-cancel' },
      t('admin.cancel'));
    const dlg = h('dialog', { class: 'dialog card', 'data-testid': 'confirm-dialog',
      'aria-labelledby': 'confirm-title', 'aria-describedby': 'confirm-body' },
    h('h2', { id: 'confirm-title' }, title),
    h('p', { id: 'confirm-body' }, body),
    h('div', { class: 'toolbar' }, cancel, ok));
    let answer = false;
    ok.addEventListener('click', () => {
      answer = true;
      dlg.close();
    });
    cancel.addEventListener('click', () => dlg.close());
    dlg.addEventListener('close', () => {
      dlg.remove();
      resolve(answer);
    });
    document.body.append(dlg);
    dlg.showModal();
    cancel.focus(); // the safe choice is the default one
  });
}

function field(label, control, hint) {
  return h('label', { class: 'field' }, h('span', { class: 'field-label' }, label), control,
    hint ? h('span', { class: 'muted field-hint' }, hint) : null);
}

export default {
  async render(root, _params, ctx) {
    const want = (p, fn) => (ctx.tenantWide(p) ? fn() : Promise.resolve(null));
    const mayUsers = ctx.tenantWide('user:write');
    const mayKeys = ctx.tenantWide('apikey:write');
    const sites = ctx.sites || [];
    const siteName = new Map(sites.map((s) => [s.id, s.name]));
    allowData(...sites.map((s) => s.name));
    const emails = new Map(); // user id -> email (the audit log names users by id)
    const myId = String(ctx.me.id).replace(/^user:/, '');

    const usersBody = h('div');
    const keysBody = h('div');
    const auditBody = h('div');
    root.append(h('div', { class: 'page-head' }, h('h1', null, t('nav.admin'))));

    // ---- users ---------------------------------------------------------------------------
    function grantText(g) {
      const where = g.site_id ? siteName.get(g.site_id) || g.site_id : t('admin.allsites');
      return `${roleName(g.role)} @ ${where}`;
    }

    function renderUsers(users) {
      clear(usersBody);
      for (const u of users) emails.set(u.id, u.email);
      allowData(...users.map((u) => u.email), ...sites.map((s) => s.id));
      const heads = [t('admin.email'), t('admin.roles'), t('admin.status'), t('admin.created')];
      if (mayUsers) heads.push(h('span', { class: 'sr-only' }, t('admin.actions')));
      usersBody.append(table('users-table', heads, users.map((u) => {
        const del = mayUsers && u.id !== myId
          ? h('button', { type: 'button', class: 'btn btn-small btn-danger',
            'data-testid': 'user-delete', 'data-user': u.id,
            'aria-label': t('admin.deleteuser', { email: u.email }) }, t('admin.delete'))
          : null;
        del?.addEventListener('click', () => deleteUser(u, del));
        return h('tr', { 'data-testid': 'user-row', 'data-user': u.id, 'data-email': u.email },
          h('td', null, raw(u.email)),
          h('td', null, u.grants.length ? u.grants.map(grantText).join(', ')
            : h('span', { class: 'muted' }, t('admin.noroles'))),
          h('td', null, u.disabled ? t('admin.disabled') : t('admin.active')),
          h('td', null, dateTime(u.created_at)),
          mayUsers ? h('td', null, del) : null);
      })));
    }

    async function loadUsers() {
      renderUsers(await api('/users', { signal: ctx.signal }));
    }

    // Ask first; on yes DELETE `path`, say `done`, reload the list and the audit log.
    async function confirmedDelete(btn, title, body, action, path, done, reload) {
      if (!await confirmDialog(title, body, action)) {
        btn.focus();
        return;
      }
      btn.disabled = true;
      try {
        await api(path, { method: 'DELETE' });
        ctx.toast(done);
        await reload();
        loadAudit();
      } catch (e) {
        btn.disabled = false;
        ctx.toast(failure(e), 'error');
      }
    }

    function deleteUser(u, btn) {
      return confirmedDelete(btn, t('admin.deleteuser.title'),
        t('admin.deleteuser.body', { email: u.email }), t('admin.delete'),
        `/users/${encodeURIComponent(u.id)}`, t('admin.userdeleted', { email: u.email }),
        loadUsers);
    }

    function userForm() {
      const email = h('input', { type: 'email', class: 'input', required: true, maxlength: 254,
        autocomplete: 'off', 'data-testid': 'new-user-email' });
      const pw = h('input', { type: 'password', class: 'input', required: true, minlength: 12,
        maxlength: 256, autocomplete: 'new-password', 'data-testid': 'new-user-password' });
      const role = h('select', { class: 'select', 'data-testid': 'new-user-role' },
        ROLES.map((r) => h('option', { value: r }, roleName(r))));
      role.value = 'operator';
      const site = h('select', { class: 'select', 'data-testid': 'new-user-site' },
        h('option', { value: '' }, t('admin.allsites')),
        sites.map((s) => h('option', { value: s.id, translate: 'no' }, s.name)));
      if (ctx.site) site.value = ctx.site.id;
      const err = h('p', { class: 'error', role: 'alert', 'data-testid': 'new-user-error',
        hidden: true });
      const submit = h('button', { type: 'submit', class: 'btn btn-primary',
        'data-testid': 'new-user-submit' }, t('admin.adduser'));
      const form = h('form', { class: 'admin-form', 'data-testid': 'new-user-form',
        'aria-labelledby': 'new-user-title' },
      h('h3', { id: 'new-user-title' }, t('admin.adduser')),
      h('div', { class: 'form-grid' },
        field(t('admin.email'), email),
        field(t('admin.password'), pw, t('admin.password.hint')),
        field(t('admin.role'), role),
        field(t('admin.scope'), site)),
      err, h('div', { class: 'toolbar' }, submit));
      form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        err.hidden = true;
        submit.disabled = true;
        try {
          // one call: the server checks the grant before it creates the user
          const created = await api('/users', { method: 'POST',
            body: { email: email.value.trim(), password: pw.value,
                    grants: [{ role: role.value, site_id: site.value || null }] } });
          ctx.toast(t('admin.useradded', { email: created.email }));
          form.reset();
          role.value = 'operator';
          if (ctx.site) site.value = ctx.site.id;
          await loadUsers();
          loadAudit();
        } catch (e) {
          clear(err).append(...failure(e));
          err.hidden = false;
        } finally {
          submit.disabled = false;
        }
      });
      return form;
    }

    // ---- keys ----------------------------------------------------------------------------
    function renderKeys(keys) {
      clear(keysBody);
      allowData(...keys.map((k) => k.name));
      const heads = [t('admin.name'), t('admin.kind'), t('admin.permissions'), t('admin.sites'),
        t('admin.expires'), t('admin.status')];
      if (mayKeys) heads.push(h('span', { class: 'sr-only' }, t('admin.actions')));
      keysBody.append(table('keys-table', heads, keys.map((k) => {
        const revoke = mayKeys && !k.revoked_at
          ? h('button', { type: 'button', class: 'btn btn-small btn-danger',
            'data-testid': 'key-revoke', 'data-key': k.id,
            'aria-label': t('admin.revokekey', { name: k.name }) }, t('admin.revoke'))
          : null;
        revoke?.addEventListener('click', () => revokeKey(k, revoke));
        return h('tr', { 'data-testid': 'key-row', 'data-key': k.id, 'data-name': k.name,
          'data-revoked': k.revoked_at ? '1' : '0' },
        h('td', null, raw(k.name)), h('td', null, tMaybe(`keykind.${k.kind}`) || k.kind),
        h('td', null, raw(k.permissions.join(', '))),
        h('td', null, k.site_ids.length
          ? raw(k.site_ids.map((s) => siteName.get(s) || s).join(', ')) : t('admin.allsites')),
        h('td', null, dateTime(k.expires_at)),
        h('td', null, k.revoked_at ? t('admin.revoked') : t('admin.active')),
        mayKeys ? h('td', null, revoke) : null);
      })));
      if (!keys.length) {
        keysBody.append(h('p', { class: 'muted', 'data-testid': 'keys-none' }, t('admin.nokeys')));
      }
    }

    async function loadKeys() {
      renderKeys(await api('/api-keys', { signal: ctx.signal }));
    }

    function revokeKey(k, btn) {
      return confirmedDelete(btn, t('admin.revokekey.title'),
        t('admin.revokekey.body', { name: k.name }), t('admin.revoke'),
        `/api-keys/${encodeURIComponent(k.id)}`, t('admin.keyrevoked', { name: k.name }),
        loadKeys);
    }

    /** The new key's secret, this once: a read-only field, a copy button and a warning. */
    function secretPanel(created, onDone) {
      const value = h('input', { class: 'input secret', readonly: true, translate: 'no',
        value: created.secret, 'data-testid': 'key-secret', spellcheck: 'false',
        'aria-label': t('admin.secret'), autocomplete: 'off' });
      const copied = h('span', { class: 'muted', role: 'status', 'data-testid': 'key-copied' });
      const copy = h('button', { type: 'button', class: 'btn', 'data-testid': 'key-copy' },
        t('admin.copy'));
      copy.addEventListener('click', async () => {
        value.select();
        let ok = false;
        try {
          await navigator.clipboard.writeText(created.secret);
          ok = true;
        } catch {
          // no clipboard API outside secure contexts (plain http on the plant network)
          ok = document.execCommand && document.execCommand('copy');
        }
        copied.textContent = ok ? t('admin.copied') : t('admin.copyfailed');
      });
      const done = h('button', { type: 'button', class: 'btn btn-primary',
        'data-testid': 'key-secret-done' }, t('admin.secretdone'));
      const panel = h('div', { class: 'secret-panel', 'data-testid': 'key-secret-panel',
        role: 'region', 'aria-labelledby': 'secret-title' },
      h('h3', { id: 'secret-title' }, t('admin.secret.title', { name: created.key.name })),
      h('p', { class: 'warn', 'data-testid': 'key-secret-warning' },
        h('span', { class: 'warn-icon', 'aria-hidden': 'true' }, '!'), t('admin.secret.warn')),
      h('div', { class: 'secret-row' }, value, copy), copied,
      h('div', { class: 'toolbar' }, done));
      done.addEventListener('click', () => {
        value.value = ''; // the secret leaves the page
        panel.remove();
        onDone();
      });
      return panel;
    }

    function keyForm() {
      const name = h('input', { type: 'text', class: 'input', required: true, maxlength: 200,
        autocomplete: 'off', 'data-testid': 'new-key-name' });
      const kind = h('select', { class: 'select', 'data-testid': 'new-key-kind' },
        Object.keys(KEY_PERMS).map((k) => h('option', { value: k }, tMaybe(`keykind.${k}`) || k)));
      const perms = h('fieldset', { class: 'checks', 'data-testid': 'new-key-permissions' },
        h('legend', null, t('admin.permissions')));
      const siteBoxes = h('fieldset', { class: 'checks', 'data-testid': 'new-key-sites' },
        h('legend', null, t('admin.sites')),
        h('p', { class: 'muted field-hint' }, t('admin.sites.hint')),
        sites.map((s) => h('label', { class: 'check' },
          h('input', { type: 'checkbox', value: s.id, 'data-testid': 'new-key-site' }),
          raw(s.name))));
      const ttl = h('input', { type: 'number', class: 'input', min: 1, max: 366, step: 1,
        required: true, value: String(TTL_DAYS), 'data-testid': 'new-key-ttl' });
      function fillPerms() {
        perms.querySelectorAll('label').forEach((x) => x.remove());
        for (const p of KEY_PERMS[kind.value]) {
          perms.append(h('label', { class: 'check' },
            h('input', { type: 'checkbox', value: p, checked: true,
              'data-testid': 'new-key-permission' }),
            permName(p), ' ', raw(p, 'code', { class: 'muted' })));
        }
      }
      kind.addEventListener('change', fillPerms);
      fillPerms();
      const err = h('p', { class: 'error', role: 'alert', 'data-testid': 'new-key-error',
        hidden: true });
      const submit = h('button', { type: 'submit', class: 'btn btn-primary',
        'data-testid': 'new-key-submit' }, t('admin.createkey'));
      const slot = h('div');
      const form = h('form', { class: 'admin-form', 'data-testid': 'new-key-form',
        'aria-labelledby': 'new-key-title' },
      h('h3', { id: 'new-key-title' }, t('admin.createkey')),
      h('div', { class: 'form-grid' },
        field(t('admin.name'), name),
        field(t('admin.kind'), kind),
        field(t('admin.ttl'), ttl, t('admin.ttl.hint'))),
      h('div', { class: 'form-grid' }, perms, siteBoxes),
      err, h('div', { class: 'toolbar' }, submit));
      form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        err.hidden = true;
        const chosen = [...perms.querySelectorAll('input:checked')].map((x) => x.value);
        if (!chosen.length) {
          clear(err).append(t('admin.err.noperm'));
          err.hidden = false;
          return;
        }
        submit.disabled = true;
        try {
          const created = await api('/api-keys', { method: 'POST', body: {
            name: name.value.trim(), kind: kind.value, permissions: chosen,
            site_ids: [...siteBoxes.querySelectorAll('input:checked')].map((x) => x.value),
            ttl_days: Number(ttl.value) } });
          form.reset();
          ttl.value = String(TTL_DAYS);
          fillPerms();
          clear(slot).append(secretPanel(created, () => name.focus()));
          slot.querySelector('[data-testid="key-secret"]').focus();
          await loadKeys();
          loadAudit();
        } catch (e) {
          clear(err).append(...failure(e));
          err.hidden = false;
        } finally {
          submit.disabled = false;
        }
      });
      return h('div', null, slot, form);
    }

    // ---- audit ---------------------------------------------------------------------------
    const actorName = (a) => {
      const m = /^user:(.+)$/.exec(a || '');
      return m && emails.get(m[1]) ? emails.get(m[1]) : a;
    };

    function renderAudit(rows) {
      clear(auditBody);
      auditBody.append(table('audit-table',
        [t('admin.when'), t('admin.actor'), t('admin.action'), t('admin.object'), t('admin.result')],
        rows.map((a) => h('tr', { 'data-testid': 'audit-row', 'data-seq': a.seq },
          h('td', null, dateTime(a.ts)), h('td', null, raw(actorName(a.actor))),
          h('td', { 'data-action': a.action }, tMaybe(`audit.${a.action}`) || raw(a.action)),
          h('td', null, raw(a.object)),
          h('td', null, tMaybe(`result.${a.result}`) || raw(a.result))))));
    }

    async function auditRows() {
      // the newest page: audit is oldest-first, so read forward from a recent sequence number
      let rows = await api('/audit', { query: { limit: 1000 }, signal: ctx.signal });
      while (rows.length === 1000) {
        const more = await api('/audit', { query: { limit: 1000, after_seq: rows.at(-1).seq },
          signal: ctx.signal });
        if (!more.length) break;
        rows = rows.slice(-AUDIT_ROWS).concat(more);
      }
      return rows.slice(-AUDIT_ROWS).reverse();
    }

    function loadAudit() {
      if (!ctx.tenantWide('audit:read')) return;
      auditRows().then((rows) => ctx.alive() && renderAudit(rows))
        .catch((e) => e.name !== 'AbortError' && console.warn('audit reload failed', e));
    }

    const [users, keys, audit] = await Promise.all([
      want('user:read', () => api('/users', { signal: ctx.signal })),
      want('apikey:read', () => api('/api-keys', { signal: ctx.signal })),
      want('audit:read', auditRows),
    ]);
    if (!ctx.alive()) return;
    if (users) {
      renderUsers(users);
      root.append(card(t('admin.users'), 'admin-users', usersBody, mayUsers ? userForm() : null));
    }
    if (keys) {
      renderKeys(keys);
      root.append(card(t('admin.keys'), 'admin-keys', keysBody, mayKeys ? keyForm() : null));
    }
    if (audit) {
      renderAudit(audit);
      root.append(card(t('admin.audit'), 'admin-audit', auditBody));
    }
    ctx.ready();
  },
};
