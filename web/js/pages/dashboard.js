// The dashboard: period KPIs, the daily chart, where the money goes, EC2, and ingestion health
// with "Refresh now".

import { h, clear, toast } from '../dom.js';
import { get, post, downloadFrom, ApiError } from '../api.js';
import { navigate, query } from '../router.js';
import { stackedDaily, legend } from '../charts.js';
import {
  money, signedMoney, signedPercent, percent, nanos, fromNanos, sum, addDays, todayUtc, daysBetween,
  longDay, dayRange, ago, seriesLabel, titleCase,
} from '../format.js';
import { pageHead, card, kpi, badge, table, csvButton, button, connectCta, actionButton } from '../ui.js';
import { actionControl, actionsStatus, canAct } from '../actions.js';

const PERIODS = [
  ['7d', 'Last 7 days'], ['30d', 'Last 30 days'], ['90d', 'Last 90 days'],
  ['mtd', 'This month'], ['last-month', 'Last month'], ['12m', 'Last 12 months'], ['custom', 'Custom…'],
];

/** The window the URL asks for, as [from, to) UTC days. */
export function periodFromUrl() {
  const q = query();
  const tomorrow = addDays(todayUtc(), 1);
  const period = q.get('period') || (q.get('from') ? 'custom' : '30d');
  const monthStart = `${todayUtc().slice(0, 8)}01`;
  switch (period) {
    case '7d': return { period, from: addDays(tomorrow, -7), to: tomorrow };
    case '90d': return { period, from: addDays(tomorrow, -90), to: tomorrow };
    case 'mtd': return { period, from: monthStart, to: tomorrow };
    case 'last-month': {
      const d = new Date(`${monthStart}T00:00:00Z`);
      d.setUTCMonth(d.getUTCMonth() - 1);
      return { period, from: d.toISOString().slice(0, 10), to: monthStart };
    }
    case '12m': return { period, from: addDays(tomorrow, -365), to: tomorrow };
    case 'custom': {
      const from = q.get('from') || addDays(tomorrow, -30);
      const to = q.get('to') || tomorrow;
      return { period, from, to: to > from ? to : addDays(from, 1) };
    }
    default: return { period: '30d', from: addDays(tomorrow, -30), to: tomorrow };
  }
}

function periodPicker({ period, from, to }) {
  const select = h('select', { id: 'period', name: 'period', 'data-testid': 'period' },
    PERIODS.map(([value, label]) => h('option', { value, selected: value === period }, label)));
  const fromInput = h('input', { type: 'date', id: 'period-from', value: from });
  const toInput = h('input', { type: 'date', id: 'period-to', value: addDays(to, -1) });
  const custom = h('div.period', { hidden: period !== 'custom' },
    h('div.field', h('label', { for: 'period-from' }, 'From'), fromInput),
    h('div.field', h('label', { for: 'period-to' }, 'To (inclusive)'), toInput),
    button('Apply', () => {
      if (!fromInput.value || !toInput.value) return;
      navigate(`/?period=custom&from=${fromInput.value}&to=${addDays(toInput.value, 1)}`);
    }, { small: true }));
  select.addEventListener('change', () => {
    if (select.value === 'custom') { custom.hidden = false; fromInput.focus(); return; }
    navigate(select.value === '30d' ? '/' : `/?period=${select.value}`);
  });
  return h('div.period', h('div.field', h('label', { for: 'period' }, 'Period'), select), custom);
}

/** GET /api/dashboard; on a server without it, the same figures from the older endpoints. */
async function load(from, to) {
  try {
    return { data: await get(`/api/dashboard?from=${from}&to=${to}`), derived: false };
  } catch (err) {
    if (!(err instanceof ApiError && err.missingEndpoint)) throw err;
    return { data: await derive(from, to), derived: true };
  }
}

async function optional(path, fallback) {
  try { return await get(path); } catch (err) { if (err.status === 404 || err.status === 403) return fallback; throw err; }
}

