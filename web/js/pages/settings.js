// Settings: members and roles, alert subscriptions, the AWS connection, and this session.

import { h, toast } from '../dom.js';
import { get, post, del, session, ApiError } from '../api.js';
import { navigate } from '../router.js';
import { dateTime } from '../format.js';
import { pageHead, card, badge, table, csvButton, actionButton, notYet, errorBox } from '../ui.js';

const rerender = () => navigate('/settings', { replace: true });

function formError(form, err) {
  form.querySelectorAll('[aria-invalid]').forEach((el) => el.removeAttribute('aria-invalid'));
  const target = err.field && form.elements[err.field];
  if (target) target.setAttribute('aria-invalid', 'true');
  form.querySelector('.form-error').textContent = err.message;
}

function members(data, me) {
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
  const form = h('form', { novalidate: true },
    h('div.row',
      h('div.field', h('label', { for: 'm-email' }, 'Email of a CloudSpend user'), h('input', { id: 'm-email', name: 'email', type: 'email', required: true, placeholder: 'colleague@example.com' }), h('span.help', 'They must have signed up first. Adding an existing member changes their role.')),
      h('div.field', h('label', { for: 'm-role' }, 'Role'), h('select', { id: 'm-role', name: 'role' },
        h('option', { value: 'viewer' }, 'Viewer: sees everything, changes nothing'),
        h('option', { value: 'admin' }, 'Admin: connects AWS, manages members'),
        h('option', { value: 'owner' }, 'Owner: everything, including owners')))),
    h('p.form-error', { role: 'alert' }),
    h('button.btn', { type: 'submit' }, 'Add or update member'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      await post('/api/tenants/members', { email: form.elements.email.value.trim(), role: form.elements.role.value });
      toast('Member saved');
      rerender();
    } catch (err) { formError(form, err); }
  });
  return card('Members and roles', h('div', table(columns, data.members, { caption: 'Members' }), canManage ? h('div', { style: { marginTop: '16px' } }, form) : h('p', 'Only owners and admins manage members.')),
    { actions: [csvButton('cloudspend-members.csv', columns, data.members)], id: 'members' });
}

