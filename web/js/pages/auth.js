// Sign up, log in, log out.

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
  frame(main, 'Log in', 'See where your cloud money goes.', form, ['New to CloudSpend? ', h('a', { href: '/signup' }, 'Create an account')]);
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
