// EC2 instances with 24-hour CPU sparklines and idle/oversized badges; one instance's CPU chart.

import { h } from '../dom.js';
import { get, ApiError } from '../api.js';
import { cpuChart, sparkline } from '../charts.js';
import { money, percent, dateTime } from '../format.js';
import { pageHead, card, badge, table, csvButton, emptyState, connectCta } from '../ui.js';

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

export async function detail(root, { params }) {
  const id = params.id;
  const [{ instances }, recs] = await Promise.all([get('/api/instances'), recommendationsByInstance()]);
  const inst = instances.find((i) => i.instance_id === id);
  if (!inst) {
    root.append(pageHead('Instance not found'), card(null, emptyState(`No instance ${id}`, 'It may have been terminated, or belong to another tenant.', [h('a.btn', { href: '/instances' }, 'All instances')])));
    return;
  }
  const cpu = await get(`/api/instances/${encodeURIComponent(id)}/cpu`);
  const mine = recs.get(id) || [];
  root.append(pageHead(inst.name || inst.instance_id, {
    sub: `${inst.instance_type} · ${inst.state} · ${inst.region} · account ${inst.account_id}`,
    actions: [h('a.btn.btn-quiet', { href: '/instances' }, 'All instances')],
  }));
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
}
