// Settings: members and roles, alert subscriptions, the AWS connection, and this session.

import { h, toast } from '../dom.js';
import { get, post, put, del, session, ApiError } from '../api.js';
import { navigate } from '../router.js';
import { dateTime, money, percent } from '../format.js';
import { pageHead, card, badge, table, csvButton, actionButton, notYet, errorBox } from '../ui.js';

const rerender = () => navigate('/settings', { replace: true });

function formError(form, err) {
  form.querySelectorAll('[aria-invalid]').forEach((el) => el.removeAttribute('aria-invalid'));
  const target = err.field && form.elements[err.field];
  if (target) target.setAttribute('aria-invalid', 'true');
  form.querySelector('.form-error').textContent = err.message;
}

function members(data, me, invitations) {
  const canManage = ['owner', 'admin'].includes(me.current_tenant?.role);
  const columns = [
    { label: 'Email', value: (m) => m.email },
    { label: 'Role', value: (m) => m.role, render: (m) => badge(m.role, 'neutral') },
    { label: 'Member since', value: (m) => dateTime(m.since) },
    { label: 'Actions', value: () => '', noCsv: true, render: (m) => (canManage || m.user_id === me.user.id)
      ? actionButton(m.user_id === me.user.id ? 'Leave' : 'Remove', async () => {
        if (!window.confirm(m.user_id === me.user.id ? 'Leave this tenant?' : `Remove ${m.email} from this tenant?`)) return;
        await del(`/api/tenants/members/${m.user_id}`);
        toast(`${m.email} removed`);
        rerender();
      }, { small: true, kind: 'quiet', label: `Remove ${m.email}` }) : '' },
  ];
  const shown = h('div', { 'data-slot': 'invitation' });
  const form = h('form', { novalidate: true, 'data-testid': 'member-form' },
    h('div.row',
      h('div.field', h('label', { for: 'm-email' }, 'Email'), h('input', { id: 'm-email', name: 'email', type: 'email', required: true, placeholder: 'colleague@example.com' }), h('span.help', 'They get an invitation and join when they accept it, logged in with this address. Entering a member\u2019s address changes their role.')),
      h('div.field', h('label', { for: 'm-role' }, 'Role'), h('select', { id: 'm-role', name: 'role' },
        h('option', { value: 'viewer' }, 'Viewer: sees everything, changes nothing'),
        h('option', { value: 'admin' }, 'Admin: connects AWS, manages members'),
        h('option', { value: 'owner' }, 'Owner: everything, including owners')))),
    h('p.form-error', { role: 'alert' }),
    h('button.btn', { type: 'submit' }, 'Invite or change role'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    form.querySelector('.form-error').textContent = '';
    try {
      const reply = await post('/api/tenants/members', { email: form.elements.email.value.trim(), role: form.elements.role.value });
      if (!reply.invitation) {
        toast(`${reply.email} is now ${reply.role}`);
        rerender();
        return;
      }
      const fresh = await membersCard(me);
      const slot = fresh.querySelector('[data-slot="invitation"]');
      slot.replaceChildren(reply.emailed
        ? h('div.callout.ok', { role: 'status', tabindex: '-1' }, h('p', `Invitation e-mailed to ${reply.invitation.email}. They join when they accept it.`))
        : shownOnce('Invitation link', `${location.origin}${reply.accept_path}`,
          `this server sends no e-mail: give the link to ${reply.invitation.email} yourself. It works once, for whoever logs in as that address, until ${dateTime(reply.invitation.expires_at)}.`, 'invitation-link'));
      document.getElementById('members').replaceWith(fresh);
      slot.querySelector('.callout')?.focus();
    } catch (err) { formError(form, err); }
  });
  const pending = canManage ? invitationsTable(invitations) : null;
  return card('Members and roles', h('div', table(columns, data.members, { caption: 'Members' }), pending, shown,
    canManage ? h('div', { style: { marginTop: '16px' } }, form) : h('p', 'Only owners and admins manage members.')),
  { actions: [csvButton('cloudspend-members.csv', columns, data.members)], id: 'members' });
}