function top(groups, total) {
  const t = nanos(total);
  const rows = groups.slice(0, 10).map((g) => ({ key: g.key, amount: g.total, share_percent: t ? Number((nanos(g.total) * 10000n) / t) / 100 : 0 }));
  if (groups.length > 10) {
    const rest = sum(groups.slice(10).map((g) => g.total));
    rows.push({ key: 'Other', amount: rest, share_percent: t ? Number((nanos(rest) * 10000n) / t) / 100 : 0 });
  }
  return rows;
}

async function derive(from, to) {
  const days = daysBetween(from, to);
  const tomorrow = addDays(todayUtc(), 1);
  const monthStart = `${todayUtc().slice(0, 8)}01`;
  const [byService, byAccount, byRegion, previous, mtd, instances, connection, collections, recommendations] = await Promise.all([
    get(`/api/costs?from=${from}&to=${to}&group_by=service`),
    get(`/api/costs?from=${from}&to=${to}&group_by=account`),
    get(`/api/costs?from=${from}&to=${to}&group_by=region`),
    get(`/api/costs?from=${addDays(from, -days)}&to=${from}&group_by=service`),
    get(`/api/costs?from=${monthStart}&to=${tomorrow}&group_by=service`),
    optional('/api/instances', { instances: [] }),
    optional('/api/tenants/connection', null),
    optional('/api/collections', { runs: [], jobs: [] }),
    optional('/api/recommendations', null),
  ]);
  const topKeys = byService.groups.slice(0, 5).map((g) => g.key);
  const perDay = new Map();
  for (let d = from; d < to; d = addDays(d, 1)) perDay.set(d, { day: d, parts: new Map(), estimated: false });
  for (const p of byService.points) {
    const entry = perDay.get(p.period);
    if (!entry) continue;
    const key = topKeys.includes(p.key) ? p.key : 'Other';
    entry.parts.set(key, (entry.parts.get(key) ?? 0n) + nanos(p.amount));
    entry.estimated ||= p.estimated;
  }
  const daily = [...perDay.values()].map((d) => ({
    day: d.day,
    amount: fromNanos([...d.parts.values()].reduce((a, b) => a + b, 0n)),
    estimated: d.estimated,
    by_service: [...topKeys, 'Other'].filter((k) => d.parts.has(k)).map((k) => ({ key: k, amount: fromNanos(d.parts.get(k)) })),
  }));
  // Forecast: month-to-date + the average of the last 7 final days × the days left.
  const mtdDays = new Map();
  for (const p of mtd.points) {
    const e = mtdDays.get(p.period) ?? { amount: 0n, estimated: false };
    e.amount += nanos(p.amount); e.estimated ||= p.estimated; mtdDays.set(p.period, e);
  }
  const finals = [...mtdDays.entries()].filter(([, v]) => !v.estimated).sort(([a], [b]) => (a < b ? -1 : 1)).slice(-7);
  const nextMonth = new Date(`${monthStart}T00:00:00Z`); nextMonth.setUTCMonth(nextMonth.getUTCMonth() + 1);
  const remaining = BigInt(daysBetween(tomorrow, nextMonth.toISOString().slice(0, 10)));
  const avg = finals.length ? finals.reduce((a, [, v]) => a + v.amount, 0n) / BigInt(finals.length) : 0n;
  const prevTotal = nanos(previous.total);
  const change = nanos(byService.total) - prevTotal;
  const last = {};
  for (const run of collections.runs) {
    const entry = last[run.collector] ?? (last[run.collector] = { collector: run.collector, last_success_at: null, last_status: run.status, last_error: run.error });
    if (run.status === 'succeeded' && !entry.last_success_at) entry.last_success_at = run.finished_at;
  }
  const byState = {}; const byType = {};
  for (const i of instances.instances) { byState[i.state] = (byState[i.state] ?? 0) + 1; byType[i.instance_type] = (byType[i.instance_type] ?? 0) + 1; }
  const idle = recommendations?.recommendations?.filter((r) => r.kind === 'idle') ?? [];
  return {
    from, to, currency: byService.currency, total: byService.total,
    previous: { from: addDays(from, -days), to: from, total: previous.total },
    change: fromNanos(change), change_percent: prevTotal ? Number((change * 10000n) / prevTotal) / 100 : null,
    month_to_date: mtd.total,
    forecast: { month: monthStart.slice(0, 7), amount: fromNanos(nanos(mtd.total) + avg * remaining), method: 'month-to-date + average of the last 7 final days × remaining days' },
    daily,
    top_services: top(byService.groups, byService.total),
    top_accounts: top(byAccount.groups, byAccount.total),
    top_regions: top(byRegion.groups, byRegion.total),
    instances: { total: instances.instances.length, by_state: byState, by_type: byType },
    idle: { count: idle.length, monthly_savings: recommendations ? sum(idle.map((r) => r.monthly_savings)) : null, findings: idle.slice(0, 5) },
    anomalies: null,
    connection: connection
      ? { status: connection.status, account_id: connection.account_id, auth_method: connection.auth_method, last_verified_at: connection.last_verified_at, last_error: connection.last_error }
      : { status: 'not_connected', account_id: null, auth_method: null, last_verified_at: null, last_error: null },
    collections: Object.values(last),
    aws_api_usage: { requests: collections.aws_requests_this_month, cost_explorer_requests: collections.cost_explorer_requests_this_month, cost: collections.cost_explorer_cost_this_month },
    total_monthly_savings: recommendations?.total_monthly_savings ?? null,
  };
}

