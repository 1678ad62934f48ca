// Collections: ingestion health, the schedule, and what CloudSpend's AWS requests cost.

import { h } from '../dom.js';
import { get } from '../api.js';
import { navigate } from '../router.js';
import { money, dateTime, ago, humanSeconds } from '../format.js';
import { pageHead, card, kpi, badge, table, csvButton, actionButton, connectCta } from '../ui.js';
import { refreshNow, collectorName } from './dashboard.js';

export async function page(root) {
  const data = await get('/api/collections?limit=200');
  const progress = h('div.progress', { 'aria-live': 'polite' });
  root.append(pageHead('Collections', {
    sub: 'Every run of every collector: what it read, how many AWS requests it made, and why it failed.',
    actions: data.jobs.length ? [actionButton('Refresh now', async (el) => { await refreshNow(progress, el); navigate('/collections', { replace: true }); }, { testid: 'refresh-now' })] : [],
  }));
  root.append(progress);
  if (!data.jobs.length && !data.runs.length) {
    root.append(connectCta('Nothing is collected until an AWS account is connected.'));
    return;
  }
  const failedRecently = data.runs.slice(0, 10).filter((r) => r.status === 'failed');
  root.append(h('div.kpis',
    kpi('AWS requests this month', String(data.aws_requests_this_month)),
    kpi('Cost Explorer requests', String(data.cost_explorer_requests_this_month), '$0.01 each, billed by AWS'),
    kpi('Cost Explorer cost', money(data.cost_explorer_cost_this_month), 'this calendar month (UTC)'),
    kpi('Recent failures', String(failedRecently.length), failedRecently.length ? 'in the last 10 runs' : 'all recent runs succeeded', { tone: failedRecently.length ? 'alert' : 'good' })));
  const jobColumns = [
    { label: 'Collector', value: (j) => collectorName(j.collector) },
    { label: 'Every', value: (j) => humanSeconds(j.interval_seconds) },
    { label: 'Next run', value: (j) => dateTime(j.next_run_at), render: (j) => h('span', { title: dateTime(j.next_run_at) }, j.running ? 'running now' : ago(j.next_run_at)) },
    { label: 'State', value: (j) => (j.running ? 'running' : 'scheduled'), render: (j) => badge(j.running ? 'running' : 'scheduled', j.running ? 'running' : 'neutral') },
  ];
  root.append(card('Schedule', table(jobColumns, data.jobs, { caption: 'Schedule' })));
  const runColumns = [
    { label: 'Collector', value: (r) => collectorName(r.collector) },
    { label: 'Started', value: (r) => r.started_at, render: (r) => h('span', { title: dateTime(r.started_at) }, ago(r.started_at)) },
    { label: 'Duration', value: (r) => (r.finished_at ? `${((new Date(r.finished_at) - new Date(r.started_at)) / 1000).toFixed(1)} s` : '') },
    { label: 'Status', value: (r) => r.status, render: (r) => badge(r.status, r.status) },
    { label: 'Rows', value: (r) => r.rows_written, num: true },
    { label: 'AWS requests', value: (r) => r.aws_requests, num: true },
    { label: 'Cost Explorer', value: (r) => r.ce_requests, num: true },
    { label: 'Retries', value: (r) => r.retries, num: true },
    { label: 'Window', value: (r) => `${r.window_start.slice(0, 10)} → ${r.window_end.slice(0, 10)}` },
    { label: 'Error', value: (r) => r.error || '', cls: 'key' },
  ];
  root.append(card('Recent runs', table(runColumns, data.runs, { caption: 'Recent runs', testid: 'runs', empty: 'No runs yet: the first one starts within seconds of connecting.' }), {
    actions: [csvButton('cloudspend-collection-runs.csv', runColumns, data.runs)],
  }));
}
