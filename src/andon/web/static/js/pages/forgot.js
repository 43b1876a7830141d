// Ask for a password-reset link by mail. The answer is the same whether the address has an
// account or not (the server says so before any mail is sent); an address with accounts in
// several organisations gets one link per account, or only the named organisation's.

import { anonymous } from '../api.js';
import { h } from '../dom.js';
import { t } from '../i18n.js';

export default {
  render(root, params, ctx) {
    const email = h('input', { type: 'email', id: 'forgot-email', name: 'email', required: true,
      autocomplete: 'username', class: 'input', 'data-testid': 'forgot-email' });
    const tenant = h('input', { type: 'text', id: 'forgot-tenant', name: 'tenant',
      autocomplete: 'organization', class: 'input', 'data-testid': 'forgot-tenant',
      pattern: '[A-Za-z0-9][A-Za-z0-9_\\-]{0,62}', value: params.get('tenant') || '' });
    const err = h('p', { class: 'error', role: 'alert', 'data-testid': 'forgot-error', hidden: true });
    const submit = h('button', { type: 'submit', class: 'btn btn-primary btn-big',
      'data-testid': 'forgot-submit' }, t('forgot.submit'));
    const form = h('form', { class: 'login-form card', 'data-testid': 'forgot-form',
      'aria-labelledby': 'forgot-title' },
    h('h1', { id: 'forgot-title' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }),
      t('forgot.title')),
    h('p', { class: 'muted' }, t('forgot.intro')),
    h('label', { for: 'forgot-email' }, t('login.email')), email,
    h('label', { for: 'forgot-tenant' }, t('login.tenant')), tenant,
    h('p', { class: 'muted' }, t('forgot.tenant.hint')),
    err, submit,
    h('a', { href: '#/login', class: 'login-forgot' }, t('reset.back')),
    h('div', { class: 'login-lang' }, h('label', null, t('shell.language'), ' ', ctx.langSwitcher())));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      err.hidden = true;
      submit.disabled = true;
      const body = { email: email.value.trim() };
      if (tenant.value.trim()) body.tenant = tenant.value.trim().toLowerCase();
      try {
        await anonymous('/auth/reset-request', { method: 'POST', body });
      } catch (ex) {
        err.textContent = ex.status === 429 ? t('login.ratelimited') : t('error.network');
        err.hidden = false;
        submit.disabled = false;
        return;
      }
      form.replaceChildren(
        h('h1', { id: 'forgot-title' }, t('forgot.title')),
        h('p', { 'data-testid': 'forgot-sent', role: 'status' }, t('forgot.sent')),
        h('a', { href: '#/login', class: 'login-forgot' }, t('reset.back')),
      );
    });
    root.append(form);
    email.focus();
    ctx.ready();
  },
};
