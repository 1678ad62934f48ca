// EC2 instances with 24-hour CPU sparklines and idle/oversized badges; one instance's CPU chart.

import { h, toast } from '../dom.js';
import { get, post, del, ApiError } from '../api.js';
import { navigate } from '../router.js';
import { actionControl, actionsNote, actionsStatus, canAct } from '../actions.js';
import { cpuChart, sparkline } from '../charts.js';
import { money, percent, dateTime } from '../format.js';
import { pageHead, card, badge, table, csvButton, emptyState, connectCta, actionButton, errorBox } from '../ui.js';

async function recommendationsByInstance() {
  try {
    const data = await get('/api/recommendations');
    const map = new Map();
    for (const r of data.recommendations) (map.get(r.instance_id) ?? map.set(r.instance_id, []).get(r.instance_id)).push(r);
    return map;
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return new Map();
    throw err;
  }
}

function stateBadge(state) {
  return badge(state, state === 'running' ? 'running-state' : state === 'stopped' ? 'stopped-state' : 'neutral');
}

function findingBadges(recs) {
  return (recs || []).map((r) => badge(r.kind === 'stopped_with_volumes' ? 'stopped, volumes' : r.kind, r.kind === 'idle' ? 'idle' : 'oversized'));
}

export async function list(root) {
  root.append(pageHead('EC2 instances', { sub: 'Inventory as last collected, CPU over the last 24 hours, and instances that cost money for little work.' }));
  const [{ instances }, recs] = await Promise.all([get('/api/instances'), recommendationsByInstance()]);
  if (!instances.length) {
    const connected = await get('/api/tenants/connection').then(() => true, () => false);
    root.append(connected
      ? card(null, emptyState('No instances collected yet', 'The EC2 collector runs hourly; press "Refresh now" on the dashboard to run it now. Instances in regions you did not list are not collected.', [h('a.btn', { href: '/' }, 'Go to the dashboard')]))
      : connectCta('Connect an AWS account to see its EC2 instances, their CPU, and which ones sit idle.'));
    return;
  }
  const since = new Date(Date.now() - 24 * 3600 * 1000).toISOString();
  const sparkCells = new Map();
  const columns = [
    { label: 'Instance', value: (i) => i.instance_id, render: (i) => h('div', h('a', { href: `/instances/${i.instance_id}` }, i.name || i.instance_id), i.name ? h('div.mono', { style: { color: 'var(--muted)' } }, i.instance_id) : null) },
    { label: 'Type', value: (i) => i.instance_type },
    { label: 'State', value: (i) => i.state, render: (i) => stateBadge(i.state) },
    { label: 'Region', value: (i) => i.region },
    { label: 'Account', value: (i) => i.account_id, render: (i) => h('span.mono', i.account_id) },
    { label: 'CPU, 24 h', value: () => '', noCsv: true, render: (i) => { const cell = h('span', { 'data-testid': 'cpu-spark' }, h('span.spark-empty', '…')); sparkCells.set(i.instance_id, cell); return cell; } },
    { label: 'Finding', value: (i) => (recs.get(i.instance_id) || []).map((r) => r.kind).join(' '), render: (i) => h('span', findingBadges(recs.get(i.instance_id))) },
  ];
  const csvColumns = [...columns.slice(0, 1), { label: 'Name', value: (i) => i.name || '' }, ...columns.slice(1)];
  const idle = instances.filter((i) => (recs.get(i.instance_id) || []).some((r) => r.kind === 'idle')).length;
  root.append(card(`${instances.length} instances`, table(columns, instances, { caption: 'EC2 instances', testid: 'instances' }), {
    actions: [csvButton('cloudspend-instances.csv', csvColumns, instances)],
    hint: idle ? `${idle} idle: see Savings for what stopping them would save.` : undefined,
  }));
  // Sparklines load after the table is visible, a few at a time.
  const queue = instances.filter((i) => i.state !== 'terminated');
  const worker = async () => {
    for (let i = queue.shift(); i; i = queue.shift()) {
      const cell = sparkCells.get(i.instance_id);
      try {
        const cpu = await get(`/api/instances/${encodeURIComponent(i.instance_id)}/cpu?from=${encodeURIComponent(since)}`);
        const values = cpu.points.map((p) => p.average);
        const avg = values.length ? values.reduce((a, b) => a + b, 0) / values.length : null;
        cell.replaceChildren(values.length
          ? h('span', { style: { display: 'inline-flex', alignItems: 'center', gap: '6px' } }, sparkline(values, { label: `CPU last 24 hours, average ${avg.toFixed(1)}%` }), h('span.num', percent(avg, 0)))
          : h('span.spark-empty', i.state === 'running' ? 'no datapoints' : 'stopped'));
      } catch {
        cell.replaceChildren(h('span.spark-empty', 'unavailable'));
      }
    }
  };
  Promise.all([worker(), worker(), worker()]);
}