function invitationsTable(invitations) {
  if (!invitations?.length) return null;
  const columns = [
    { label: 'Invited', value: (i) => i.email },
    { label: 'Role', value: (i) => i.role, render: (i) => badge(i.role, 'neutral') },
    { label: 'Sent', value: (i) => dateTime(i.created_at) },
    { label: 'Expires', value: (i) => dateTime(i.expires_at) },
    { label: 'Actions', value: () => '', render: (i) => actionButton('Revoke', async () => {
      if (!window.confirm(`Revoke the invitation of ${i.email}? Its link stops working.`)) return;
      await del(`/api/tenants/invitations/${i.id}`);
      toast('Invitation revoked');
      rerender();
    }, { small: true, kind: 'quiet', label: `Revoke the invitation of ${i.email}` }) },
  ];
  return h('div', { style: { marginTop: '16px' } }, h('h3', 'Pending invitations'),
    table(columns, invitations, { caption: 'Pending invitations', testid: 'invitations' }));
}

async function membersCard(me) {
  const [data, invitations] = await Promise.all([
    get('/api/tenants/members'),
    canManage(me) ? get('/api/tenants/invitations').then((d) => d.invitations) : Promise.resolve([]),
  ]);
  return members(data, me, invitations);
}

const canManage = (me) => ['owner', 'admin'].includes(me.current_tenant?.role);

/** A labelled control with its help and an inline error, wired with aria-describedby. */
function field(id, label, control, help) {
  control.setAttribute('aria-describedby', [`${id}-error`, help ? `${id}-help` : null].filter(Boolean).join(' '));
  return h('div.field', h('label', { for: id }, label), control,
    help ? h('span.help', { id: `${id}-help` }, help) : null,
    h('span.error', { id: `${id}-error`, 'aria-live': 'polite' }));
}

/** Sets (or clears, with no message) the inline error of the form's control `name`. */
function fieldError(form, name, message) {
  const input = form.elements[name];
  if (!input) return !message;
  const out = form.querySelector(`#${input.id}-error`);
  if (message) input.setAttribute('aria-invalid', 'true'); else input.removeAttribute('aria-invalid');
  if (out) out.textContent = message || '';
  return !message;
}

/** Shows an API error on its field when it names one, else under the form. */
function apiFormError(form, err) {
  form.querySelector('.form-error').textContent = '';
  if (err.field && form.elements[err.field]) { fieldError(form, err.field, err.message); form.elements[err.field].focus(); } else form.querySelector('.form-error').textContent = err.message;
}

/** A secret shown once, with a copy button. */
function shownOnce(label, value, note, testid) {
  const code = h('code', { 'data-testid': testid }, value);
  const copy = h('button.btn.btn-small', { type: 'button', on: { click: async () => {
    try {
      await navigator.clipboard.writeText(value);
      copy.textContent = 'Copied';
    } catch {
      // No clipboard permission (plain http, an old browser): select it for Ctrl+C.
      const range = document.createRange(); range.selectNodeContents(code);
      const sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(range);
      copy.textContent = 'Selected: press Ctrl+C';
    }
  } } }, 'Copy');
  return h('div.callout.warn', { role: 'status', tabindex: '-1' },
    h('div', { style: { flex: '1 1 100%' } },
      h('p', h('strong', `${label} (shown once): `), note),
      h('div.secret', code, copy)));
}

