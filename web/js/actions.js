// Stop / start an EC2 instance in two steps: POST /api/instances/{id}/actions answers what will
// happen and a one-time token (nothing changes in AWS yet), a dialog shows it with a countdown
// to the token's expiry, and "Confirm" spends the token on POST /api/actions/confirm.

import { h } from './dom.js';
import { get, post } from './api.js';
import { openDialog, dialogActions } from './dialog.js';
import { money, dateTime } from './format.js';
import { badge } from './ui.js';

const VERB = { stop: 'Stop', start: 'Start' };
const DOING = { stop: 'Stopping', start: 'Starting' };

export function canAct(me) {
  return ['owner', 'admin'].includes(me?.current_tenant?.role);
}

let statusCache = null;

/** GET /api/actions/status, remembered for two minutes (each check is an EC2 DryRun). Null when
 *  it cannot be told (no connection, an older server). */
export async function actionsStatus() {
  if (statusCache && Date.now() - statusCache.at < 120_000) return statusCache.value;
  let value = null;
  try { value = await get('/api/actions/status'); } catch { value = null; }
  statusCache = { at: Date.now(), value };
  return value;
}

let describeCounter = 0;

/**
 * The Stop / Start button for an instance. Viewers (and connections without actions) get it
 * disabled, with the reason as its tooltip and accessible description.
 */
export function actionControl(instanceId, action, { me, status, onDone, small = true, label } = {}) {
  const verb = VERB[action];
  let reason = null;
  if (!canAct(me)) reason = `Only owners and admins can ${action} instances; you are a ${me?.current_tenant?.role ?? 'viewer'}.`;
  else if (status?.enabled === false) reason = status.message || status.how_to_enable;
  const button = h('button.btn', {
    type: 'button',
    class: [action === 'stop' ? 'btn-danger' : '', small ? 'btn-small' : ''].filter(Boolean).join(' '),
    'aria-label': label ?? `${verb} ${instanceId}`,
    'data-testid': `${action}-${instanceId}`,
    disabled: !!reason,
    on: { click: () => requestAction(instanceId, action, { onDone }) },
  }, verb);
  if (!reason) return button;
  const id = `action-why-${++describeCounter}`;
  button.setAttribute('aria-describedby', id);
  // A disabled button gets no pointer events in some browsers: the tooltip sits on a wrapper.
  return h('span.action-wrap', { title: reason }, button, h('span.visually-hidden', { id }, reason));
}

/** A one-line callout saying why Stop/Start are disabled on this page, if they are. */
export function actionsNote(me, status) {
  if (!canAct(me)) {
    return h('div.callout.info', { 'data-testid': 'actions-viewer-note' }, h('p',
      h('strong', 'Read-only: '), `you are a ${me?.current_tenant?.role ?? 'viewer'} in this tenant, so Stop and Start are disabled. Owners and admins can act on findings.`));
  }
  if (status?.enabled === false) {
    return h('div.callout.warn', { 'data-testid': 'actions-disabled-note' }, h('p',
      h('strong', 'Actions are not enabled on this AWS connection. '), status.message || status.how_to_enable),
    h('a.btn.btn-quiet.btn-small', { href: '/connect-aws' }, 'Connect AWS'));
  }
  return null;
}

function refusal(err, action, instanceId) {
  const what = `${action} ${instanceId}`;
  const lines = {
    // Its message already says what and how: shown as is, with no lead.
    actions_disabled: [null, null],
    insufficient_role: ['You cannot do this', null],
    invalid_state: ['Nothing to do', 'CloudSpend shows the state of the last EC2 collection: refresh the data if it changed since.'],
    token_expired: ['The confirmation expired', `Confirmations last 5 minutes. Ask again to ${what}.`],
    token_used: ['The confirmation was already used', `Each confirmation works once. Ask again to ${what}.`],
    token_not_yours: ['This confirmation belongs to another user', null],
    aws_error: ['AWS refused the request', null],
    network: ['CloudSpend did not answer', null],
  }[err.code] ?? [err.status === 404 ? 'Instance not found' : 'Something went wrong', null];
  return h('div.callout.danger', { role: 'alert', 'data-testid': 'action-error', 'data-code': err.code ?? '' },
    h('p', lines[0] ? h('strong', `${lines[0]}. `) : null, /[.!?]$/.test(err.message) ? err.message : `${err.message}.`,
      err.awsCode ? h('span', ' (AWS code ', h('code', err.awsCode), ')') : null,
      lines[1] ? h('span', ` ${lines[1]}`) : null));
}

function facts(ticket) {
  const i = ticket.instance;
  const f = ticket.finding;
  const basis = { recommendation: 'from the finding', cur: 'its last 30 days in the Cost and Usage Report' }[ticket.cost_basis];
  return h('dl.facts',
    h('dt', 'Instance'), h('dd', h('code', i.instance_id), i.name ? ` (${i.name})` : ''),
    h('dt', 'Type'), h('dd', i.instance_type),
    h('dt', 'Where'), h('dd', `${i.region}, account `, h('span.mono', i.account_id)),
    h('dt', 'State now'), h('dd', badge(i.state, i.state === 'running' ? 'running-state' : i.state === 'stopped' ? 'stopped-state' : 'neutral')),
    h('dt', 'Monthly cost'), h('dd', { 'data-testid': 'action-cost' }, ticket.monthly_cost ? [h('strong', money(ticket.monthly_cost)), basis ? ` (${basis})` : ''] : 'unknown'),
    f ? [h('dt', 'Finding'), h('dd', { 'data-testid': 'action-finding' },
      badge(f.kind, f.kind === 'idle' ? 'idle' : 'oversized'), ` ${f.evidence}`,
      f.monthly_savings ? h('span', ' — saves ', h('strong', `${money(f.monthly_savings)}/month`)) : null)] : null);
}