const COMPARISONS = [
  ['GreaterThanThreshold', 'above'],
  ['GreaterThanOrEqualToThreshold', 'at or above'],
  ['LessThanThreshold', 'below'],
  ['LessThanOrEqualToThreshold', 'at or below'],
];
const PERIODS = [[60, '1 minute'], [300, '5 minutes'], [900, '15 minutes'], [3600, '1 hour'], [21600, '6 hours'], [86400, '1 day']];

function fieldError(form, name, message) {
  const input = form.elements[name];
  const out = form.querySelector(`#${input.id}-error`);
  if (message) { input.setAttribute('aria-invalid', 'true'); out.textContent = message; } else { input.removeAttribute('aria-invalid'); out.textContent = ''; }
  return !message;
}

function field(id, label, control, help) {
  control.setAttribute('aria-describedby', `${id}-error${help ? ` ${id}-help` : ''}`);
  return h('div.field', h('label', { for: id }, label), control,
    help ? h('span.help', { id: `${id}-help` }, help) : null,
    h('span.error', { id: `${id}-error` }));
}

/** CloudWatch CPU alarms CloudSpend manages on this instance: list, create, delete. */
async function alarmsCard(inst, me) {
  const id = inst.instance_id;
  const base = `/api/instances/${encodeURIComponent(id)}/alarms`;
  const reload = () => navigate(location.pathname, { replace: true });
  const manage = canAct(me);
  let alarms;
  try {
    ({ alarms } = await get(base));
  } catch (err) {
    if (err instanceof ApiError && err.missingEndpoint) return null;
    return card('CPU alarms', h('div', errorBox(err), err.code === 'actions_disabled' ? h('p', 'Alarms are created in your account through the same opt-in permissions as Stop/Start.') : null), { id: 'alarms' });
  }
  const describe = (a) => `CPU ${COMPARISONS.find(([c]) => c === a.comparison)?.[1] ?? a.comparison} ${a.threshold}% for ${a.evaluation_periods} × ${PERIODS.find(([p]) => p === a.period_seconds)?.[1] ?? `${a.period_seconds} s`}`;
  const columns = [
    { label: 'Alarm', value: (a) => a.name, render: (a) => h('div', h('div', describe(a)), h('div.mono', { style: { color: 'var(--muted)', fontSize: '.8rem' } }, a.name)) },
    { label: 'State', value: (a) => a.state, render: (a) => badge(a.state, a.state === 'ALARM' ? 'failed' : a.state === 'OK' ? 'ok' : 'neutral') },
    { label: 'Reason', value: (a) => a.state_reason || '', cls: 'detail-cell' },
    { label: 'Updated', value: (a) => dateTime(a.updated_at) },
    { label: 'Actions', value: () => '', noCsv: true, render: (a) => (manage ? actionButton('Delete', async () => {
      if (!window.confirm(`Delete the alarm "${describe(a)}"? It is removed from CloudWatch.`)) return;
      await del(`${base}/${encodeURIComponent(a.name)}`);
      toast('Alarm deleted');
      reload();
    }, { small: true, kind: 'quiet', label: `Delete alarm ${a.name}` }) : '') },
  ];
  const form = h('form', { novalidate: true, 'data-testid': 'alarm-form' },
    h('div.row',
      field('al-comparison', 'Alarm when CPU is', h('select', { id: 'al-comparison', name: 'comparison' }, COMPARISONS.map(([v, l]) => h('option', { value: v }, l)))),
      field('al-threshold', 'Threshold (%)', h('input', { id: 'al-threshold', name: 'threshold', type: 'text', inputmode: 'decimal', required: true, placeholder: '80' }), 'Above 0, at most 100.')),
    h('div.row',
      field('al-period', 'Period', h('select', { id: 'al-period', name: 'period_seconds' }, PERIODS.map(([v, l]) => h('option', { value: v, selected: v === 300 }, l)))),
      field('al-evals', 'Periods in a row', h('input', { id: 'al-evals', name: 'evaluation_periods', type: 'number', min: 1, max: 100, value: '3', required: true }), '1 to 100.')),
    h('p.form-error', { role: 'alert' }),
    h('button.btn', { type: 'submit' }, 'Create alarm'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const f = form.elements;
    const threshold = Number(f.threshold.value.trim());
    const evals = Number(f.evaluation_periods.value);
    const ok = [
      fieldError(form, 'threshold', f.threshold.value.trim() === '' || !Number.isFinite(threshold) || threshold <= 0 || threshold > 100 ? 'Enter a CPU percentage above 0 and at most 100.' : null),
      fieldError(form, 'evaluation_periods', !Number.isInteger(evals) || evals < 1 || evals > 100 ? 'Enter a whole number from 1 to 100.' : null),
    ].every(Boolean);
    form.querySelector('.form-error').textContent = '';
    if (!ok) { form.querySelector('[aria-invalid=true]')?.focus(); return; }
    const submit = form.querySelector('button[type=submit]');
    submit.disabled = true;
    try {
      await post(base, { threshold, period_seconds: Number(f.period_seconds.value), evaluation_periods: evals, comparison: f.comparison.value });
      toast('Alarm created in CloudWatch');
      reload();
    } catch (err) {
      const name = err.field && form.elements[err.field] ? err.field : null;
      if (name) fieldError(form, name, err.message); else form.querySelector('.form-error').textContent = err.message;
    } finally { submit.disabled = false; }
  });
  return card('CPU alarms', h('div',
    table(columns, alarms, { caption: 'CPU alarms', testid: 'alarms', empty: 'No CloudSpend alarms on this instance.' }),
    manage ? h('div', { style: { marginTop: '16px' } }, h('h3', { style: { fontSize: '1rem', marginBottom: '10px' } }, 'New alarm'), form) : h('p', 'Only owners and admins create or delete alarms.')),
  { id: 'alarms', hint: 'CloudWatch alarms on CPUUtilization, created in your account with the opt-in action permissions.', actions: [csvButton(`cloudspend-alarms-${id}.csv`, columns, alarms)] });
}