const WEBHOOK_RE = /^https?:\/\/[^\s/?#@]+(?:[/?#]\S*)?$/i;
const EMAIL_RE = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

/** Each field's problem (or null), checked the way the API checks it. */
function subscriptionProblems(form) {
  const f = form.elements;
  const name = f.name.value.trim();
  const target = f.target.value.trim();
  const threshold = f.threshold.value.trim();
  const percent = f.threshold_kind.value === 'percent';
  return {
    name: !name ? 'Give the alert a name.' : name.length > 100 ? 'At most 100 characters.' : null,
    target: f.channel.value === 'webhook'
      ? (!WEBHOOK_RE.test(target) ? 'Enter an http:// or https:// URL, such as https://hooks.example.com/cloudspend.' : /\/\/[^/]*@/.test(target) ? 'Put no credentials in the URL: verify deliveries with the signing secret.' : null)
      : (!EMAIL_RE.test(target) ? 'Enter an email address, such as ops@example.com.' : null),
    threshold: !/^\d+(\.\d{1,9})?$/.test(threshold)
      ? (percent ? 'Enter a percentage such as 20.' : 'Enter an amount such as 100.00.')
      : percent && Number(threshold) > 100000 ? 'At most 100000 percent.' : null,
  };
}

function validateSubscription(form) {
  return Object.entries(subscriptionProblems(form)).map(([name, problem]) => fieldError(form, name, problem)).every(Boolean);
}

async function alerts(me, subsPromise) {
  let data;
  try {
    data = await subsPromise;
  } catch (err) {
    if (err instanceof ApiError && err.missingEndpoint) return card('Alert subscriptions', notYet('Alerting'), { id: 'alerts' });
    throw err;
  }
  const manage = canManage(me);
  const columns = [
    { label: 'Name', value: (s) => s.name },
    { label: 'Channel', value: (s) => s.channel, render: (s) => badge(s.channel, 'neutral') },
    { label: 'Target', value: (s) => s.target, cls: 'key' },
    { label: 'Alert when', value: (s) => (s.threshold_kind === 'percent' ? `impact over ${s.threshold}% of expected` : `impact over $${s.threshold}`) },
    { label: 'Frequency', value: (s) => (s.frequency === 'daily' ? 'daily digest' : 'immediately') },
    { label: 'Created', value: (s) => dateTime(s.created_at) },
    { label: 'Actions', value: () => '', noCsv: true, render: (s) => (manage ? h('div.cell-actions',
      actionButton('Send test', async () => {
        await post(`/api/alerts/subscriptions/${s.id}/test`, {});
        toast(`Test alert queued for "${s.name}": see the delivery log below`);
        setTimeout(() => document.getElementById('deliveries-reload')?.click(), 2500);
      }, { small: true, label: `Send a test alert to ${s.name}`, testid: `test-${s.id}` }),
      actionButton('Delete', async () => {
        if (!window.confirm(`Delete the alert "${s.name}" and its delivery log?`)) return;
        await del(`/api/alerts/subscriptions/${s.id}`);
        toast('Alert deleted');
        rerender();
      }, { small: true, kind: 'quiet', label: `Delete alert ${s.name}` })) : '') },
  ];
  const list = h('div', table(columns, data.subscriptions, { caption: 'Alert subscriptions', testid: 'subscriptions', empty: 'No alerts yet: add one below to hear about anomalies and budget thresholds without opening the dashboard.' }));
  const secret = h('div');
  const form = h('form', { novalidate: true, 'data-testid': 'subscription-form' },
    h('div.row',
      field('a-name', 'Name', h('input', { id: 'a-name', name: 'name', type: 'text', required: true, maxlength: 100, placeholder: 'FinOps channel', autocomplete: 'off' })),
      field('a-channel', 'Channel', h('select', { id: 'a-channel', name: 'channel' }, h('option', { value: 'webhook' }, 'Webhook (signed POST)'), h('option', { value: 'email' }, 'Email')))),
    field('a-target', 'Target', h('input', { id: 'a-target', name: 'target', type: 'text', required: true, placeholder: 'https://hooks.example.com/cloudspend', autocomplete: 'off' }),
      'Webhooks get a JSON POST signed with X-CloudSpend-Signature; email needs SMTP on the server.'),
    h('div.row',
      field('a-kind', 'Alert when the impact is over', h('select', { id: 'a-kind', name: 'threshold_kind' }, h('option', { value: 'absolute' }, 'an amount (USD)'), h('option', { value: 'percent' }, 'a percentage of expected'))),
      field('a-threshold', 'Threshold', h('input', { id: 'a-threshold', name: 'threshold', type: 'text', inputmode: 'decimal', required: true, placeholder: '100.00' }))),
    field('a-frequency', 'Frequency', h('select', { id: 'a-frequency', name: 'frequency' }, h('option', { value: 'immediate' }, 'Immediately'), h('option', { value: 'daily' }, 'Daily digest'))),
    h('p.form-error', { role: 'alert' }),
    h('button.btn', { type: 'submit', 'data-testid': 'subscription-submit' }, 'Add alert'));
  const f = form.elements;
  f.channel.addEventListener('change', () => { f.target.placeholder = f.channel.value === 'email' ? 'ops@example.com' : 'https://hooks.example.com/cloudspend'; fieldError(form, 'target', null); });
  f.threshold_kind.addEventListener('change', () => { f.threshold.placeholder = f.threshold_kind.value === 'percent' ? '20' : '100.00'; });
  // A flagged field loses its error as soon as it is corrected (while typing, so nothing moves
  // under the pointer on the way to the submit button).
  for (const name of ['name', 'target', 'threshold']) {
    f[name].addEventListener('input', () => { if (f[name].getAttribute('aria-invalid') && !subscriptionProblems(form)[name]) fieldError(form, name, null); });
  }
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    form.querySelector('.form-error').textContent = '';
    if (!validateSubscription(form)) { form.querySelector('[aria-invalid=true]')?.focus(); return; }
    const submit = form.querySelector('button[type=submit]');
    submit.disabled = true;
    try {
      const created = await post('/api/alerts/subscriptions', {
        name: f.name.value.trim(), channel: f.channel.value, target: f.target.value.trim(),
        threshold_kind: f.threshold_kind.value, threshold: f.threshold.value.trim(), frequency: f.frequency.value,
      });
      toast(`Alert "${created.name}" added`);
      // Redraw the list now (keeping the secret on screen): the secret is never shown again.
      const fresh = await get('/api/alerts/subscriptions');
      const redrawn = await alerts(me, Promise.resolve(fresh));
      redrawn.querySelector('[data-slot="secret"]').replaceChildren(created.signing_secret
        ? shownOnce('Signing secret', created.signing_secret, `keep it with the receiver of "${created.name}": each POST carries X-CloudSpend-Signature: sha256=<hex HMAC-SHA256 of the body> made with it. It is not shown again.`, 'signing-secret')
        : h('div.callout.ok', h('p', `Alert "${created.name}" added.`)));
      document.getElementById('alerts').replaceWith(redrawn);
      redrawn.querySelector('[data-slot="secret"] .callout')?.focus();
    } catch (err) { apiFormError(form, err); } finally { submit.disabled = false; }
  });
  secret.dataset.slot = 'secret';
  return card('Alert subscriptions', h('div',
    h('p.card-intro', 'Get told when an anomaly appears or a budget threshold is crossed: by email or a signed webhook.'),
    list, secret,
    manage ? h('div.subform', h('h3', 'New alert'), form) : h('p', 'Only owners and admins add, test or delete alerts.')),
  { actions: [csvButton('cloudspend-alerts.csv', columns, data.subscriptions)], id: 'alerts' });
}

