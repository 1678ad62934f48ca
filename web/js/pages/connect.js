// Connect AWS: the onboarding steps on one page — external ID and quick-create link, the form
// with every field of POST /api/tenants/connect, and the diagnostics report step by step.

import { h, clear } from '../dom.js';
import { get, post, ApiError } from '../api.js';
import { pageHead, card, badge, errorBox } from '../ui.js';
import { dateTime } from '../format.js';

const RULES = {
  aws_role_arn: [/^arn:aws(-[a-z]+)*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/, 'Paste the stack\'s RoleArn output: arn:aws:iam::123456789012:role/Name'],
  external_id: [/^[\w+=,.@:/-]{2,1224}$/, 'Copy the external ID shown above'],
  access_key_id: [/^[A-Za-z0-9]{16,128}$/, 'Looks like AKIAIOSFODNN7EXAMPLE (16–128 letters and digits)'],
  secret_access_key: [/^\S{1,128}$/, 'The 40-character secret access key (no spaces)'],
  region: [/^[a-z]{2}(-[a-z]+)+-\d{1,2}$/, 'An AWS region code such as us-east-1'],
  regions: [/^\s*([a-z]{2}(-[a-z]+)+-\d{1,2}\s*(,\s*|$))*$/, 'Region codes separated by commas, e.g. eu-west-1, us-west-2'],
  athena_db: [/^[A-Za-z0-9_]{1,255}$/, 'Letters, digits and underscores only (it goes into SQL)'],
  athena_table: [/^[A-Za-z0-9_]{1,255}$/, 'Letters, digits and underscores only (it goes into SQL)'],
  athena_workgroup: [/^[A-Za-z0-9._-]{1,128}$/, 'Letters, digits, dot, dash and underscore'],
  athena_results_bucket: [/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'An S3 bucket name: 3–63 lowercase letters, digits, dots and dashes'],
  cur_bucket: [/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'An S3 bucket name: 3–63 lowercase letters, digits, dots and dashes'],
  athena_results_prefix: [/^[^\s]{0,1024}$/, 'A key prefix without spaces, e.g. athena-results/'],
  cur_prefix: [/^[^\s]{0,1024}$/, 'A key prefix without spaces, e.g. cur/'],
  display_name: [/^.{1,100}$/, 'Up to 100 characters'],
};
const REQUIRED = { role: ['aws_role_arn', 'external_id', 'region', 'athena_db', 'athena_table'], access_key: ['access_key_id', 'secret_access_key', 'region', 'athena_db', 'athena_table'] };

function input(name, label, { help, type = 'text', value = '', placeholder, required, autocomplete = 'off' } = {}) {
  const id = `f-${name}`;
  const el = h('input', { id, name, type, value, placeholder, autocomplete, spellcheck: 'false', 'aria-describedby': `${id}-help ${id}-error`, 'aria-required': required ? 'true' : null });
  return h('div.field', { 'data-field': name },
    h('label', { for: id }, label, required ? h('span', { 'aria-hidden': 'true' }, ' *') : null),
    el, h('span.help', { id: `${id}-help` }, help || ''), h('span.error', { id: `${id}-error`, 'aria-live': 'polite' }));
}

function checkField(form, name) {
  const el = form.elements[name];
  if (!el || el.closest('[hidden]')) return true;
  const method = form.elements.auth_method.value;
  const value = el.value.trim();
  const required = REQUIRED[method].includes(name);
  let message = '';
  if (!value) message = required ? 'Required.' : '';
  else if (RULES[name] && !RULES[name][0].test(value)) message = RULES[name][1];
  setError(form, name, message);
  return !message;
}

function setError(form, name, message) {
  const el = form.elements[name];
  if (!el) return;
  const box = form.querySelector(`#f-${name}-error`);
  if (message) el.setAttribute('aria-invalid', 'true'); else el.removeAttribute('aria-invalid');
  if (box) box.textContent = message;
}

const STEP_ICON = { ok: '✓', failed: '✕', skipped: '–' };

export function report(steps) {
  return h('ol.steps', { 'data-testid': 'diagnostics' }, steps.map((step, i) => h('li', { 'data-step': step.name, 'data-status': step.status },
    h('span.icon', { class: step.status, 'aria-hidden': 'true' }, STEP_ICON[step.status] || '?'),
    h('div', h('span.title', `${i + 1}. ${step.title} `), badge(step.status, step.status)),
    h('div.msg', step.message, step.aws_code ? h('span.code', ` (${step.aws_code})`) : null),
    step.hint ? h('div.fix', h('strong', 'How to fix: '), step.hint) : null)));
}

