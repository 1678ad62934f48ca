// Anomalies: the list (severity, impact, root causes) and one anomaly with its expected band.

import { h, toast } from '../dom.js';
import { get, post, ApiError } from '../api.js';
import { navigate, query } from '../router.js';
import { bandChart } from '../charts.js';
import { money, signedMoney, percent, dayRange, seriesLabel, dateTime, titleCase } from '../format.js';
import { pageHead, card, badge, table, csvButton, actionButton, emptyState, notYet } from '../ui.js';

const STATUSES = [['open', 'Open'], ['acknowledged', 'Acknowledged'], ['planned', 'Planned'], ['resolved', 'Resolved'], ['all', 'All']];
const ACTIONS = [['acknowledged', 'Acknowledge'], ['resolved', 'Mark resolved'], ['planned', 'Mark planned']];

function causes(anomaly, currency) {
  const list = anomaly.root_causes || [];
  if (!list.length) return 'No single driver found.';
  return ['Driven by ', list.slice(0, 3).map((c, i) => [i ? ', ' : '', h('strong', c.key), ` (${c.dimension.replace('_', ' ')}, ${signedMoney(c.impact, currency)}, ${percent(c.share_percent, 0)})`,
    c.cpu ? ` CPU p95 ${percent(c.cpu.p95, 0)}` : '']), '.'];
}

function statusButtons(anomaly, onDone) {
  return h('div.btn-group.actions',
    ACTIONS.filter(([status]) => status !== anomaly.status).map(([status, label]) => actionButton(label, async () => {
      const updated = await post(`/api/anomalies/${anomaly.id}/status`, { status });
      toast(`Anomaly ${updated.status}`);
      onDone(updated);
    }, { small: true, kind: status === 'acknowledged' ? '' : 'quiet', testid: `set-${status}`, label: `${label}: ${seriesLabel(anomaly)} on ${dayRange(anomaly.first_day, anomaly.last_day)}` })),
    anomaly.status !== 'open' ? actionButton('Reopen', async () => { onDone(await post(`/api/anomalies/${anomaly.id}/status`, { status: 'open' })); }, { small: true, kind: 'quiet' }) : null);
}

// Series the detector does not judge yet (too few final days): said, not silently skipped.
async function coverageNote() {
  const coverage = await get('/api/anomalies/series').catch(() => null);
  const waiting = (coverage?.series ?? []).filter((s) => s.status === 'insufficient_history');
  if (!waiting.length) return null;
  const shown = waiting.slice(0, 6).map((s) => `${seriesLabel(s)}: ${s.days} of ${s.required} days`);
  const more = waiting.length > shown.length ? `, and ${waiting.length - shown.length} more` : '';
  return h('div.callout.info', { 'data-testid': 'insufficient-history', role: 'note' },
    h('p', h('strong', `${waiting.length} ${waiting.length === 1 ? 'series has' : 'series have'} too little history to judge yet`),
      ` (${coverage.scored} judged). CloudSpend waits for enough final days rather than guessing: ${shown.join('; ')}${more}.`));
}

function anomalyCard(a, currency, rerender) {
  return h('article.anomaly', { class: `sev-${a.severity}`, 'data-testid': 'anomaly', 'data-id': a.id, 'aria-labelledby': `an-${a.id}` },
    h('div',
      h('div.what', { id: `an-${a.id}` }, badge(a.severity, a.severity), ' ', h('a', { href: `/anomalies/${a.id}` }, seriesLabel(a)), ' · ', dayRange(a.first_day, a.last_day)),
      h('div.meta', `Actual ${money(a.actual, currency)} vs expected ${money(a.expected, currency)} (range ${money(a.lower, currency)} – ${money(a.upper, currency)}) · score ${Number(a.score).toFixed(1)} · `, badge(a.status, a.status))),
    h('div.impact', signedMoney(a.impact, currency), h('div.meta', a.impact_percent === null || a.impact_percent === undefined ? '' : `${a.impact_percent > 0 ? '+' : ''}${Number(a.impact_percent).toFixed(0)}% over expected`)),
    h('div.causes', causes(a, currency)),
    statusButtons(a, rerender));
}