async function deliveries(subsPromise) {
  let data; let subs;
  try {
    [data, subs] = await Promise.all([get('/api/alerts/deliveries?limit=100'), subsPromise.catch(() => ({ subscriptions: [] }))]);
  } catch (err) {
    if (err instanceof ApiError && err.missingEndpoint) return null;
    throw err;
  }
  const names = new Map(subs.subscriptions.map((s) => [s.id, s.name]));
  const columns = [
    { label: 'When', value: (d) => dateTime(d.updated_at ?? d.at ?? d.created_at), csv: (d) => d.updated_at ?? d.at ?? d.created_at },
    { label: 'Subscription', value: (d) => names.get(d.subscription_id) ?? d.subscription_id },
    { label: 'Kind', value: (d) => d.kind ?? (d.anomaly_id ? 'anomaly' : '') },
    { label: 'Subject', value: (d) => d.subject ?? d.anomaly_id ?? '', cls: 'key' },
    { label: 'Status', value: (d) => d.status, render: (d) => badge(d.status, d.status === 'delivered' ? 'ok' : d.status === 'failed' ? 'failed' : 'running') },
    { label: 'Attempts', value: (d) => String(d.attempts ?? d.attempt ?? ''), num: true },
    { label: 'Answer', value: (d) => (d.response_code ? `HTTP ${d.response_code}` : ''), csv: (d) => d.response_code ?? '' },
    { label: 'Error', value: (d) => d.error ?? '', cls: 'detail-cell' },
  ];
  const wrap = h('div', { 'data-testid': 'deliveries' }, table(columns, data.deliveries, { caption: 'Alert deliveries', empty: 'Nothing delivered yet. "Send test" on a subscription queues a test alert.' }));
  const reload = actionButton('Reload', async () => {
    const [fresh, latest] = await Promise.all([get('/api/alerts/deliveries?limit=100'), get('/api/alerts/subscriptions')]);
    for (const s of latest.subscriptions) names.set(s.id, s.name);
    data.deliveries = fresh.deliveries;
    wrap.replaceChildren(table(columns, fresh.deliveries, { caption: 'Alert deliveries', empty: 'Nothing delivered yet.' }));
  }, { small: true, kind: 'quiet', label: 'Reload the delivery log' });
  reload.id = 'deliveries-reload';
  return card('Delivery log', wrap, {
    id: 'deliveries',
    hint: 'Every alert sent, its attempts (failed deliveries are retried with backoff) and what the endpoint answered. Newest first.',
    actions: [reload, csvButton('cloudspend-alert-deliveries.csv', columns, data.deliveries)],
  });
}

