// The tenant's audit log (owners and admins): who did what, when, and what AWS answered, with
// filters by user, action and outcome, and a CSV of the rows shown.

import { h } from '../dom.js';
import { get, ApiError } from '../api.js';
import { navigate, query } from '../router.js';
import { dateTime } from '../format.js';
import { pageHead, card, badge, table, csvButton, notYet } from '../ui.js';

const ACTIONS = [
  ['', 'Any action'],
  ['instance', 'Instances (stop, start, alarms)'],
  ['instance.action', 'Stop / start (request and confirm)'],
  ['instance.action.confirm', 'Stop / start carried out'],
  ['instance.alarm', 'CPU alarms'],
  ['budget', 'Budget'],
  ['alert', 'Alert subscriptions'],
  ['token', 'API tokens'],
  ['connection', 'AWS connection'],
  ['member', 'Members'],
  ['collection', 'Collections'],
];
const STATUSES = [['', 'Any outcome'], ['succeeded', 'Succeeded'], ['refused', 'Refused'], ['failed', 'Failed'], ['ok', 'Recorded (no outcome)']];
const STATUS_BADGE = { succeeded: 'ok', refused: 'warn', failed: 'failed', ok: 'neutral' };

/** The few facts of an entry's detail worth a glance; the CSV carries the whole JSON. */
export function summarize(entry) {
  const d = entry.detail || {};
  const req = d.request || {};
  const out = d.outcome || {};
  const parts = [];
  const instance = req.instance_id || out.instance_id;
  if (instance) parts.push(instance);
  if (req.action && entry.action.startsWith('instance.action')) parts.push(req.action);
  if (out.previous_state || out.state) parts.push(`${out.previous_state ?? '?'} → ${out.state ?? '?'}`);
  if (req.amount || out.amount) parts.push(`amount ${req.amount ?? out.amount}`);
  if (req.alarm || out.alarm) parts.push(req.alarm || out.alarm);
  if (d.error) parts.push(`${d.error.code}: ${d.error.message}`);
  const requestId = out.aws_request_id || d.error?.aws_request_id;
  if (requestId) parts.push(`AWS request ${requestId}`);
  if (!parts.length) {
    // Entries recorded without request/outcome (members, connection, tokens): their own fields.
    for (const [k, v] of Object.entries(d)) {
      if (v === null || typeof v === 'object') continue;
      parts.push(`${k}: ${v}`);
      if (parts.length >= 4) break;
    }
  }
  return parts.join(' · ');
}

export async function page(root, { ctx }) {
  root.append(pageHead('Audit log', { sub: 'Every action, confirmation and refusal in this tenant, with who asked and what AWS answered. Newest first.', actions: [h('a.btn.btn-quiet', { href: '/settings' }, 'Settings')] }));
  if (!['owner', 'admin'].includes(ctx.me.current_tenant?.role)) {
    root.append(h('div.callout.info', h('p', h('strong', 'Owners and admins only. '), `You are a ${ctx.me.current_tenant?.role ?? 'viewer'} in this tenant.`)));
    return;
  }
  const q = query();
  const filters = { user: q.get('user') || '', action: q.get('action') || '', status: q.get('status') || '' };
  const params = new URLSearchParams(Object.entries(filters).filter(([, v]) => v));
  params.set('limit', '500');
  let data;
  try {
    data = await get(`/api/audit?${params}`);
  } catch (err) {
    if (err instanceof ApiError && err.missingEndpoint) { root.append(notYet('The audit log')); return; }
    throw err;
  }
  const knownAction = ACTIONS.some(([v]) => v === filters.action);
  const form = h('form.filters', { role: 'search', 'aria-label': 'Filter the audit log', 'data-testid': 'audit-filters' },
    h('div.field', h('label', { for: 'au-user' }, 'User (email)'), h('input', { id: 'au-user', name: 'user', type: 'email', value: filters.user, placeholder: 'anyone', autocomplete: 'off' })),
    h('div.field', h('label', { for: 'au-action' }, 'Action'), h('select', { id: 'au-action', name: 'action' },
      ACTIONS.map(([v, l]) => h('option', { value: v, selected: v === filters.action }, l)),
      knownAction ? null : h('option', { value: filters.action, selected: true }, filters.action))),
    h('div.field', h('label', { for: 'au-status' }, 'Outcome'), h('select', { id: 'au-status', name: 'status' },
      STATUSES.map(([v, l]) => h('option', { value: v, selected: v === filters.status }, l)))),
    h('div.btn-group', h('button.btn', { type: 'submit' }, 'Filter'), h('a.btn.btn-quiet', { href: '/audit' }, 'Clear')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const name of ['user', 'action', 'status']) { const v = form.elements[name].value.trim(); if (v) next.set(name, v); }
    navigate(`/audit${next.toString() ? `?${next}` : ''}`);
  });
  const filtered = Object.values(filters).some(Boolean);
  const columns = [
    { label: 'When', value: (e) => dateTime(e.at), csv: (e) => e.at },
    { label: 'User', value: (e) => e.user_email ?? '', render: (e) => e.user_email ?? h('span', { style: { color: 'var(--muted)' } }, 'CloudSpend') },
    { label: 'Action', value: (e) => e.action, render: (e) => h('code', e.action) },
    { label: 'Outcome', value: (e) => e.status, render: (e) => badge(e.status, STATUS_BADGE[e.status] ?? 'neutral') },
    { label: 'Detail', value: (e) => summarize(e), csv: (e) => JSON.stringify(e.detail ?? {}), cls: 'detail-cell' },
  ];
  const n = data.entries.length;
  root.append(card(`${n}${n === 500 ? '+' : ''} ${n === 1 ? 'entry' : 'entries'}${filtered ? ' matching' : ''}`, h('div', form,
    table(columns, data.entries, { caption: 'Audit log', testid: 'audit', empty: filtered ? 'No entries match these filters.' : 'Nothing recorded yet.' })), {
    id: 'audit',
    hint: `Entries are kept ${data.retention_days} days.`,
    actions: [csvButton('cloudspend-audit.csv', columns, data.entries)],
  }));
}