export async function list(root) {
  const status = query().get('status') || 'open';
  root.append(pageHead('Anomalies', { sub: 'Days whose spend left the expected range, with what drove them. Acknowledge what you have seen, mark planned changes, resolve what is fixed.' }));
  let data;
  try {
    data = await get(`/api/anomalies${status === 'all' ? '' : `?status=${status}`}`);
  } catch (err) {
    if (err instanceof ApiError && err.missingEndpoint) { root.append(notYet('Anomaly detection')); return; }
    throw err;
  }
  const currency = 'USD';
  root.append(h('nav.tabs', { 'aria-label': 'Filter by status' }, STATUSES.map(([value, label]) =>
    h('a', { href: value === 'open' ? '/anomalies' : `/anomalies?status=${value}`, 'aria-current': value === status ? 'page' : null }, label))));
  const note = await coverageNote();
  if (note) root.append(note);
  const rerender = () => navigate(location.pathname + location.search, { replace: true });
  const rows = data.anomalies;
  const columns = [
    { label: 'Series', value: (a) => seriesLabel(a) }, { label: 'First day', value: (a) => a.first_day }, { label: 'Last day', value: (a) => a.last_day },
    { label: 'Severity', value: (a) => a.severity }, { label: 'Status', value: (a) => a.status },
    { label: 'Actual', value: (a) => a.actual }, { label: 'Expected', value: (a) => a.expected }, { label: 'Impact', value: (a) => a.impact },
    { label: 'Top cause', value: (a) => a.root_causes?.[0]?.key ?? '' },
  ];
  if (!rows.length) {
    root.append(card(null, emptyState(status === 'open' ? 'No open anomalies' : `No ${status === 'all' ? '' : `${status} `}anomalies`,
      status === 'open' ? 'Spend is within the expected range. CloudSpend checks every series after each cost collection.' : 'Nothing here yet.',
      [h('a.btn.btn-quiet', { href: '/' }, 'Back to the dashboard')]), { label: 'Anomalies' }));
    return;
  }
  root.append(card(`${rows.length} ${status === 'all' ? '' : `${status} `}${rows.length === 1 ? 'anomaly' : 'anomalies'}`,
    h('div.anomaly-list', rows.map((a) => anomalyCard(a, currency, rerender))),
    { actions: [csvButton('cloudspend-anomalies.csv', columns, rows)] }));
}

export async function detail(root, { params }) {
  let data;
  try {
    data = await get(`/api/anomalies/${encodeURIComponent(params.id)}`);
  } catch (err) {
    if (err instanceof ApiError && err.missingEndpoint) { root.append(notYet('Anomaly detection')); return; }
    if (err.status === 404) { root.append(pageHead('Anomaly not found'), card(null, emptyState('This anomaly does not exist', 'It may belong to another tenant.', [h('a.btn', { href: '/anomalies' }, 'All anomalies')]))); return; }
    throw err;
  }
  const a = data.anomaly;
  const currency = 'USD';
  const rerender = () => navigate(location.pathname, { replace: true });
  root.append(pageHead(`${seriesLabel(a)}: ${signedMoney(a.impact, currency)}`, {
    sub: `${titleCase(a.severity)} anomaly on ${dayRange(a.first_day, a.last_day)} · status ${a.status}`,
    actions: [h('a.btn.btn-quiet', { href: '/anomalies' }, 'All anomalies')],
  }));
  root.append(h('div.callout', { class: a.status === 'open' ? 'danger' : 'info' },
    h('p', h('strong', `Actual ${money(a.actual, currency)} vs expected ${money(a.expected, currency)}. `), causes(a, currency)),
    statusButtons(a, rerender)));
  const chart = h('div', { 'data-testid': 'band-chart' });
  const chartCard = card('Actual vs expected range', chart, { hint: 'The shaded band is the range CloudSpend expected from this series\' history; red points are the anomalous days.' });
  root.append(chartCard);
  if (data.series?.length) bandChart(chart, { series: data.series, first: a.first_day, last: a.last_day, currency });
  else chart.append(h('p', 'No series data around this anomaly.'));
  chartCard.append(h('div.legend', h('span.item', h('span.swatch', { style: { background: '#c7d7fe' } }), 'Expected range'),
    h('span.item', h('span.swatch', { style: { background: '#0f172a' } }), 'Actual'), h('span.item', h('span.swatch.anom'), 'Anomalous day')));
  const planned = (data.series ?? []).filter((d) => d.status === 'planned');
  if (planned.length) {
    chartCard.append(h('p.meta', { 'data-testid': 'planned-days' },
      `${dayRange(planned[0].day, planned[planned.length - 1].day)}: planned change settling, not judged; later days are judged against the new level.`));
  }

  const causeColumns = [
    { label: 'Dimension', value: (c) => c.dimension }, { label: 'Key', value: (c) => c.key, cls: 'key' },
    { label: 'Impact', value: (c) => signedMoney(c.impact, currency), csv: (c) => c.impact, num: true },
    { label: 'Share', value: (c) => percent(c.share_percent), csv: (c) => c.share_percent, num: true },
    { label: 'CPU p95', value: (c) => (c.cpu ? percent(c.cpu.p95) : ''), num: true },
  ];
  root.append(h('div.grid.grid-2',
    card('Root causes', table(causeColumns, a.root_causes || [], { empty: 'No single driver found.', caption: 'Root causes' }), { actions: [csvButton('cloudspend-anomaly-root-causes.csv', causeColumns, a.root_causes || [])] }),
    card('Details', h('dl.facts',
      h('dt', 'Series'), h('dd', h('code', a.series)),
      h('dt', 'Days'), h('dd', dayRange(a.first_day, a.last_day)),
      h('dt', 'Expected range'), h('dd', `${money(a.lower, currency)} – ${money(a.upper, currency)}`),
      h('dt', 'Score'), h('dd', Number(a.score).toFixed(2)),
      h('dt', 'Severity'), h('dd', badge(a.severity, a.severity)),
      h('dt', 'Status'), h('dd', badge(a.status, a.status)),
      h('dt', 'Detected'), h('dd', dateTime(a.created_at)),
      h('dt', 'Updated'), h('dd', dateTime(a.updated_at))))));
}
