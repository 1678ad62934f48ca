// Savings: idle, oversized and stopped-with-volumes instances with what acting on them saves.

import { h } from '../dom.js';
import { get, ApiError } from '../api.js';
import { money, percent, nanos, fromNanos } from '../format.js';
import { pageHead, card, kpi, badge, table, csvButton, emptyState, notYet } from '../ui.js';
import { actionControl, actionsNote, actionsStatus, canAct } from '../actions.js';
import { navigate } from '../router.js';

const KIND = { idle: 'Idle', oversized: 'Oversized', stopped_with_volumes: 'Stopped, volumes kept' };

export async function page(root, { ctx }) {
  root.append(pageHead('Savings', { sub: 'Instances that cost money for little work, from two weeks of hourly CPU, and stopped instances whose volumes are still billed (from your CUR). Priced from your CUR where it has the instance, on-demand list prices otherwise.' }));
  let data;
  try {
    data = await get('/api/recommendations');
  } catch (err) {
    if (err instanceof ApiError && err.missingEndpoint) { root.append(notYet('Recommendations')); return; }
    throw err;
  }
  const cur = data.currency || 'USD';
  const recs = data.recommendations;
  root.append(h('div.kpis',
    kpi('Savings available', `${money(data.total_monthly_savings, cur)}/mo`, `${money(fromNanos(nanos(data.total_monthly_savings) * 12n), cur)} a year`, { tone: recs.length ? 'good' : '', testid: 'savings-total' }),
    kpi('Findings', String(recs.length), Object.entries(recs.reduce((acc, r) => ({ ...acc, [r.kind]: (acc[r.kind] ?? 0) + 1 }), {})).map(([k, n]) => `${n} ${KIND[k] ?? k}`).join(', ') || 'none')));
  if (!recs.length) {
    root.append(card(null, emptyState('Nothing to save right now', 'No instance has been idle or oversized over the last 14 days, and no stopped instance has billed volumes. CloudSpend needs CPU history: new connections show findings after a few days.', [h('a.btn.btn-quiet', { href: '/instances' }, 'See instances')])));
    return;
  }
  // Findings are recomputed after collections; an instance stopped since then shows its state
  // now rather than a Stop that would only be refused.
  const current = new Map(((await get('/api/instances').catch(() => null))?.instances ?? []).map((i) => [i.instance_id, i.state]));
  const stateNow = (r) => current.get(r.instance_id) ?? r.state;
  const stoppable = recs.some((r) => r.action === 'stop' && stateNow(r) === 'running');
  const status = stoppable && canAct(ctx.me) ? await actionsStatus() : null;
  const rerender = () => navigate(location.pathname + location.search, { replace: true });
  const note = stoppable ? actionsNote(ctx.me, status) : null;
  if (note) root.append(note);
  const columns = [
    { label: 'Finding', value: (r) => KIND[r.kind] ?? r.kind },
    { label: 'Instance', value: (r) => r.instance_id, render: (r) => h('div', h('a', { href: `/instances/${r.instance_id}` }, r.name || r.instance_id), r.name ? h('div.mono.sub-id', r.instance_id) : null) },
    { label: 'Name', value: (r) => r.name ?? '', noTable: true },
    { label: 'Type', value: (r) => r.instance_type },
    { label: 'Action', value: (r) => `${r.action}${r.suggested_type ? ` → ${r.suggested_type}` : ''}` },
    { label: 'CPU p95', value: (r) => percent(r.cpu_p95), csv: (r) => r.cpu_p95, num: true },
    { label: 'Cost / month', value: (r) => money(r.monthly_cost, cur), csv: (r) => r.monthly_cost, num: true },
    { label: 'Save / month', value: (r) => money(r.monthly_savings, cur), csv: (r) => r.monthly_savings, num: true, render: (r) => h('strong', money(r.monthly_savings, cur)) },
    { label: 'Evidence', value: (r) => r.evidence },
    { label: 'Region', value: (r) => r.region, noCsv: false },
    { label: 'Act', value: () => '', noCsv: true, render: (r) => (r.action === 'stop' && stateNow(r) === 'running'
      ? actionControl(r.instance_id, 'stop', { me: ctx.me, status, onDone: rerender })
      : r.action === 'stop' ? h('span', { 'data-testid': `state-${r.instance_id}` }, badge(stateNow(r), 'neutral'))
        : h('a.btn.btn-quiet.btn-small', { href: `/instances/${r.instance_id}` }, 'Details')) },
  ];
  root.append(card(`${recs.length} recommendations`, table(columns, recs, { caption: 'Recommendations', testid: 'recommendations' }), { actions: [csvButton('cloudspend-recommendations.csv', columns, recs)] }));
}