async function anomaliesIn(from, to, fallback) {
  try {
    const data = await get(`/api/anomalies?from=${from}&to=${to}`);
    return { list: data.anomalies, available: true };
  } catch (err) {
    if (err.status === 404) return { list: fallback ?? [], available: !!fallback };
    throw err;
  }
}

function shareCell(row) {
  const share = row.share_percent ?? 0;
  return h('span.share', h('span', percent(share)), h('span.bar', { 'aria-hidden': 'true' }, h('span', { style: { width: `${Math.max(0, Math.min(100, share))}%` } })));
}

function topTable(title, rows, currency, filename, keyLabel, blank = '(none)') {
  const columns = [
    { label: keyLabel, value: (r) => r.key, render: (r) => r.key || h('span', { style: { color: 'var(--muted)' } }, blank), cls: 'key' },
    { label: 'Cost', value: (r) => money(r.amount, currency), csv: (r) => r.amount, num: true },
    { label: 'Share', value: (r) => percent(r.share_percent), csv: (r) => r.share_percent, render: shareCell, num: true },
  ];
  return card(title, table(columns, rows, { caption: title, empty: 'No costs in this period.' }), {
    actions: [csvButton(filename, columns, rows)],
  });
}

function statusCard(data, onRefresh) {
  const c = data.connection;
  const connected = c.status !== 'not_connected';
  const strip = h('div.status-strip',
    h('span.item', h('strong', 'AWS: '), badge(titleCase(c.status.replace('_', ' ')), c.status)),
    connected ? h('span.item', 'Account ', h('span.mono', c.account_id || '—'), c.auth_method ? ` · ${c.auth_method === 'role' ? 'IAM role' : 'access key'}` : '') : null,
    connected && c.last_verified_at ? h('span.item', `verified ${ago(c.last_verified_at)}`) : null,
    ...(data.collections || []).map((col) => h('span.item',
      h('span', `${collectorName(col.collector)}: `),
      col.last_status === 'running' ? badge('running', 'running') : col.last_status === 'failed' ? badge('failed', 'failed') : null,
      h('span', col.last_success_at ? ` updated ${ago(col.last_success_at)}` : ' never collected'))));
  const progress = h('div.progress', { 'aria-live': 'polite', 'data-testid': 'refresh-progress' });
  const refresh = actionButton('Refresh now', async (el) => { await refreshNow(progress, el); onRefresh(); }, { testid: 'refresh-now' });
  const actions = connected ? [refresh] : [h('a.btn', { href: '/connect-aws' }, 'Connect AWS')];
  const body = h('div', strip, c.last_error ? h('p.form-error', c.last_error) : null, progress);
  return card('Data status', body, { actions: [h('a.btn.btn-quiet.btn-small', { href: '/collections' }, 'Collection history'), ...actions], id: 'status' });
}

