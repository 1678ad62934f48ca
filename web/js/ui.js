// Shared pieces of every page: headings, cards, tables with CSV download, KPI tiles, badges,
// empty and error states.

import { h } from './dom.js';
import { downloadCsv } from './csv.js';
import { navigate } from './router.js';

export function pageHead(title, { sub, actions = [] } = {}) {
  document.title = `${title} · CloudSpend`;
  return h('div.page-head', h('h1', { id: 'page-title' }, title), ...actions, sub ? h('p.sub', sub) : null);
}

export function card(title, body, { actions = [], hint, id, label } = {}) {
  const headingId = id ? `${id}-title` : undefined;
  return h('section.card', { id, 'aria-labelledby': headingId, 'aria-label': headingId ? undefined : label ?? title },
    title || actions.length ? h('div.card-head', title ? h('h2', { id: headingId }, title) : null, ...actions, hint ? h('p.hint', hint) : null) : null,
    body);
}

export function kpi(label, value, detail, { tone, href, testid } = {}) {
  const valueEl = href ? h('a.value', { href, 'data-testid': testid }, value) : h('div.value', { 'data-testid': testid }, value);
  return h('div.kpi', { class: tone || '' }, h('div.label', label), valueEl, detail ? h('div.detail', detail) : null);
}

export function badge(text, kind) {
  return h('span.badge', { class: kind || String(text).toLowerCase().replace(/\s+/g, '_') }, text);
}

export function link(href, text, props = {}) {
  return h('a', { href, ...props }, text);
}

export function button(text, onClick, { kind = '', small = false, label, testid, type = 'button' } = {}) {
  return h('button.btn', { type, class: [kind && `btn-${kind}`, small && 'btn-small'].filter(Boolean).join(' '), 'aria-label': label, 'data-testid': testid, on: { click: onClick } }, text);
}

/** A button that disables itself while `action` runs and reports failures. */
export function actionButton(text, action, opts = {}) {
  const el = button(text, async () => {
    el.disabled = true;
    try { await action(el); } catch (err) { showError(err); } finally { if (el.isConnected) el.disabled = false; }
  }, opts);
  return el;
}

/**
 * A table: columns = [{label, value: row => text (also the CSV), render?: row => Node, num?}].
 * With `csv` a "Download CSV" button exports exactly the rows shown.
 */
export function table(allColumns, rows, { csv, caption, empty = 'Nothing to show.', testid } = {}) {
  const columns = allColumns.filter((c) => !c.noTable);
  const t = h('table', { 'data-testid': testid },
    caption ? h('caption.visually-hidden', caption) : null,
    h('thead', h('tr', columns.map((c) => h('th', { scope: 'col', class: c.num ? 'num' : '' }, c.label)))),
    h('tbody', rows.length ? rows.map((row) => h('tr', columns.map((c) => h('td', { class: [c.num ? 'num' : '', c.cls || ''].join(' ') }, c.render ? c.render(row) : c.value(row))))) :
      h('tr', h('td', { colspan: columns.length, class: 'empty-row' }, empty))));
  return h('div.table-wrap', t);
}

export function csvButton(filename, columns, rows, { label = 'Download CSV' } = {}) {
  return button(label, () => downloadCsv(filename, columns.filter((c) => !c.noCsv).map((c) => ({ label: c.csvLabel || c.label, value: c.csv || c.value })), rows),
    { kind: 'quiet', small: true, label: `${label}: ${filename}` });
}

export function emptyState(title, text, actions = []) {
  return h('div.empty', h('h2', title), text ? h('p', text) : null, h('div.btn-group', { style: { justifyContent: 'center' } }, ...actions));
}

export function connectCta(text = 'Connect an AWS account and CloudSpend collects your costs, EC2 inventory and CPU — read-only, through a role you create with one CloudFormation stack.') {
  return card(null, emptyState('Connect AWS to get started', text, [
    link('/connect-aws', 'Connect AWS', { class: 'btn', 'data-testid': 'connect-cta' }),
  ]), { label: 'Get started' });
}

export function errorBox(err, { retry } = {}) {
  return h('div.callout.danger', { role: 'alert' },
    h('p', h('strong', 'Something went wrong. '), err?.message || String(err), err?.hint ? ` ${err.hint}` : ''),
    retry ? button('Try again', retry, { kind: 'quiet', small: true }) : null);
}

export function notYet(what) {
  return h('div.callout.info', h('p', `${what} is not available on this server yet (its API endpoint is missing). Update CloudSpend to the latest version to use it.`));
}

export function showError(err) {
  import('./dom.js').then(({ toast }) => toast(err?.message || String(err), 'error'));
}

export function go(path) {
  navigate(path);
}