export async function page(root, { ctx }) {
  const role = ctx.me.current_tenant?.role;
  root.append(pageHead('Connect AWS', { sub: 'Three steps: create a read-only role in your account, paste its ARN, and CloudSpend checks every permission before saving.' }));
  if (role === 'viewer') {
    root.append(h('div.callout.warn', h('p', 'You are a viewer in this tenant: ask an owner or admin to connect AWS.')));
  }
  const [onboarding, existing] = await Promise.all([
    get('/api/tenants/onboarding'),
    get('/api/tenants/connection').catch((err) => { if (err.status === 404) return null; throw err; }),
  ]);
  if (existing) {
    root.append(h('div.callout', { class: existing.status === 'connected' ? 'ok' : 'warn' },
      h('p', h('strong', `Connected to ${existing.display_name} (${existing.account_id}). `), `Status: ${existing.status}, last verified ${dateTime(existing.last_verified_at)}. `,
        existing.warnings?.length ? `${existing.warnings.length} warning(s): ${existing.warnings.join('; ')}` : 'Submitting the form again replaces this connection.'),
      h('a.btn.btn-quiet', { href: '/' }, 'Go to the dashboard')));
  }

  // Step 1: the role.
  const copy = (text) => () => navigator.clipboard?.writeText(text);
  root.append(card('1. Create the read-only role', h('div',
    h('p', 'Open the quick-create link while signed in to the AWS account to connect (its management account for a whole organisation). It creates the role with least-privilege, read-only billing and EC2 permissions, trusting CloudSpend only with your external ID.'),
    h('div.field', h('span', { id: 'ext-label', style: { fontWeight: 600 } }, 'Your external ID'),
      h('div.copy-row', h('code', { 'aria-labelledby': 'ext-label', 'data-testid': 'external-id' }, onboarding.external_id),
        h('button.btn.btn-quiet.btn-small', { type: 'button', on: { click: copy(onboarding.external_id) } }, 'Copy'))),
    onboarding.platform_account_id ? h('p', 'The role trusts CloudSpend\'s AWS account ', h('code', onboarding.platform_account_id), '.') : null,
    h('div.btn-group',
      h('a.btn', { href: onboarding.quick_create_url, target: '_blank', rel: 'noopener noreferrer' }, 'Open the CloudFormation quick-create link'),
      h('a.btn.btn-quiet', { href: onboarding.template_url, target: '_blank', rel: 'noopener noreferrer' }, 'View the template')),
    h('details', h('summary', 'Show the template (YAML)'), h('pre', { style: { overflowX: 'auto', background: 'var(--line-2)', padding: '10px', borderRadius: '6px', maxHeight: '320px' } }, onboarding.template)),
    h('ol', onboarding.steps.map((s) => h('li', s)))), { id: 'step-role' }));

  // Step 2: the form.
  const methodRadios = h('fieldset.field', h('legend', 'How CloudSpend signs in to AWS'),
    h('div.radios',
      h('label', h('input', { type: 'radio', name: 'auth_method', value: 'role', checked: true }), 'IAM role with external ID (recommended)'),
      h('label', h('input', { type: 'radio', name: 'auth_method', value: 'access_key' }), 'Access key of an IAM user')));
  const roleFields = h('div.row', { 'data-auth': 'role' },
    input('aws_role_arn', 'Role ARN', { help: 'The stack\'s RoleArn output', placeholder: 'arn:aws:iam::123456789012:role/CloudSpendReadOnly', required: true }),
    input('external_id', 'External ID', { help: 'Filled in for you; must match the stack\'s parameter', value: onboarding.external_id, required: true }));
  const keyFields = h('div.row', { 'data-auth': 'access_key', hidden: true },
    input('access_key_id', 'Access key ID', { placeholder: 'AKIAIOSFODNN7EXAMPLE', required: true }),
    input('secret_access_key', 'Secret access key', { type: 'password', help: 'Encrypted at rest (AES-256-GCM) and never shown again', required: true, autocomplete: 'new-password' }));
  const form = h('form', { novalidate: true, 'aria-describedby': 'connect-form-error' },
    methodRadios, roleFields, keyFields,
    h('div.row',
      input('region', 'Home region', { value: 'us-east-1', help: 'Where EC2 and Athena are checked first', required: true }),
      input('regions', 'Other regions to collect', { help: 'Optional, comma-separated', placeholder: 'eu-west-1, us-west-2' })),
    h('div.row',
      input('athena_db', 'Athena database of your CUR', { help: 'From your Cost and Usage Report\'s Athena integration', placeholder: 'athenacurcfn_cur', required: true }),
      input('athena_table', 'Athena table of your CUR', { placeholder: 'cur', required: true })),
    h('details', h('summary', 'Optional: Athena workgroup, buckets, name and account type'),
      h('div.row',
        input('athena_workgroup', 'Athena workgroup', { placeholder: 'primary', help: 'Default: primary' }),
        input('display_name', 'Display name', { placeholder: 'Production', help: 'Default: AWS account <id>' })),
      h('div.row',
        input('athena_results_bucket', 'Athena results bucket', { placeholder: 'my-athena-results' }),
        input('athena_results_prefix', 'Athena results prefix', { placeholder: 'cloudspend/' })),
      h('div.row',
        input('cur_bucket', 'CUR bucket', { placeholder: 'my-cur-bucket' }),
        input('cur_prefix', 'CUR prefix', { placeholder: 'cur/' })),
      h('div.field', h('label', { for: 'f-account_type' }, 'Account type'),
        h('select', { id: 'f-account_type', name: 'account_type' },
          h('option', { value: 'linked' }, 'Linked (member) account'),
          h('option', { value: 'organization' }, 'Organization management account')),
        h('span.error', { id: 'f-account_type-error' }))),
    h('p.form-error', { id: 'connect-form-error', role: 'alert' }),
    h('button.btn', { type: 'submit', 'data-testid': 'connect-submit' }, 'Check and save the connection'));

  const result = h('div', { 'aria-live': 'polite' });
  root.append(card('2. Tell CloudSpend about the role', form, { id: 'step-form', hint: 'Every field is checked here first, then against AWS.' }));
  root.append(card('3. Diagnostics', result, { id: 'step-diagnostics', hint: 'Each check runs in order against your account; the connection is saved when the role can be assumed and identifies your account.' }));
  result.append(h('p', { style: { color: 'var(--muted)' } }, 'Submit the form to run the checks.'));

  form.addEventListener('change', (event) => {
    if (event.target.name === 'auth_method') {
      const method = form.elements.auth_method.value;
      roleFields.hidden = method !== 'role';
      keyFields.hidden = method !== 'access_key';
    }
  });
  form.addEventListener('focusout', (event) => {
    if (event.target.name && RULES[event.target.name] && event.target.value) checkField(form, event.target.name);
  });
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    form.querySelector('.form-error').textContent = '';
    const method = form.elements.auth_method.value;
    const names = [...new Set([...REQUIRED[method], ...Object.keys(RULES)])].filter((n) => (method === 'role' ? !['access_key_id', 'secret_access_key'].includes(n) : !['aws_role_arn', 'external_id'].includes(n)));
    const bad = names.filter((n) => !checkField(form, n));
    if (bad.length) {
      form.querySelector('.form-error').textContent = `Check ${bad.length === 1 ? 'the highlighted field' : `the ${bad.length} highlighted fields`}.`;
      form.elements[bad[0]].focus();
      return;
    }
    const value = (n) => form.elements[n].value.trim();
    const body = { auth_method: method, region: value('region'), athena_db: value('athena_db'), athena_table: value('athena_table') };
    if (method === 'role') Object.assign(body, { aws_role_arn: value('aws_role_arn'), external_id: value('external_id') });
    else Object.assign(body, { access_key_id: value('access_key_id'), secret_access_key: form.elements.secret_access_key.value });
    const regions = value('regions').split(',').map((r) => r.trim()).filter(Boolean);
    if (regions.length) body.regions = regions;
    for (const n of ['athena_workgroup', 'athena_results_bucket', 'athena_results_prefix', 'cur_bucket', 'cur_prefix', 'display_name']) if (value(n)) body[n] = value(n);
    body.account_type = form.elements.account_type.value;

    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    button.textContent = 'Checking your AWS account…';
    clear(result).append(h('p', { role: 'status' }, 'Running the checks: AssumeRole, GetCallerIdentity, Cost Explorer, EC2, Athena, results bucket…'));
    try {
      const reply = await post('/api/tenants/connect', body);
      const warnings = reply.connection.warnings?.length;
      clear(result).append(
        h('div.callout', { class: warnings ? 'warn' : 'ok', 'data-testid': 'connect-saved' },
          h('p', h('strong', reply.message.startsWith('AWS connection saved') ? 'AWS connection saved. ' : `${reply.message}. `),
            `Account ${reply.connection.account_id}. `,
            warnings ? `${warnings} optional check(s) failed: CloudSpend works, but see the hints below. ` : 'Every check passed. ',
            `The first collection is queued (${reply.collection_queued.join(', ')}); Cost Explorer history appears within a few minutes.`),
          h('a.btn', { href: '/', 'data-testid': 'to-dashboard' }, 'Go to the dashboard')),
        report(reply.report.steps));
    } catch (err) {
      clear(result);
      if (err instanceof ApiError && err.body?.report) {
        result.append(h('div.callout.danger', { role: 'alert' }, h('p', h('strong', 'Not saved. '), err.message, err.hint ? ` ${err.hint}` : '')), report(err.body.report.steps));
      } else if (err instanceof ApiError && err.field && form.elements[err.field]) {
        setError(form, err.field, err.message);
        form.elements[err.field].closest('details')?.setAttribute('open', '');
        form.elements[err.field].focus();
        result.append(h('p.form-error', `Not saved: ${err.message}`));
      } else {
        result.append(errorBox(err));
      }
    } finally {
      button.disabled = false;
      button.textContent = 'Check and save the connection';
    }
  });
}