export function collectorName(name) {
  return { ec2: 'EC2', cloudwatch: 'CloudWatch', costexplorer: 'Cost Explorer', cur: 'CUR' }[name] || name;
}

/** POST /api/collect, then follow GET /api/collections until every queued collector has run. */
export async function refreshNow(progress, button) {
  const before = await get('/api/collections?limit=100');
  // A run still going when the button is pressed counts: the scheduler lets it finish rather
  // than start the same collector twice.
  const seen = new Set(before.runs.filter((r) => r.status !== 'running').map((r) => r.id));
  const { queued } = await post('/api/collect', {});
  const list = h('ol');
  clear(progress).append(h('strong', 'Collecting now…'), list);
  const deadline = Date.now() + 5 * 60 * 1000;
  for (;;) {
    const now = await get('/api/collections?limit=100');
    const fresh = now.runs.filter((r) => !seen.has(r.id));
    clear(list);
    let done = 0;
    for (const collector of queued) {
      const run = fresh.find((r) => r.collector === collector);
      let state = 'waiting for a worker';
      if (run?.status === 'running') state = 'running…';
      else if (run?.status === 'succeeded') { state = `done: ${run.rows_written} rows, ${run.aws_requests} AWS requests`; done++; }
      else if (run) { state = `failed: ${run.error || 'see Collections'}`; done++; }
      list.append(h('li', h('strong', `${collectorName(collector)}: `), state));
    }
    if (button) button.textContent = `Refreshing… ${done}/${queued.length}`;
    if (done === queued.length) {
      const failed = fresh.filter((r) => queued.includes(r.collector) && r.status === 'failed').length;
      toast(failed ? `Refresh finished with ${failed} failed collector(s): see Collections` : 'Refresh finished: figures are up to date', failed ? 'error' : 'info');
      if (button) button.textContent = 'Refresh now';
      return;
    }
    if (Date.now() > deadline) {
      progress.append(h('p', 'Still running after 5 minutes: the scheduler may be busy. Check Collections later.'));
      if (button) button.textContent = 'Refresh now';
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 1500));
  }
}

/** The forecast's 90% interval (when the server gives one) and its method in words. */
function forecastDetail(forecast, currency) {
  if (!forecast) return null;
  const interval = forecast.lower != null && forecast.upper != null && forecast.lower !== forecast.upper
    ? h('span', { 'data-testid': 'forecast-interval' }, `(90%: ${money(forecast.lower, currency)} to ${money(forecast.upper, currency)})`)
    : null;
  // The method in words can run long: three lines here, all of it on hover.
  const method = forecast.method
    ? h('span', { title: forecast.method, style: { display: '-webkit-box', webkitLineClamp: '3', webkitBoxOrient: 'vertical', overflow: 'hidden' } }, forecast.method)
    : null;
  return interval && method ? h('span', interval, h('br'), method) : interval ?? method;
}