function parseThresholds(text) {
  const parts = text.split(/[\s,;]+/).filter(Boolean);
  if (parts.some((p) => !/^\d+$/.test(p))) return null;
  return [...new Set(parts.map(Number))].sort((a, b) => a - b);
}

async function budget(me) {
  let data;
  try {
    data = await get('/api/budgets');
  } catch (err) {
    if (err instanceof ApiError && err.missingEndpoint) return card('Monthly budget', notYet('Budgets'), { id: 'budget' });
    throw err;
  }
  const b = data.budget;
  const manage = canManage(me);
  const current = b ? h('div',
    h('dl.facts', { 'data-testid': 'budget-status' },
      h('dt', 'Budget'), h('dd', h('strong', `${money(b.amount, b.currency)} a month`)),
      h('dt', `Spent in ${b.month}`), h('dd', `${money(b.spent, b.currency)} (${percent(b.percent_spent, 0)})`),
      h('dt', 'Month-end forecast'), h('dd', `${money(b.forecast, b.currency)} (${percent(b.percent_forecast, 0)})`),
      h('dt', 'Alerts at'), h('dd', `${b.actual_thresholds.map((t) => `${t}%`).join(', ') || 'none'} of the budget spent; ${b.forecast_thresholds.map((t) => `${t}%`).join(', ') || 'none'} forecast`),
      h('dt', 'Crossed this month'), h('dd', [...b.crossed.actual.map((t) => `${t}% spent`), ...b.crossed.forecast.map((t) => `${t}% forecast`)].join(', ') || 'none'),
      h('dt', 'Updated'), h('dd', dateTime(b.updated_at))))
    : h('p', 'No budget set. Set one to see spend and forecast against it on the dashboard, and to be alerted (through the alert subscriptions) when a threshold is crossed.');
  if (!manage) return card('Monthly budget', h('div', current, h('p', 'Only owners and admins set the budget.')), { id: 'budget' });
  const form = h('form', { novalidate: true, 'data-testid': 'budget-form' },
    h('div.row',
      field('b-amount', 'Monthly amount (USD)', h('input', { id: 'b-amount', name: 'amount', type: 'text', inputmode: 'decimal', required: true, placeholder: '1000.00', value: b?.amount ?? '' })),
      h('div')),
    h('div.row',
      field('b-actual', 'Alert when spend reaches (% of the budget)', h('input', { id: 'b-actual', name: 'actual_thresholds', type: 'text', value: (b?.actual_thresholds ?? [50, 80, 100]).join(', ') }), 'Whole percents from 1 to 1000, comma-separated, at most 10.'),
      field('b-forecast', 'Alert when the forecast reaches (%)', h('input', { id: 'b-forecast', name: 'forecast_thresholds', type: 'text', value: (b?.forecast_thresholds ?? [100]).join(', ') }), 'Leave empty for no forecast alerts.')),
    h('p.form-error', { role: 'alert' }),
    h('div.btn-group',
      h('button.btn', { type: 'submit', 'data-testid': 'budget-save' }, b ? 'Save budget' : 'Set budget'),
      b ? actionButton('Remove budget', async () => {
        if (!window.confirm('Remove the monthly budget? Its alerts stop.')) return;
        await del('/api/budgets');
        toast('Budget removed');
        rerender();
      }, { kind: 'quiet', testid: 'budget-delete' }) : null));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    form.querySelector('.form-error').textContent = '';
    const f = form.elements;
    const amount = f.amount.value.trim().replace(/^\$/, '').replace(/,/g, '');
    const actual = parseThresholds(f.actual_thresholds.value);
    const forecast = parseThresholds(f.forecast_thresholds.value);
    const bad = (list) => !list || list.length > 10 || list.some((t) => t < 1 || t > 1000);
    const ok = [
      fieldError(form, 'amount', !/^\d+(\.\d{1,9})?$/.test(amount) || Number(amount) <= 0 ? 'Enter an amount above 0, such as 1000.00.' : null),
      fieldError(form, 'actual_thresholds', bad(actual) ? 'Whole percents from 1 to 1000, comma-separated, at most 10.' : null),
      fieldError(form, 'forecast_thresholds', bad(forecast) ? 'Whole percents from 1 to 1000, comma-separated, at most 10.' : null),
    ].every(Boolean);
    if (!ok) { form.querySelector('[aria-invalid=true]')?.focus(); return; }
    const submit = form.querySelector('button[type=submit]');
    submit.disabled = true;
    try {
      const saved = await put('/api/budgets', { amount, actual_thresholds: actual, forecast_thresholds: forecast });
      toast(`Budget saved: ${money(saved.budget.amount)} a month`);
      rerender();
    } catch (err) { apiFormError(form, err); } finally { submit.disabled = false; }
  });
  return card('Monthly budget', h('div', current, h('div.subform', h('h3', b ? 'Change the budget' : 'Set a budget'), form)), { id: 'budget' });
}

