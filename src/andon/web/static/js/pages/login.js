// Login: email and password for a token pair (kept in sessionStorage by api.js).

import { login } from '../api.js';
import { h } from '../dom.js';
import { t } from '../i18n.js';

export default {
  render(root, _params, ctx) {
    const email = h('input', { type: 'email', id: 'login-email', name: 'email', required: true,
      autocomplete: 'username', 'data-testid': 'login-email', class: 'input' });
    const pw = h('input', { type: 'password', id: 'login-password', name: 'password',
      required: true, autocomplete: 'current-password', 'data-testid': 'login-password',
      class: 'input' });
    const err = h('p', { class: 'error', role: 'alert', 'data-testid': 'login-error', hidden: true });
    const submit = h('button', { type: 'submit', class: 'btn btn-primary btn-big',
      'data-testid': 'login-submit' }, t('login.submit'));
    const form = h('form', { class: 'login-form card', 'data-testid': 'login-form',
      'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }),
      t('login.title')),
    h('label', { for: 'login-email' }, t('login.email')), email,
    h('label', { for: 'login-password' }, t('login.password')), pw,
    err, submit,
    h('div', { class: 'login-lang' }, h('label', null, t('shell.language'), ' ', ctx.langSwitcher())));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      err.hidden = true;
      submit.disabled = true;
      try {
        await login(email.value.trim(), pw.value);
        await ctx.done();
      } catch (ex) {
        err.textContent = ex.status === 401 ? t('login.failed')
          : ex.status === 429 ? t('login.ratelimited') : t('error.network');
        err.hidden = false;
        submit.disabled = false;
        pw.select();
      }
    });
    root.append(form);
    email.focus();
    ctx.ready();
  },
};
