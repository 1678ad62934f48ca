// The tenant's audit log (owners and admins): who did what, when, and what AWS answered, with
// filters by user, action and outcome, and a CSV of the rows shown.

import { h } from '../dom.js';
import { get, ApiError } from '../api.js';
import { navigate, query } from '../router.js';
import { addDays, dateTime } from '../format.js';
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

/** Entries per page: the API pages by cursor (newest first); "Older" asks for the next page. */
const PAGE_SIZE = 50;
const FILTERS = ['user', 'action', 'status', 'from', 'until'];

/** The API query for the page's filters: `until` is an inclusive day, the API's `to` exclusive. */
function apiQuery(filters, cursor) {
  const params = new URLSearchParams();
  for (const name of ['user', 'action', 'status', 'from']) if (filters[name]) params.set(name, filters[name]);
  if (filters.until) params.set('to', addDays(filters.until, 1));
  params.set('limit', String(PAGE_SIZE));
  if (cursor) params.set('cursor', cursor);
  return params;
}

/** The audit page's own URL for these filters, at `cursor` (none: the newest page). */
function pageUrl(filters, cursor) {
  const params = new URLSearchParams(Object.entries(filters).filter(([, v]) => v));
  if (cursor) params.set('cursor', cursor);
  return `/audit${params.toString() ? `?${params}` : ''}`;
}

function countsLine(counts) {
  return ['succeeded', 'refused', 'failed', 'ok']
    .filter((k) => counts[k])
    .map((k) => `${STATUSES.find(([v]) => v === k)[1]} ${counts[k]}`)
    .join(' · ');
}

export async function page(root, { ctx }) {
  root.append(pageHead('Audit log', { sub: 'Every action, confirmation and refusal in this tenant, with who asked and what AWS answered. Newest first.', actions: [h('a.btn.btn-quiet', { href: '/settings' }, 'Settings')] }));
  if (!['owner', 'admin'].includes(ctx.me.current_tenant?.role)) {
    root.append(h('div.callout.info', h('p', h('strong', 'Owners and admins only. '), `You are a ${ctx.me.current_tenant?.role ?? 'viewer'} in this tenant.`)));
    return;
  }
  const q = query();
  const filters = Object.fromEntries(FILTERS.map((name) => [name, q.get(name) || '']));
  const cursor = q.get('cursor') || '';
  let data;
  try {
    data = await get(`/api/audit?${apiQuery(filters, cursor)}`);
  } catch (err) {
    if (err instanceof ApiError && err.missingEndpoint) { root.append(notYet('The audit log')); return; }
    if (err instanceof ApiError && err.status === 422) {
      root.append(h('div.callout.danger', { role: 'alert' }, h('p', h('strong', `The ${err.field === 'to' ? 'until' : err.field} filter: `), err.message, ' '), h('a', { href: '/audit' }, 'Clear the filters')));
      return;
    }
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
    h('div.field', h('label', { for: 'au-from' }, 'From (day, UTC)'), h('input', { id: 'au-from', name: 'from', type: 'date', value: filters.from })),
    h('div.field', h('label', { for: 'au-until' }, 'Until (day, UTC, included)'), h('input', { id: 'au-until', name: 'until', type: 'date', value: filters.until })),
    h('div.btn-group', h('button.btn', { type: 'submit' }, 'Filter'), h('a.btn.btn-quiet', { href: '/audit' }, 'Clear')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const next = Object.fromEntries(FILTERS.map((name) => [name, form.elements[name].value.trim()]));
    // New filters start again from the newest entry.
    navigate(pageUrl(next, ''));
  });
  const filtered = Object.values(filters).some(Boolean);
  const columns = [
    { label: 'When', value: (e) => dateTime(e.at), csv: (e) => e.at },
    { label: 'User', value: (e) => e.user_email ?? '', render: (e) => e.user_email ?? h('span', { style: { color: 'var(--muted)' } }, 'CloudSpend') },
    { label: 'Action', value: (e) => e.action, render: (e) => h('code', e.action) },
    { label: 'Outcome', value: (e) => e.status, render: (e) => badge(e.status, STATUS_BADGE[e.status] ?? 'neutral') },
    { label: 'Detail', value: (e) => summarize(e), csv: (e) => JSON.stringify(e.detail ?? {}), cls: 'detail-cell' },
  ];
  const total = data.counts.total;
  const pager = h('div.btn-group', { 'data-testid': 'audit-pager' },
    cursor ? h('a.btn.btn-quiet', { href: pageUrl(filters, ''), 'data-testid': 'audit-newest' }, '← Newest') : null,
    data.next_cursor ? h('a.btn', { href: pageUrl(filters, data.next_cursor), 'data-testid': 'audit-older' }, 'Older →') : null);
  root.append(card(`${total} ${total === 1 ? 'entry' : 'entries'}${filtered ? ' matching' : ''}`, h('div', form,
    total ? h('p.hint', { 'data-testid': 'audit-counts' }, countsLine(data.counts)) : null,
    table(columns, data.entries, { caption: 'Audit log', testid: 'audit', empty: filtered ? 'No entries match these filters.' : 'Nothing recorded yet.' }),
    pager), {
    id: 'audit',
    hint: `${PAGE_SIZE} a page, newest first. Entries are kept ${data.retention_days} days.`,
    actions: [csvButton('cloudspend-audit.csv', columns, data.entries, { label: 'Download CSV (this page)' })],
  }));
}