async function tokens() {
  let data;
  try {
    data = await get('/api/tokens');
  } catch (err) {
    if (err instanceof ApiError && (err.missingEndpoint || err.status === 404)) {
      return card('API tokens', h('div.callout.info', { 'data-testid': 'tokens-unavailable' }, h('p', 'API tokens are not available on this server (GET /api/tokens is missing). Use a session token from POST /api/auth/login meanwhile.')), { id: 'tokens' });
    }
    throw err;
  }
  const columns = [
    { label: 'Name', value: (t) => t.name ?? '', render: (t) => (t.name ? h('strong', t.name) : h('span', { style: { color: 'var(--muted)' } }, 'login session')) },
    { label: 'Kind', value: (t) => t.kind, render: (t) => h('span', badge(t.kind === 'api' ? 'API token' : 'session', t.kind === 'api' ? 'running' : 'neutral'), t.current ? h('span', ' ', badge('this browser', 'ok')) : null) },
    { label: 'Created', value: (t) => dateTime(t.created_at), csv: (t) => t.created_at },
    { label: 'Expires', value: (t) => dateTime(t.expires_at), csv: (t) => t.expires_at },
    { label: 'Id', value: (t) => t.id, render: (t) => h('span.mono', t.id) },
    { label: 'Actions', value: () => '', noCsv: true, render: (t) => actionButton(t.current ? 'Revoke (logs you out)' : 'Revoke', async () => {
      if (!window.confirm(t.current ? 'Revoke the token of this browser? You will be logged out.' : `Revoke ${t.name ? `the token "${t.name}"` : 'this session'}? Anything using it stops working.`)) return;
      await del(`/api/tokens/${t.id}`);
      toast('Token revoked');
      if (t.current) navigate('/logout'); else rerender();
    }, { small: true, kind: 'quiet', label: `Revoke ${t.name ?? `session ${t.id}`}` }) },
  ];
  const shown = h('div');
  const form = h('form', { novalidate: true, 'data-testid': 'token-form' },
    h('div.row',
      field('t-name', 'Name', h('input', { id: 't-name', name: 'name', type: 'text', maxlength: 100, required: true, placeholder: 'CI cost export', autocomplete: 'off' }), 'What it is for, so you know what breaks if you revoke it.'),
      field('t-days', 'Expires after (days)', h('input', { id: 't-days', name: 'expires_in_days', type: 'number', min: 1, max: 365, value: '90', required: true }), '1 to 365.')),
    h('p.form-error', { role: 'alert' }),
    h('button.btn', { type: 'submit', 'data-testid': 'token-submit' }, 'Create token'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    form.querySelector('.form-error').textContent = '';
    const f = form.elements;
    const name = f.name.value.trim();
    const days = Number(f.expires_in_days.value);
    const ok = [
      fieldError(form, 'name', !name ? 'Give the token a name.' : null),
      fieldError(form, 'expires_in_days', !Number.isInteger(days) || days < 1 || days > 365 ? 'A whole number of days from 1 to 365.' : null),
    ].every(Boolean);
    if (!ok) { form.querySelector('[aria-invalid=true]')?.focus(); return; }
    const submit = form.querySelector('button[type=submit]');
    submit.disabled = true;
    try {
      const created = await post('/api/tokens', { name, expires_in_days: days });
      const fresh = await tokens();
      fresh.querySelector('[data-slot="token"]').replaceChildren(shownOnce(`Token "${created.name}"`, created.token,
        `send it as Authorization: Bearer … It acts as you in this tenant until ${dateTime(created.expires_at)}. Store it in a secret manager: it is not shown again.`, 'new-token'));
      document.getElementById('tokens').replaceWith(fresh);
      fresh.querySelector('[data-slot="token"] .callout')?.focus();
      toast('Token created');
    } catch (err) { apiFormError(form, err); } finally { submit.disabled = false; }
  });
  shown.dataset.slot = 'token';
  const api = data.tokens.filter((t) => t.kind === 'api');
  return card('API tokens', h('div',
    h('p.card-intro', 'Named tokens for scripts and CI act as you, with your role, in this tenant. Login sessions are listed too; revoke any you do not recognise. The API is described at ', h('a', { href: '/api/openapi.json', target: '_blank', rel: 'noopener' }, '/api/openapi.json'), '.'),
    table(columns, data.tokens, { caption: 'API tokens and sessions', testid: 'tokens' }),
    shown,
    h('div.subform', h('h3', 'New API token'), form)),
  { id: 'tokens', actions: [csvButton('cloudspend-tokens.csv', columns, data.tokens)], hint: api.length ? `${api.length} API token${api.length === 1 ? '' : 's'}` : undefined });
}