/** Runs the whole flow for one instance; `onDone(result)` after a confirmed action. */
export async function requestAction(instanceId, action, { onDone } = {}) {
  const verb = VERB[action];
  const dialog = openDialog(`${verb} ${instanceId}?`, { testid: 'action-dialog' });
  let timer = 0;
  let result = null;
  dialog.closed.then(() => { clearInterval(timer); if (result) onDone?.(result); });
  const closeButton = (text = 'Close') => h('button.btn.btn-quiet', { type: 'button', on: { click: () => dialog.close() } }, text);

  const ask = async () => {
    clearInterval(timer);
    dialog.setTitle(`${verb} ${instanceId}?`);
    dialog.setBody(h('p.loading', { role: 'status' }, 'Checking the instance and the role’s permission (nothing changes yet)…'));
    let ticket;
    try {
      ticket = await post(`/api/instances/${encodeURIComponent(instanceId)}/actions`, { action });
    } catch (err) {
      dialog.setTitle(`Cannot ${action} ${instanceId}`);
      dialog.setBody(refusal(err, action, instanceId),
        err.code === 'actions_disabled' ? h('p', 'Update the stack in the CloudFormation console (or with the AWS CLI), then try again.') : null,
        dialogActions(closeButton()));
      return;
    }
    showTicket(ticket);
  };

  const showTicket = (ticket) => {
    const name = ticket.instance.name ? `${ticket.instance.name} (${instanceId})` : instanceId;
    dialog.setTitle(`${verb} ${name}?`);
    const expiresAt = new Date(ticket.expires_at).getTime();
    const countdown = h('span', { 'data-testid': 'action-countdown' });
    const expiredNote = h('p.form-error', { role: 'alert' });
    const confirm = h('button.btn', {
      type: 'button', class: action === 'stop' ? 'btn-danger' : '', 'data-testid': 'confirm-action',
      on: { click: () => confirmAction(ticket, confirm) },
    }, `Confirm ${action}`);
    const cancel = h('button.btn.btn-quiet', { type: 'button', 'data-autofocus': true, on: { click: () => dialog.close() } }, 'Cancel');
    const tick = () => {
      const left = Math.max(0, Math.round((expiresAt - Date.now()) / 1000));
      countdown.textContent = left ? `${Math.floor(left / 60)}:${String(left % 60).padStart(2, '0')}` : '0:00';
      if (!left && !confirm.disabled) {
        clearInterval(timer);
        confirm.disabled = true;
        expiredNote.replaceChildren('This confirmation expired. ', h('button.btn.btn-small', { type: 'button', on: { click: ask } }, 'Ask again'));
      }
    };
    tick();
    timer = setInterval(tick, 1000);
    dialog.setBody(
      h('p.summary', { 'data-testid': 'action-summary' }, ticket.summary),
      facts(ticket),
      h('p.expiry', 'Nothing has changed in AWS yet. This confirmation expires in ', countdown,
        h('span.muted', ` (at ${new Date(ticket.expires_at).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' })})`), '.'),
      expiredNote,
      dialogActions(cancel, confirm));
  };

  const confirmAction = async (ticket, button) => {
    clearInterval(timer);
    button.disabled = true;
    button.textContent = `${DOING[action]}…`;
    let done;
    try {
      done = await post('/api/actions/confirm', { token: ticket.token });
    } catch (err) {
      const again = ['token_expired', 'token_used'].includes(err.code);
      dialog.setTitle(`${verb} ${instanceId}: not done`);
      dialog.setBody(refusal(err, action, instanceId),
        dialogActions(closeButton(), again ? h('button.btn', { type: 'button', 'data-autofocus': true, on: { click: ask } }, 'Ask again') : null));
      return;
    }
    result = done;
    dialog.setTitle(`${instanceId} is ${done.state ?? 'changing state'}`);
    dialog.setBody(
      h('div.callout.ok', { role: 'status', 'data-testid': 'action-done' }, h('p',
        h('strong', `${DOING[action]}: `), `${instanceId} is now `, badge(done.state ?? 'unknown', 'neutral'),
        done.previous_state ? ` (was ${done.previous_state}).` : '.')),
      h('dl.facts',
        h('dt', 'Done at'), h('dd', dateTime(done.done_at)),
        h('dt', 'Region'), h('dd', done.region),
        h('dt', 'AWS request id'), h('dd', h('code', done.aws_request_id ?? '—'))),
      h('p', 'The audit log records it with your email. The next EC2 collection confirms the final state.'),
      dialogActions(h('button.btn', { type: 'button', 'data-autofocus': true, on: { click: () => dialog.close() } }, 'Done')));
  };

  await ask();
}
