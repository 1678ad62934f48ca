// Sign up, log in, log out; forgotten passwords; accepting an invitation.

import { h } from '../dom.js';
import { api, post, session, ApiError } from '../api.js';
import { navigate, query } from '../router.js';

function field(id, label, input, help) {
  return h('div.field', h('label', { for: id }, label), input, help ? h('span.help', { id: `${id}-help` }, help) : null, h('span.error', { id: `${id}-error`, 'aria-live': 'polite' }));
}

function showFieldError(form, err) {
  form.querySelectorAll('[aria-invalid]').forEach((el) => el.removeAttribute('aria-invalid'));
  form.querySelectorAll('.field .error').forEach((el) => { el.textContent = ''; });
  const target = err.field && form.querySelector(`[name="${err.field}"]`);
  if (target) {
    target.setAttribute('aria-invalid', 'true');
    form.querySelector(`#${target.id}-error`).textContent = err.message;
    target.focus();
  } else {
    form.querySelector('.form-error').textContent = err.message;
  }
}

function frame(main, title, sub, form, footer) {
  document.title = `${title} · CloudSpend`;
  main.append(h('div.auth',
    h('a.brand', { href: '/login' }, h('img', { src: '/favicon.svg', alt: '' }), 'CloudSpend'),
    h('div.card', h('h1', title), h('p.sub', sub), form),
    h('p', { style: { textAlign: 'center' } }, footer)));
  form.querySelector('input')?.focus();
}

function afterLogin(reply, ctx) {
  session.start(reply);
  ctx.me = null;
  ctx.openAnomalies = null;
  const next = query().get('next');
  navigate(next && next.startsWith('/') && !next.startsWith('//') ? next : '/', { replace: true });
}