async function connection(me) {
  const conn = await get('/api/tenants/connection').catch((err) => { if (err.status === 404) return null; throw err; });
  if (!conn) return card('AWS connection', h('div', h('p', 'No AWS account is connected.'), h('a.btn', { href: '/connect-aws' }, 'Connect AWS')), { id: 'connection' });
  const canManage = ['owner', 'admin'].includes(me.current_tenant?.role);
  const out = h('div');
  return card('AWS connection', h('div',
    h('dl.facts',
      h('dt', 'Name'), h('dd', conn.display_name),
      h('dt', 'Account'), h('dd', h('code', conn.account_id), ` (${conn.account_type})`),
      h('dt', 'Signs in with'), h('dd', conn.auth_method === 'role' ? h('code', conn.role_arn) : `access key ${conn.access_key_id}`),
      h('dt', 'Regions'), h('dd', conn.regions.join(', ')),
      h('dt', 'CUR in Athena'), h('dd', `${conn.athena_database ?? '—'}.${conn.athena_table ?? '—'}`),
      h('dt', 'Status'), h('dd', badge(conn.status, conn.status), ` verified ${dateTime(conn.last_verified_at)}`),
      conn.warnings?.length ? [h('dt', 'Warnings'), h('dd', conn.warnings.join('; '))] : null,
      conn.last_error ? [h('dt', 'Last error'), h('dd', conn.last_error)] : null),
    out,
    canManage ? h('div.btn-group', { style: { marginTop: '14px' } },
      actionButton('Verify again', async () => {
        const { report } = await post('/api/tenants/connection/verify', {});
        const { report: draw } = await import('./connect.js');
        out.replaceChildren(draw(report.steps));
        toast('Diagnostics finished');
      }, { kind: 'quiet' }),
      h('a.btn.btn-quiet', { href: '/connect-aws' }, 'Change'),
      actionButton('Disconnect', async () => {
        if (!window.confirm('Disconnect AWS? Collected data stays; collection stops.')) return;
        await del('/api/tenants/connection');
        toast('AWS disconnected');
        rerender();
      }, { kind: 'danger' })) : null), { id: 'connection' });
}