async function alerts(me) {
  let data;
  try {
    data = await get('/api/alerts/subscriptions');
  } catch (err) {
    if (err instanceof ApiError && err.missingEndpoint) return card('Alert subscriptions', notYet('Alerting'), { id: 'alerts' });
    throw err;
  }
  const canManage = ['owner', 'admin'].includes(me.current_tenant?.role);
  const columns = [
    { label: 'Name', value: (s) => s.name },
    { label: 'Channel', value: (s) => s.channel },
    { label: 'Target', value: (s) => s.target, cls: 'key' },
    { label: 'Threshold', value: (s) => (s.threshold_kind === 'percent' ? `${s.threshold}% over expected` : `$${s.threshold} over expected`) },
    { label: 'Frequency', value: (s) => s.frequency },
    { label: 'Actions', value: () => '', noCsv: true, render: (s) => (canManage ? actionButton('Delete', async () => {
      if (!window.confirm(`Delete the alert "${s.name}"?`)) return;
      await del(`/api/alerts/subscriptions/${s.id}`);
      rerender();
    }, { small: true, kind: 'quiet', label: `Delete alert ${s.name}` }) : '') },
  ];
  const secret = h('div');
  const form = h('form', { novalidate: true },
    h('div.row',
      h('div.field', h('label', { for: 'a-name' }, 'Name'), h('input', { id: 'a-name', name: 'name', type: 'text', required: true, placeholder: 'FinOps channel' })),
      h('div.field', h('label', { for: 'a-channel' }, 'Channel'), h('select', { id: 'a-channel', name: 'channel' }, h('option', { value: 'webhook' }, 'Webhook (signed)'), h('option', { value: 'email' }, 'Email')))),
    h('div.field', h('label', { for: 'a-target' }, 'Target'), h('input', { id: 'a-target', name: 'target', type: 'text', required: true, placeholder: 'https://hooks.example.com/cloudspend or ops@example.com' })),
    h('div.row',
      h('div.field', h('label', { for: 'a-kind' }, 'Alert when the impact is over'), h('select', { id: 'a-kind', name: 'threshold_kind' }, h('option', { value: 'absolute' }, 'an amount (USD)'), h('option', { value: 'percent' }, 'a percentage of expected'))),
      h('div.field', h('label', { for: 'a-threshold' }, 'Threshold'), h('input', { id: 'a-threshold', name: 'threshold', type: 'text', inputmode: 'decimal', required: true, placeholder: '100.00' }))),
    h('div.field', h('label', { for: 'a-frequency' }, 'Frequency'), h('select', { id: 'a-frequency', name: 'frequency' }, h('option', { value: 'immediate' }, 'Immediately'), h('option', { value: 'daily' }, 'Daily digest'))),
    h('p.form-error', { role: 'alert' }),
    h('button.btn', { type: 'submit' }, 'Add alert'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const f = form.elements;
    if (!/^\d+(\.\d{1,9})?$/.test(f.threshold.value.trim())) { formError(form, { field: 'threshold', message: 'Threshold: a number such as 100.00 or 20' }); return; }
    try {
      const created = await post('/api/alerts/subscriptions', {
        name: f.name.value.trim(), channel: f.channel.value, target: f.target.value.trim(),
        threshold_kind: f.threshold_kind.value, threshold: f.threshold.value.trim(), frequency: f.frequency.value,
      });
      if (created.signing_secret) {
        secret.replaceChildren(h('div.callout.warn', h('p', h('strong', 'Signing secret (shown once): '), h('code', created.signing_secret),
          ' — webhooks carry X-CloudSpend-Signature: sha256=<HMAC-SHA256 of the body with this secret>.')));
      } else { rerender(); }
      toast('Alert added');
    } catch (err) { formError(form, err); }
  });
  return card('Alert subscriptions', h('div',
    h('p', { style: { marginTop: 0, color: 'var(--muted)' } }, 'Get told when an anomaly appears: by email or a signed webhook.'),
    table(columns, data.subscriptions, { caption: 'Alert subscriptions', empty: 'No alerts yet: add one below to hear about anomalies without opening the dashboard.' }),
    secret, canManage ? h('div', { style: { marginTop: '16px' } }, form) : null),
  { actions: [csvButton('cloudspend-alerts.csv', columns, data.subscriptions)], id: 'alerts' });
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

function sessionCard() {
  const info = session.info;
  return card('API access and this session', h('div',
    h('p', 'CloudSpend\'s API takes the same bearer token this page uses (Authorization: Bearer …); the OpenAPI document is at ', h('a', { href: '/api/openapi.json', target: '_blank', rel: 'noopener' }, '/api/openapi.json'), '. Long-lived API tokens cannot be managed here yet: use a session token from POST /api/auth/login.'),
    h('dl.facts',
      h('dt', 'Signed in as'), h('dd', info?.email ?? '—'),
      h('dt', 'Session started'), h('dd', dateTime(info?.started_at)),
      h('dt', 'Expires'), h('dd', dateTime(info?.expires_at))),
    h('div.btn-group', { style: { marginTop: '14px' } }, h('a.btn.btn-quiet', { href: '/logout' }, 'Log out (revokes this token)'))), { id: 'session' });
}

export async function page(root, { ctx }) {
  const me = ctx.me;
  root.append(pageHead('Settings', { sub: `${me.current_tenant?.name ?? ''} · you are ${me.current_tenant?.role ?? 'not a member'}` }));
  const sections = await Promise.all([
    get('/api/tenants/members').then((d) => members(d, me), (err) => card('Members and roles', errorBox(err))),
    alerts(me).catch((err) => card('Alert subscriptions', errorBox(err))),
    connection(me).catch((err) => card('AWS connection', errorBox(err))),
  ]);
  root.append(...sections, sessionCard());
}
