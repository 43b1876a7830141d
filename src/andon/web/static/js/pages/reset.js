// Set a new password from a mailed one-time link (#/reset?token=…&tenant=…). The token
// stays in the fragment (browsers send it to no server, nor in a Referer) and leaves the
// address bar as soon as the page has it; it works once, before it expires.

import { anonymous } from '../api.js';
import { h } from '../dom.js';
import { t } from '../i18n.js';

const MIN_LENGTH = 12;

export default {
  render(root, params, ctx) {
    const token = params.get('token') || '';
    const tenant = params.get('tenant') || '';
    history.replaceState(null, '', `${location.pathname}#/reset`);
    const signIn = `#/login${tenant ? `?tenant=${encodeURIComponent(tenant)}` : ''}`;
    const pw = h('input', { type: 'password', id: 'reset-password', name: 'new-password',
      required: true, minlength: MIN_LENGTH, autocomplete: 'new-password', class: 'input',
      'data-testid': 'reset-password' });
    const again = h('input', { type: 'password', id: 'reset-again', name: 'again',
      required: true, minlength: MIN_LENGTH, autocomplete: 'new-password', class: 'input',
      'data-testid': 'reset-again' });
    const err = h('p', { class: 'error', role: 'alert', 'data-testid': 'reset-error', hidden: true });
    const submit = h('button', { type: 'submit', class: 'btn btn-primary btn-big',
      'data-testid': 'reset-submit' }, t('reset.submit'));
    const form = h('form', { class: 'login-form card', 'data-testid': 'reset-form',
      'aria-labelledby': 'reset-title' },
    h('h1', { id: 'reset-title' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }),
      t('reset.title')),
    tenant ? h('p', { class: 'muted', 'data-testid': 'reset-tenant' },
      t('reset.for', { tenant })) : null,
    h('label', { for: 'reset-password' }, t('reset.password')), pw,
    h('p', { class: 'muted' }, t('reset.rule', { n: MIN_LENGTH })),
    h('label', { for: 'reset-again' }, t('reset.again')), again,
    err, submit,
    h('a', { href: signIn, class: 'login-forgot' }, t('reset.back')),
    h('div', { class: 'login-lang' }, h('label', null, t('shell.language'), ' ', ctx.langSwitcher())));
    const show = (text) => {
      err.textContent = text;
      err.hidden = false;
    };
    if (!token) {
      show(t('reset.invalid'));
      submit.disabled = true;
    }
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      err.hidden = true;
      if (pw.value !== again.value) {
        show(t('reset.mismatch'));
        again.select();
        return;
      }
      submit.disabled = true;
      try {
        await anonymous('/auth/reset', { method: 'POST', body: { token, new_password: pw.value } });
      } catch (ex) {
        show(ex.status === 401 ? t('reset.invalid')
          : ex.status === 422 ? t('reset.rule', { n: MIN_LENGTH }) : t('error.network'));
        submit.disabled = ex.status === 401;
        return;
      }
      form.replaceChildren(
        h('h1', { id: 'reset-title' }, t('reset.done.title')),
        h('p', { 'data-testid': 'reset-done', role: 'status' }, t('reset.done')),
        h('a', { href: signIn, class: 'btn btn-primary btn-big', 'data-testid': 'reset-signin' },
          t('login.submit')),
      );
    });
    root.append(form);
    pw.focus();
    ctx.ready();
  },
};