export async function detail(root, { params, ctx }) {
  const id = params.id;
  const [{ instances }, recs] = await Promise.all([get('/api/instances'), recommendationsByInstance()]);
  const inst = instances.find((i) => i.instance_id === id);
  if (!inst) {
    root.append(pageHead('Instance not found'), card(null, emptyState(`No instance ${id}`, 'It may have been terminated, or belong to another tenant.', [h('a.btn', { href: '/instances' }, 'All instances')])));
    return;
  }
  const cpu = await get(`/api/instances/${encodeURIComponent(id)}/cpu`);
  const mine = recs.get(id) || [];
  const action = ['running', 'pending'].includes(inst.state) ? 'stop' : inst.state === 'stopped' ? 'start' : null;
  const status = action && canAct(ctx.me) ? await actionsStatus() : null;
  const reload = () => navigate(location.pathname, { replace: true });
  root.append(pageHead(inst.name || inst.instance_id, {
    sub: h('span', `${inst.instance_type} · `, stateBadge(inst.state), ` · ${inst.region} · account ${inst.account_id}`),
    actions: [
      action ? actionControl(id, action, { me: ctx.me, status, onDone: reload, small: false, label: `${action === 'stop' ? 'Stop' : 'Start'} this instance` }) : null,
      h('a.btn.btn-quiet', { href: '/instances' }, 'All instances'),
    ],
  }));
  if (action) { const note = actionsNote(ctx.me, status); if (note) root.append(note); }
  for (const r of mine) {
    root.append(h('div.callout', { class: r.kind === 'idle' ? 'danger' : 'warn' },
      h('p', h('strong', `${r.kind === 'idle' ? 'Idle' : r.kind === 'oversized' ? 'Oversized' : 'Stopped with volumes'}: ${r.action}${r.suggested_type ? ` to ${r.suggested_type}` : ''} to save ${money(r.monthly_savings)}/month. `), r.evidence)));
  }
  const chart = h('div', { 'data-testid': 'cpu-chart' });
  const points = cpu.points;
  const columns = [{ label: 'Time', value: (p) => p.timestamp }, { label: 'Average %', value: (p) => p.average }, { label: 'Maximum %', value: (p) => p.maximum }];
  const chartCard = card('CPU utilisation, last 14 days', chart, {
    hint: 'Hourly average (line) and maximum (light line). Stopped instances have no datapoints.',
    actions: [csvButton(`cloudspend-cpu-${id}.csv`, columns, points)],
  });
  root.append(chartCard);
  if (points.length) cpuChart(chart, { points });
  else chart.append(h('p', inst.state === 'running' ? 'No CPU datapoints yet: the CloudWatch collector runs hourly.' : 'No datapoints: the instance is not running.'));
  root.append(card('Details', h('dl.facts',
    h('dt', 'Instance ID'), h('dd', h('code', inst.instance_id)),
    h('dt', 'Type'), h('dd', inst.instance_type),
    h('dt', 'State'), h('dd', stateBadge(inst.state)),
    h('dt', 'Availability zone'), h('dd', inst.availability_zone || '—'),
    h('dt', 'Platform'), h('dd', inst.platform || '—'),
    h('dt', 'Launched'), h('dd', dateTime(inst.launch_time)),
    h('dt', 'Last seen'), h('dd', dateTime(inst.last_seen_at)),
    h('dt', 'Tags'), h('dd', Object.entries(inst.tags || {}).map(([k, v]) => `${k}=${v}`).join(', ') || '—'))));
  const alarms = await alarmsCard(inst, ctx.me);
  if (alarms) root.append(alarms);
}
