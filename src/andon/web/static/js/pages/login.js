// Login: email and password (and, for an email with accounts in several organisations, the
// organisation) for a token pair (kept in sessionStorage by api.js); "Sign in with
// <provider>" when single sign-on is configured, "Forgot password?" when reset mails are.
// The provider sends the browser back here with ?code=&state=: this page finishes that
// sign-in and takes them out of the address bar.

import { anonymous, login, ssoLogin } from '../api.js';
import { h } from '../dom.js';
import { t } from '../i18n.js';

/** The organisation named in the route (`#/login?tenant=ta`, the reset page's link). */
function routeTenant() {
  const q = location.hash.split('?')[1] || '';
  return new URLSearchParams(q).get('tenant') || '';
}

/** The sign-in the provider sent back (code and state in the query), once. */
function takeSsoReturn() {
  const q = new URLSearchParams(location.search);
  const code = q.get('code');
  const state = q.get('state');
  const error = q.get('error');
  if (!code && !state && !error) return null;
  history.replaceState(null, '', location.pathname + location.hash);
  return { code, state, error };
}

export default {
  async render(root, _params, ctx) {
    const email = h('input', { type: 'email', id: 'login-email', name: 'email', required: true,
      autocomplete: 'username', 'data-testid': 'login-email', class: 'input' });
    const pw = h('input', { type: 'password', id: 'login-password', name: 'password',
      required: true, autocomplete: 'current-password', 'data-testid': 'login-password',
      class: 'input' });
    const tenant = h('input', { type: 'text', id: 'login-tenant', name: 'tenant',
      autocomplete: 'organization', 'data-testid': 'login-tenant', class: 'input',
      pattern: '[A-Za-z0-9][A-Za-z0-9_\\-]{0,62}', value: routeTenant(),
      'aria-describedby': 'login-tenant-hint' });
    const err = h('p', { class: 'error', role: 'alert', 'data-testid': 'login-error', hidden: true });
    const submit = h('button', { type: 'submit', class: 'btn btn-primary btn-big',
      'data-testid': 'login-submit' }, t('login.submit'));
    const extras = h('div', { class: 'login-extras', 'data-testid': 'login-extras' });
    const form = h('form', { class: 'login-form card', 'data-testid': 'login-form',
      'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }),
      t('login.title')),
    h('label', { for: 'login-email' }, t('login.email')), email,
    h('label', { for: 'login-password' }, t('login.password')), pw,
    h('details', { class: 'login-tenant', open: tenant.value ? true : undefined },
      h('summary', null, t('login.tenant.more')),
      h('label', { for: 'login-tenant' }, t('login.tenant')), tenant,
      h('p', { id: 'login-tenant-hint', class: 'muted' }, t('login.tenant.hint'))),
    err, submit, extras,
    h('div', { class: 'login-lang' }, h('label', null, t('shell.language'), ' ', ctx.langSwitcher())));
    const fail = (text) => {
      err.textContent = text;
      err.hidden = false;
    };
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      err.hidden = true;
      submit.disabled = true;
      try {
        await login(email.value.trim(), pw.value, tenant.value.trim().toLowerCase());
        await ctx.done();
      } catch (ex) {
        fail(ex.status === 401 ? t('login.failed')
          : ex.status === 429 ? t('login.ratelimited') : t('error.network'));
        submit.disabled = false;
        pw.select();
      }
    });
    root.append(form);

    const back = takeSsoReturn();
    if (back) {
      if (back.code && back.state) {
        try {
          await ssoLogin(back.code, back.state);
          await ctx.done();
          return;
        } catch (ex) {
          console.error(ex);
        }
      }
      if (ctx.alive()) fail(t('login.sso.failed'));
    }
    if (!ctx.alive()) return;
    email.focus();
    try {
      const options = await anonymous('/auth/options');
      if (!ctx.alive()) return;
      if (options.sso) {
        const sso = h('button', { type: 'button', class: 'btn btn-big', 'data-testid': 'login-sso' },
          t('login.sso', { name: options.sso }));
        sso.addEventListener('click', async () => {
          sso.disabled = true;
          err.hidden = true;
          try {
            const started = await anonymous('/auth/oidc/start');
            location.assign(started.authorization_url);
          } catch (ex) {
            console.error(ex);
            fail(t('login.sso.unavailable'));
            sso.disabled = false;
          }
        });
        extras.append(h('p', { class: 'login-or muted' }, t('login.or')), sso);
      }
      if (options.password_reset) {
        extras.append(h('a', { href: '#/forgot', class: 'login-forgot',
          'data-testid': 'login-forgot' }, t('login.forgot')));
      }
    } catch (ex) {
      console.error(ex); // the password form works without the options
    }
    ctx.ready();
  },
};