/** The month's budget: spend and forecast against the amount, with the alert thresholds. */
export function budgetCard(b, currency) {
  const pct = (v) => Math.max(0, Math.min(100, Number(v) || 0));
  // The bar's full width is the larger of the budget and the forecast, so an overrun shows.
  const scale = Math.max(100, Number(b.percent_forecast) || 0, Number(b.percent_spent) || 0);
  const at = (p) => `${(pct((Number(p) / scale) * 100)).toFixed(2)}%`;
  const over = Number(b.percent_spent) >= 100;
  const forecastOver = Number(b.percent_forecast) >= 100;
  const overBy = (figure) => money(fromNanos(nanos(figure) - nanos(b.amount)), currency);
  const crossed = [...(b.crossed?.actual ?? []).map((t) => `${t}% spent`), ...(b.crossed?.forecast ?? []).map((t) => `${t}% forecast`)];
  const meter = h('div.meter', {
    role: 'img',
    'aria-label': `Spent ${money(b.spent, currency)} of ${money(b.amount, currency)} (${percent(b.percent_spent, 0)}); forecast ${money(b.forecast, currency)} (${percent(b.percent_forecast, 0)})`,
  },
  h('span.spent', { class: over ? 'over' : '', style: { width: at(b.percent_spent) } }),
  ...(b.actual_thresholds ?? []).filter((t) => t <= scale && t !== 100).map((t) => h('span.tick', { title: `${t}% alert`, style: { left: at(t) } })),
  h('span.budget-line', { title: 'the budget', style: { left: `calc(${at(100)} - 1px)` } }),
  b.forecast ? h('span.forecast', { title: `forecast ${percent(b.percent_forecast, 0)}`, style: { left: `min(calc(${at(b.percent_forecast)} - 2px), calc(100% - 4px))` } }) : null);
  return card(`Budget · ${b.month}`, h('div', { 'data-testid': 'budget' },
    h('div.status-strip',
      h('span.item', h('strong', { 'data-testid': 'budget-spent' }, money(b.spent, currency)), ` spent of `, h('strong', { 'data-testid': 'budget-amount' }, money(b.amount, currency)),
        h('span', { class: over ? 'delta-up' : '' }, ` (${percent(b.percent_spent, 0)})`)),
      h('span.item', 'Forecast ', h('strong', { 'data-testid': 'budget-forecast' }, money(b.forecast, currency)),
        h('span', { class: forecastOver ? 'delta-up' : 'delta-down' }, ` (${percent(b.percent_forecast, 0)})`),
        b.forecast_lower != null && b.forecast_upper != null && b.forecast_lower !== b.forecast_upper
          ? h('span', { 'data-testid': 'budget-forecast-interval' }, ` (90%: ${money(b.forecast_lower, currency)} to ${money(b.forecast_upper, currency)})`)
          : null)),
    meter,
    h('div.meter-legend',
      h('span', h('span.sw', { class: over ? 'over' : '' }), 'spent this month'),
      h('span', h('span.sw.line'), 'budget'),
      h('span', h('span.sw.fc'), 'month-end forecast'),
      h('span', `alerts at ${(b.actual_thresholds ?? []).map((t) => `${t}%`).join(', ') || 'no'} spent, ${(b.forecast_thresholds ?? []).map((t) => `${t}%`).join(', ') || 'no'} forecast`),
      crossed.length ? h('span', { class: 'delta-up' }, `crossed: ${crossed.join(', ')}`) : null),
    over ? h('p.form-error', `Over budget by ${overBy(b.spent)} this month.`)
      : forecastOver ? h('p.form-error', `At this pace the month ends ${overBy(b.forecast)} over budget.`) : null),
  { id: 'budget', actions: [h('a.btn.btn-quiet.btn-small', { href: '/settings#budget' }, 'Edit budget')], hint: b.forecast_method });
}

function attention(anomalies, currency) {
  const open = anomalies.filter((a) => a.status === 'open');
  if (!open.length) return null;
  const rank = { critical: 4, high: 3, medium: 2, low: 1 };
  const worst = open.slice().sort((a, b) => (rank[b.severity] - rank[a.severity]) || (nanos(b.impact) > nanos(a.impact) ? 1 : -1))[0];
  const cause = worst.root_causes?.[0];
  return h('div.callout.danger', { role: 'region', 'aria-label': 'Needs attention', 'data-testid': 'attention' },
    h('p',
      h('strong', `${open.length} open cost ${open.length === 1 ? 'anomaly' : 'anomalies'} in this period. `),
      `${seriesLabel(worst)} spent ${money(worst.actual, currency)} on ${dayRange(worst.first_day, worst.last_day)}, `,
      `expected about ${money(worst.expected, currency)}: `, h('strong', `${signedMoney(worst.impact, currency)}`),
      cause ? ` — mostly ${cause.key} (${percent(cause.share_percent, 0)}).` : '.'),
    h('a.btn', { href: `/anomalies/${worst.id}` }, 'Review anomaly'),
    open.length > 1 ? h('a.btn.btn-quiet', { href: '/anomalies' }, `All ${open.length}`) : null);
}