export async function login(main, { ctx }) {
  if (session.token) { navigate('/', { replace: true }); return; }
  const form = h('form', { novalidate: true },
    field('email', 'Email', h('input', { id: 'email', name: 'email', type: 'email', autocomplete: 'username', required: true })),
    field('password', 'Password', h('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true })),
    h('p.form-error', { role: 'alert' }),
    h('button.btn', { type: 'submit', style: { width: '100%' } }, 'Log in'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const button = form.querySelector('button');
    button.disabled = true;
    try {
      afterLogin(await post('/api/auth/login', { email: form.email.value.trim(), password: form.password.value }), ctx);
    } catch (err) {
      showFieldError(form, err instanceof ApiError && err.status === 401 ? Object.assign(err, { field: null }) : err);
    } finally { button.disabled = false; }
  });
  form.append(h('p', { style: { textAlign: 'center', marginTop: '12px' } }, h('a', { href: '/forgot-password', 'data-testid': 'forgot-password' }, 'Forgot your password?')));
  frame(main, 'Log in', 'See where your cloud money goes.', form, ['New to CloudSpend? ', h('a', { href: `/signup${location.search}` }, 'Create an account')]);
}

export async function signup(main, { ctx }) {
  const form = h('form', { novalidate: true },
    field('tenant_name', 'Company or team', h('input', { id: 'tenant_name', name: 'tenant_name', type: 'text', autocomplete: 'organization', required: true }), 'Your workspace; you can invite colleagues later.'),
    field('email', 'Work email', h('input', { id: 'email', name: 'email', type: 'email', autocomplete: 'username', required: true })),
    field('password', 'Password', h('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'new-password', required: true, minlength: 10, 'aria-describedby': 'password-help' }), 'At least 10 characters.'),
    h('p.form-error', { role: 'alert' }),
    h('button.btn', { type: 'submit', style: { width: '100%' } }, 'Create account'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (form.password.value.length < 10) {
      showFieldError(form, { field: 'password', message: 'Use at least 10 characters.' });
      return;
    }
    const button = form.querySelector('button');
    button.disabled = true;
    try {
      afterLogin(await post('/api/auth/signup', {
        email: form.email.value.trim(), password: form.password.value, tenant_name: form.tenant_name.value.trim(),
      }), ctx);
    } catch (err) {
      showFieldError(form, err);
    } finally { button.disabled = false; }
  });
  frame(main, 'Create your account', 'Free, self-hosted cost intelligence for AWS. Takes a minute.', form, ['Already have an account? ', h('a', { href: '/login' }, 'Log in')]);
}

export async function logout(main, { ctx }) {
  ctx.me = null;
  ctx.openAnomalies = null;
  if (session.token) {
    try { await api('/api/auth/logout', { method: 'POST' }); } catch { /* the token may be gone already */ }
  }
  session.end();
  main.append(h('div.auth', h('div.card', h('h1', 'You are logged out'), h('p.sub', 'Your session token was revoked on the server.'), h('a.btn', { href: '/login' }, 'Log in again'))));
  document.title = 'Logged out · CloudSpend';
}

/** The token an e-mailed or handed-over link carries in its fragment (`#token=...`). */
function tokenFromLink() {
  return new URLSearchParams(location.hash.slice(1)).get('token') || '';
}

export async function forgotPassword(main) {
  const form = h('form', { novalidate: true },
    field('email', 'Email', h('input', { id: 'email', name: 'email', type: 'email', autocomplete: 'username', required: true })),
    h('p.form-error', { role: 'alert' }),
    h('button.btn', { type: 'submit', style: { width: '100%' } }, 'Send me a reset link'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const button = form.querySelector('button');
    button.disabled = true;
    try {
      const reply = await post('/api/auth/password-reset', { email: form.email.value.trim() });
      form.replaceWith(h('div.callout.ok', { role: 'status', 'data-testid': 'reset-requested' }, h('p', `Check your mailbox: ${reply.message}.`)));
    } catch (err) {
      showFieldError(form, err);
    } finally { button.disabled = false; }
  });
  frame(main, 'Reset your password', 'We e-mail a one-time link to the address of your account.', form, [h('a', { href: '/login' }, 'Back to log in')]);
}

export async function resetPassword(main) {
  const form = h('form', { novalidate: true },
    field('token', 'Reset code', h('input', { id: 'token', name: 'token', type: 'text', autocomplete: 'off', required: true, value: tokenFromLink() }), 'Filled in from the link in the e-mail.'),
    field('new_password', 'New password', h('input', { id: 'new_password', name: 'new_password', type: 'password', autocomplete: 'new-password', required: true, minlength: 10 }), 'At least 10 characters.'),
    h('p.form-error', { role: 'alert' }),
    h('button.btn', { type: 'submit', style: { width: '100%' } }, 'Set the new password'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (form.new_password.value.length < 10) {
      showFieldError(form, { field: 'new_password', message: 'Use at least 10 characters.' });
      return;
    }
    const button = form.querySelector('button');
    button.disabled = true;
    try {
      await post('/api/auth/password-reset/confirm', { token: form.token.value.trim(), new_password: form.new_password.value });
      // Every session of the account was revoked, this browser's too.
      session.end();
      history.replaceState(null, '', '/reset-password');
      form.replaceWith(h('div.callout.ok', { role: 'status' }, h('p', 'Your password is set and every session of the account was logged out. '), h('a.btn', { href: '/login' }, 'Log in')));
    } catch (err) {
      showFieldError(form, err);
    } finally { button.disabled = false; }
  });
  frame(main, 'Choose a new password', 'The link works once. Using it logs out every session of your account.', form, [h('a', { href: '/forgot-password' }, 'Ask for a new link')]);
}

export async function acceptInvitation(main, { ctx }) {
  const token = tokenFromLink();
  if (!session.token) {
    const next = encodeURIComponent(`/accept-invitation#token=${token}`);
    const choices = h('div.btn-group', { style: { justifyContent: 'center' } },
      h('a.btn', { href: `/login?next=${next}`, 'data-testid': 'invitation-login' }, 'Log in'),
      h('a.btn.btn-quiet', { href: `/signup?next=${next}` }, 'Create an account'));
    frame(main, 'You are invited', 'Log in with the address the invitation was sent to (or create an account with it), then accept.', choices, ['Invitations work once and expire after a week.']);
    return;
  }
  const form = h('form', { novalidate: true, 'data-testid': 'accept-form' },
    h('p', `You are logged in as ${session.info?.email ?? 'yourself'}. The invitation must be for this address.`),
    field('token', 'Invitation code', h('input', { id: 'token', name: 'token', type: 'text', autocomplete: 'off', required: true, value: token }), 'Filled in from the link.'),
    h('p.form-error', { role: 'alert' }),
    h('button.btn', { type: 'submit', style: { width: '100%' } }, 'Accept the invitation'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const button = form.querySelector('button');
    button.disabled = true;
    try {
      const reply = await post('/api/invitations/accept', { token: form.token.value.trim() });
      session.setTenant(reply.tenant.id);
      ctx.me = null;
      ctx.openAnomalies = null;
      navigate('/', { replace: true });
    } catch (err) {
      showFieldError(form, err);
    } finally { if (button.isConnected) button.disabled = false; }
  });
  frame(main, 'Join a team', 'Accepting makes you a member of the tenant that invited you, with the role it chose.', form, [h('a', { href: '/logout' }, 'Log in as someone else')]);
}