function passwordCard() {
  const form = h('form', { novalidate: true, 'data-testid': 'password-form' },
    h('div.row',
      field('p-current', 'Current password', h('input', { id: 'p-current', name: 'current_password', type: 'password', autocomplete: 'current-password', required: true })),
      field('p-new', 'New password', h('input', { id: 'p-new', name: 'new_password', type: 'password', autocomplete: 'new-password', required: true, minlength: 10 }), 'At least 10 characters.')),
    h('p.form-error', { role: 'alert' }),
    h('button.btn', { type: 'submit' }, 'Change password'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    form.querySelector('.form-error').textContent = '';
    const f = form.elements;
    const ok = [
      fieldError(form, 'current_password', f.current_password.value ? null : 'Enter your current password.'),
      fieldError(form, 'new_password', f.new_password.value.length < 10 ? 'Use at least 10 characters.' : null),
    ].every(Boolean);
    if (!ok) { form.querySelector('[aria-invalid=true]')?.focus(); return; }
    const submit = form.querySelector('button[type=submit]');
    submit.disabled = true;
    try {
      const { revoked } = await post('/api/auth/password', { current_password: f.current_password.value, new_password: f.new_password.value });
      form.reset();
      toast(`Password changed; ${revoked} other session${revoked === 1 ? '' : 's'} and API token${revoked === 1 ? '' : 's'} revoked`);
      // The revoked ones leave the list of tokens and sessions.
      const fresh = await tokens().catch(() => null);
      if (fresh) document.getElementById('tokens')?.replaceWith(fresh);
    } catch (err) { apiFormError(form, err); } finally { submit.disabled = false; }
  });
  return card('Password', h('div',
    h('p.card-intro', 'Changing it logs out every other session and revokes your API tokens, in every tenant; this browser stays logged in.'),
    form), { id: 'password' });
}

function sessionCard() {
  const info = session.info;
  return card('This session', h('div',
    h('p', 'This browser signs in with a session token kept in its local storage; for scripts, create an API token above.'),
    h('dl.facts',
      h('dt', 'Signed in as'), h('dd', info?.email ?? '—'),
      h('dt', 'Session started'), h('dd', dateTime(info?.started_at)),
      h('dt', 'Expires'), h('dd', dateTime(info?.expires_at))),
    h('div.btn-group', { style: { marginTop: '14px' } }, h('a.btn.btn-quiet', { href: '/logout' }, 'Log out (revokes this token)'))), { id: 'session' });
}

export async function page(root, { ctx }) {
  const me = ctx.me;
  root.append(pageHead('Settings', { sub: `${me.current_tenant?.name ?? ''} · you are ${me.current_tenant?.role ?? 'not a member'}` }));
  const manage = canManage(me);
  const sections = [
    ['members', 'Members'], ['budget', 'Budget'], ['alerts', 'Alerts'], ['deliveries', 'Delivery log'],
    ['tokens', 'API tokens'], ['connection', 'AWS connection'], ['password', 'Password'],
  ];
  root.append(h('nav.tabs', { 'aria-label': 'Settings sections' },
    sections.map(([id, label]) => h('a', { href: `#${id}`, on: { click: (e) => {
      // Keyboard and screen-reader users land in the section too, not only the eyes.
      e.preventDefault();
      const section = document.getElementById(id);
      if (!section) return;
      history.replaceState(null, '', `#${id}`);
      section.setAttribute('tabindex', '-1');
      section.focus({ preventScroll: true });
      section.scrollIntoView({ block: 'start' });
    } } }, label)),
    manage ? h('a', { href: '/audit', 'data-testid': 'audit-link' }, 'Audit log →') : null));
  const subs = get('/api/alerts/subscriptions');
  subs.catch(() => {});
  const cards = await Promise.all([
    membersCard(me).catch((err) => card('Members and roles', errorBox(err), { id: 'members' })),
    budget(me).catch((err) => card('Monthly budget', errorBox(err), { id: 'budget' })),
    alerts(me, subs).catch((err) => card('Alert subscriptions', errorBox(err), { id: 'alerts' })),
    deliveries(subs).catch((err) => card('Delivery log', errorBox(err), { id: 'deliveries' })),
    tokens().catch((err) => card('API tokens', errorBox(err), { id: 'tokens' })),
    connection(me).catch((err) => card('AWS connection', errorBox(err), { id: 'connection' })),
  ]);
  root.append(...cards.filter(Boolean), passwordCard(), sessionCard());
}