export async function page(root, { ctx, isCurrent }) {
  const window_ = periodFromUrl();
  const { data, derived } = await load(window_.from, window_.to);
  const anomalies = await anomaliesIn(window_.from, window_.to, data.anomalies?.latest);
  if (!isCurrent()) return;
  const cur = data.currency || 'USD';
  const rerender = () => navigate(location.pathname + location.search, { replace: true });
  const periodLabel = PERIODS.find(([v]) => v === window_.period)?.[1] || 'Period';
  const tenant = ctx.me.current_tenant?.name;

  const csvDownload = actionButton('Download CSV', () => downloadFrom(`/api/costs?from=${data.from}&to=${data.to}&group_by=service&format=csv`, `cloudspend-costs-${data.from}-to-${addDays(data.to, -1)}.csv`),
    { kind: 'quiet', testid: 'costs-csv', label: 'Download daily costs by service as CSV' });
  root.append(pageHead('Cost overview', {
    sub: `${tenant ? `${tenant} · ` : ''}${longDay(data.from)} – ${longDay(addDays(data.to, -1))} · amounts in ${cur}, unblended`,
    actions: [periodPicker(window_), csvDownload],
  }));

  const hasData = data.daily.some((d) => nanos(d.amount) !== 0n);
  if (data.connection.status === 'not_connected' && !hasData) {
    root.append(connectCta());
    return;
  }
  root.append(statusCard(data, rerender));
  if (!hasData) {
    root.append(h('div.callout.info', h('p', h('strong', 'No costs in this period yet. '),
      'The first collection backfills up to 13 months of Cost Explorer history and usually takes a minute or two. Press "Refresh now" to watch it, or pick a longer period.')));
  }
  const att = attention(anomalies.list, cur);
  if (att) root.append(att);

  const changeN = nanos(data.change);
  const changeDetail = h('span', h('span', { class: changeN > 0n ? 'delta-up' : changeN < 0n ? 'delta-down' : '' },
    `${changeN > 0n ? '▲' : changeN < 0n ? '▼' : ''} ${signedMoney(data.change, cur)} (${signedPercent(data.change_percent)})`), ' vs previous period');
  const openCount = anomalies.available ? anomalies.list.filter((a) => a.status === 'open').length : (data.anomalies?.open ?? null);
  const savings = data.idle?.monthly_savings ?? data.total_monthly_savings;
  root.append(h('div.kpis',
    kpi(`Total · ${periodLabel.replace('…', '')}`, money(data.total, cur), changeDetail, { testid: 'kpi-total' }),
    kpi('Month to date', money(data.month_to_date, cur), data.forecast?.month ? `${data.forecast.month}` : null, { testid: 'kpi-mtd' }),
    kpi('Month-end forecast', data.forecast ? money(data.forecast.amount, cur) : '—', forecastDetail(data.forecast, cur), { testid: 'kpi-forecast' }),
    kpi('Open anomalies', openCount === null ? '—' : String(openCount), openCount ? 'needs review' : openCount === 0 ? 'nothing unusual' : 'detector not available', { tone: openCount ? 'alert' : 'good', href: '/anomalies', testid: 'kpi-anomalies' }),
    kpi('Savings available', savings === null || savings === undefined ? '—' : `${money(savings, cur)}/mo`, data.idle?.count ? `${data.idle.count} idle instance${data.idle.count === 1 ? '' : 's'}` : 'no idle instances found', { tone: savings && nanos(savings) > 0n ? 'good' : '', href: '/recommendations', testid: 'kpi-savings' })));

  if (data.budget) root.append(budgetCard(data.budget, cur));

  const chart = h('div', { 'data-testid': 'daily-chart' });
  const chartCard = card('Daily cost by service', chart, {
    hint: 'Hatched, lighter bars are estimated days that Cost Explorer may still revise. Red markers are anomalies; hover a day for its breakdown.',
    id: 'daily',
  });
  root.append(chartCard);
  const { keys, colors } = stackedDaily(chart, {
    daily: data.daily, anomalies: anomalies.list, currency: cur,
    onDay: (d) => { const a = anomalies.list.find((x) => d.day >= x.first_day && d.day <= (x.last_day || x.first_day)); if (a) navigate(`/anomalies/${a.id}`); },
  });
  chartCard.append(legend(keys, colors));

  root.append(topTable('Top services', data.top_services, cur, 'cloudspend-top-services.csv', 'Service'));
  root.append(h('div.grid.grid-2',
    topTable('Top accounts', data.top_accounts, cur, 'cloudspend-top-accounts.csv', 'Account'),
    topTable('Top regions', data.top_regions, cur, 'cloudspend-top-regions.csv', 'Region', '(global services)')));
  root.append(h('div', { style: { height: '18px' } }));

  const inst = data.instances || { total: 0, by_state: {}, by_type: {} };
  const actionStatus = data.idle?.findings?.length && canAct(ctx.me) ? await actionsStatus() : null;
  const ec2Body = inst.total
    ? h('div',
      h('div.status-strip',
        h('span.item', h('strong', String(inst.total)), ' instances'),
        ...Object.entries(inst.by_state).map(([state, n]) => h('span.item', badge(`${n} ${state}`, state === 'running' ? 'running-state' : state === 'stopped' ? 'stopped-state' : 'neutral')))),
      h('p', { style: { margin: '10px 0 6px', color: 'var(--muted)' } }, 'By type: ', Object.entries(inst.by_type).sort((a, b) => b[1] - a[1]).map(([t, n]) => `${t} × ${n}`).join(', ')),
      data.idle?.findings?.length
        ? table([
          { label: 'Idle instance', value: (r) => r.instance_id, render: (r) => h('a', { href: `/instances/${r.instance_id}` }, r.instance_id) },
          { label: 'Type', value: (r) => r.instance_type },
          { label: 'CPU p95', value: (r) => percent(r.cpu_p95), num: true },
          { label: 'Save / month', value: (r) => money(r.monthly_savings, cur), num: true },
          { label: 'Act', value: () => '', render: (r) => (r.state && r.state !== 'running' ? badge(r.state, 'neutral') : actionControl(r.instance_id, 'stop', { me: ctx.me, status: actionStatus, onDone: rerender })) },
        ], data.idle.findings, { caption: 'Idle instances', testid: 'idle-findings' })
        : h('p', 'No idle instances found.'))
    : h('p', 'No EC2 instances collected yet. They appear after the EC2 collector runs.');
  const usage = data.aws_api_usage;
  root.append(h('div.grid.grid-2',
    card('EC2', ec2Body, { actions: [h('a.btn.btn-quiet.btn-small', { href: '/instances' }, 'All instances')] }),
    card('What CloudSpend costs you in AWS API calls', usage ? h('div.status-strip',
      h('span.item', h('strong', String(usage.requests ?? 0)), ' AWS requests this month'),
      h('span.item', h('strong', String(usage.cost_explorer_requests ?? 0)), ' Cost Explorer requests'),
      h('span.item', h('strong', money(usage.cost ?? '0', cur)), ' billed by AWS ($0.01 each)')) : h('p', 'No data.'),
    { hint: 'Cost Explorer bills every API request; CloudSpend re-reads only the last 7 days on each run.' })));
  if (derived) {
    root.append(h('p', { style: { color: 'var(--muted)', fontSize: '.85rem' } }, 'Figures computed in the browser from /api/costs: this server has no /api/dashboard yet.'));
  }
}
