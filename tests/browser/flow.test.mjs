// The dashboard end to end in headless Chromium: sign up → connect AWS (moto) → Refresh now →
// the dashboard shows the preset Cost Explorer numbers and draws the chart → an anomaly is
// acknowledged → the costs CSV is downloaded → a webhook alert is created and tested against a
// local receiver → a budget shows on the dashboard → an idle instance is stopped through the
// confirmation dialog → the audit log lists it → an API token is created. Run by
// scripts/browser-test.sh, which starts the server and sets CLOUDSPEND_BASE_URL,
// CLOUDSPEND_TEST_MOTO_URL, CLOUDSPEND_SCREENSHOTS, CLOUDSPEND_BROWSER_DATABASE_URL and
// CLOUDSPEND_BROWSER_PSQL.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const BASE = required('CLOUDSPEND_BASE_URL');
const MOTO = required('CLOUDSPEND_TEST_MOTO_URL').replace(/\/$/, '');
const SHOTS = required('CLOUDSPEND_SCREENSHOTS');
const WORK = process.env.CLOUDSPEND_BROWSER_WORK || tmpdir();
const DATABASE_URL = required('CLOUDSPEND_BROWSER_DATABASE_URL');
const PSQL = required('CLOUDSPEND_BROWSER_PSQL');

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this through scripts/browser-test.sh`);
  return value;
}

// ---- The Cost Explorer data moto will answer with ----------------------------------------

const EC2 = 'Amazon Elastic Compute Cloud - Compute';
const S3 = 'Amazon Simple Storage Service';
const RDS = 'Amazon Relational Database Service';
const LAMBDA = 'AWS Lambda';
const LINKED = '210987654321';
const DAYS = 120;
const SPIKE_AGO = 3; // days before today

const iso = (d) => d.toISOString().slice(0, 10);
const today = iso(new Date());
const addDays = (day, n) => { const d = new Date(`${day}T00:00:00Z`); d.setUTCDate(d.getUTCDate() + n); return iso(d); };

/** Cents per service for the day `ago` days before today: a weekly rhythm and one EC2 spike. */
function dayCosts(ago) {
  const day = addDays(today, -ago);
  const weekday = new Date(`${day}T00:00:00Z`).getUTCDay();
  const weekend = weekday === 0 || weekday === 6;
  const ec2 = (weekend ? 9_800 : 12_400) + (ago % 5) * 37 + (ago === SPIKE_AGO ? 52_000 : 0);
  return {
    day,
    estimated: ago <= 1,
    parts: [
      [EC2, null, ec2],
      [RDS, null, 4_560],
      [S3, LINKED, 1_275 + (ago % 3) * 11],
      [LAMBDA, LINKED, weekend ? 85 : 230],
    ],
  };
}

const history = Array.from({ length: DAYS }, (_, i) => dayCosts(DAYS - 1 - i));
const money = (cents) => `$${Math.floor(cents / 100).toLocaleString('en-US')}.${String(cents % 100).padStart(2, '0')}`;
const amount = (cents) => `${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')}`;

function groupedDay(d, account) {
  return {
    TimePeriod: { Start: d.day, End: addDays(d.day, 1) },
    Total: {},
    Groups: d.parts.map(([service, linked, cents]) => ({
      Keys: [service, linked ?? account],
      Metrics: { UnblendedCost: { Amount: amount(cents), Unit: 'USD' }, AmortizedCost: { Amount: amount(cents), Unit: 'USD' } },
    })),
    Estimated: d.estimated,
  };
}

/** moto hands each preset to the next distinct GetCostAndUsage request: first the connect
 *  diagnostic (a one-day total), then the first collection's backfill, then the 7-day re-read
 *  that "Refresh now" makes. */
async function presetCosts(account) {
  const yesterday = addDays(today, -1);
  const diagnostic = { ResultsByTime: [{ TimePeriod: { Start: yesterday, End: today }, Total: { UnblendedCost: { Amount: '1.00', Unit: 'USD' } }, Groups: [], Estimated: true }] };
  const backfill = { ResultsByTime: history.map((d) => groupedDay(d, account)) };
  const recent = { ResultsByTime: history.filter((d) => d.day >= addDays(today, -7)).map((d) => groupedDay(d, account)) };
  const response = await fetch(`${MOTO}/moto-api/static/ce/cost-and-usage-results`, {
    method: 'POST', body: JSON.stringify({ account_id: account, results: [diagnostic, backfill, recent] }),
  });
  assert.ok(response.ok, `moto preset answered ${response.status}`);
}

// ---- A few EC2 instances with CPU in the tenant's (moto) account ----------------------------

function authHeader(keyId, service) {
  return `AWS4-HMAC-SHA256 Credential=${keyId}/20260101/us-east-1/${service}/aws4_request, SignedHeaders=host, Signature=0`;
}

async function query(service, params, creds) {
  const headers = { 'content-type': 'application/x-www-form-urlencoded', authorization: authHeader(creds?.keyId ?? 'testing', service) };
  if (creds?.token) headers['x-amz-security-token'] = creds.token;
  const response = await fetch(`${MOTO}/`, { method: 'POST', headers, body: new URLSearchParams(params).toString() });
  const text = await response.text();
  assert.ok(response.ok, `moto ${params.Action} answered ${response.status}: ${text.slice(0, 400)}`);
  return text;
}

const xml = (text, tag) => [...text.matchAll(new RegExp(`<${tag}>([^<]*)</${tag}>`, 'g'))].map((m) => m[1]);

async function launchFleet(account) {
  const assumed = await query('sts', { Action: 'AssumeRole', Version: '2011-06-15', RoleArn: `arn:aws:iam::${account}:role/CloudSpendReadOnly`, RoleSessionName: 'browser-test', ExternalId: 'x' });
  const creds = { keyId: xml(assumed, 'AccessKeyId')[0], token: xml(assumed, 'SessionToken')[0] };
  const images = await query('ec2', { Action: 'DescribeImages', Version: '2016-11-15', 'Owner.1': 'amazon' }, creds);
  const image = xml(images, 'imageId')[0];
  const ids = [];
  for (const [name, type] of [['web-1', 't3.large'], ['batch-worker', 'm5.xlarge'], ['reporting', 't3.medium']]) {
    const out = await query('ec2', {
      Action: 'RunInstances', Version: '2016-11-15', ImageId: image, InstanceType: type, MinCount: '1', MaxCount: '1',
      'TagSpecification.1.ResourceType': 'instance', 'TagSpecification.1.Tag.1.Key': 'Name', 'TagSpecification.1.Tag.1.Value': name,
    }, creds);
    ids.push(xml(out, 'instanceId')[0]);
  }
  await query('ec2', { Action: 'StopInstances', Version: '2016-11-15', 'InstanceId.1': ids[2] }, creds);
  // Hourly CPU for the last 20 hours: web-1 busy, batch-worker idle.
  const now = Date.now();
  for (const [id, base] of [[ids[0], 45], [ids[1], 2]]) {
    const params = { Action: 'PutMetricData', Version: '2010-08-01', Namespace: 'AWS/EC2' };
    for (let i = 0; i < 20; i++) {
      const p = `MetricData.member.${i + 1}`;
      Object.assign(params, {
        [`${p}.MetricName`]: 'CPUUtilization', [`${p}.Unit`]: 'Percent',
        [`${p}.Value`]: String(base + ((i * 7) % 11) * (base > 10 ? 2 : 0.2)),
        [`${p}.Timestamp`]: new Date(now - (20 - i) * 3600_000).toISOString(),
        [`${p}.Dimensions.member.1.Name`]: 'InstanceId', [`${p}.Dimensions.member.1.Value`]: id,
      });
    }
    await query('monitoring', params, creds);
  }
  return ids;
}

// ---- A webhook receiver on loopback that records every POST -------------------------------

async function startReceiver() {
  const received = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      received.push({ method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks) });
      res.writeHead(204).end();
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${server.address().port}/cloudspend`, received, close: () => new Promise((r) => server.close(r)) };
}

/** Fourteen days of hourly CPU under 5% for one instance, straight into the store.
 *  Why not PutMetricData: on a new connection the CloudWatch collector's first run starts before
 *  the EC2 collector has stored any instance, succeeds with nothing to fetch, and every later run
 *  reads only from its last window's end, so moto's backfilled points are never collected (see
 *  the browser-side report). Remove this once the first CloudWatch run backfills 14 days for
 *  instances it has not seen. */
function seedIdleCpu(tenantId, instanceId) {
  const sql = `INSERT INTO metric_points (tenant_id, instance_id, metric, period_seconds, ts, average, maximum, unit)
    SELECT '${tenantId}', '${instanceId}', 'CPUUtilization', 3600, date_trunc('hour', now()) - make_interval(hours => g),
           1.2 + (g % 7) * 0.25, 2.5 + (g % 4) * 0.5, 'Percent'
    FROM generate_series(2, 330) AS g ON CONFLICT DO NOTHING`;
  execFileSync(PSQL, ['-q', '-v', 'ON_ERROR_STOP=1', DATABASE_URL, '-c', sql], { stdio: ['ignore', 'ignore', 'inherit'] });
}

// ---- The flow ---------------------------------------------------------------------------------

async function api(page, pathname) {
  return page.evaluate(async (p) => {
    const headers = { authorization: `Bearer ${localStorage.getItem('cloudspend.token')}` };
    const r = await fetch(p, { headers });
    return { status: r.status, body: await r.json().catch(() => null) };
  }, pathname);
}

async function until(what, fn, timeout = 60_000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

test('sign up, connect AWS, refresh, read the dashboard, acknowledge an anomaly, download the CSV', { timeout: 300_000 }, async (t) => {
  const account = String(100_000_000_000 + Math.floor(Math.random() * 899_999_999_999)).padStart(12, '0');
  await presetCosts(account);
  const fleet = await launchFleet(account);
  const [busyId, idleId] = fleet;
  const receiver = await startReceiver();
  t.after(() => receiver.close());

  const profile = mkdtempSync(path.join(WORK, 'chromium-profile-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync', '--disable-quic'],
    viewport: { width: 1360, height: 900 },
    acceptDownloads: true,
  });
  const page = context.pages()[0] ?? await context.newPage();
  const problems = [];
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  let refusalsExpected = false; // while the refusal step fakes 403/409 answers
  page.on('console', (msg) => { if (msg.type() === 'error' && !/404|409/.test(msg.text()) && !refusalsExpected) problems.push(`console: ${msg.text()}`); });
  page.on('response', (r) => { if (r.url().startsWith(BASE) && r.status() >= 500) problems.push(`${r.status()} from ${r.url()}`); });
  // Each step builds on the one before: after a failure the rest would only add noise.
  let broken = null;
  const step = (name, fn) => t.test(name, async (st) => {
    if (broken) { st.skip(`not run: "${broken}" failed`); return; }
    try { await fn(); } catch (err) {
      broken = name;
      await shot(`failed-${name.replace(/\W+/g, '-')}`).catch(() => {});
      if (problems.length) err.message += `\nbrowser problems so far:\n  ${problems.join('\n  ')}`;
      throw err;
    }
  });
  const shot = async (name) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });

  try {
    await step('sign up', async () => {
      await page.goto(`${BASE}/signup`);
      await page.getByLabel('Company or team').fill('Acme Analytics');
      await page.getByLabel('Work email').fill(`finops-${account}@example.com`);
      await page.getByLabel('Password').fill('a long enough password');
      await shot('01-signup');
      await page.getByRole('button', { name: 'Create account' }).click();
      await page.getByTestId('connect-cta').waitFor();
      const headers = (await page.request.get(`${BASE}/`)).headers();
      assert.match(headers['content-security-policy'], /default-src 'self'/);
      assert.equal(headers['x-frame-options'], 'DENY');
      const missing = await page.request.get(`${BASE}/api/no-such-endpoint`);
      assert.equal(missing.status(), 404, 'API paths keep their JSON 404');
      assert.equal((await missing.json()).error.code, 'not_found');
      await shot('02-dashboard-not-connected');
    });

    await step('connect AWS with the diagnostics passing', async () => {
      await page.getByTestId('connect-cta').click();
      await page.waitForURL(`${BASE}/connect-aws`);
      const externalId = (await page.getByTestId('external-id').textContent()).trim();
      assert.equal(await page.locator('#f-external_id').inputValue(), externalId, 'the external ID is filled in');
      // Inline validation before anything is sent.
      await page.locator('#f-aws_role_arn').fill('not-an-arn');
      await page.getByTestId('connect-submit').click();
      await page.locator('#f-aws_role_arn-error', { hasText: 'RoleArn' }).waitFor();
      await shot('03-connect-aws-validation');
      await page.locator('#f-aws_role_arn').fill(`arn:aws:iam::${account}:role/CloudSpendReadOnly`);
      await page.locator('#f-regions').fill('eu-west-1');
      await page.locator('#f-athena_db').fill('cur_db');
      await page.locator('#f-athena_table').fill('cur_table');
      await page.getByTestId('connect-submit').click();
      await page.getByTestId('connect-saved').waitFor({ timeout: 60_000 });
      assert.match(await page.getByTestId('connect-saved').textContent(), /AWS connection saved/);
      for (const step of ['assume_role', 'caller_identity', 'cost_explorer', 'ec2']) {
        assert.equal(await page.locator(`[data-step="${step}"]`).getAttribute('data-status'), 'ok', `${step} passed`);
      }
      await shot('04-connect-aws-saved');
    });

    const from = addDays(today, -29);
    const expectedCents = history.filter((d) => d.day >= from).reduce((acc, d) => acc + d.parts.reduce((a, [, , c]) => a + c, 0), 0);

    await step('refresh now, then the dashboard shows the preset costs and draws the chart', async () => {
      await page.getByTestId('to-dashboard').click();
      await page.getByTestId('refresh-now').click();
      await page.getByTestId('refresh-progress').getByText('Collecting now').waitFor();
      await shot('05-dashboard-refreshing');
      // The page re-renders when every queued collector has run.
      await page.getByText(/Refresh finished/).waitFor({ timeout: 180_000 });
      await page.waitForFunction((text) => document.querySelector('[data-testid="kpi-total"]')?.textContent === text, money(expectedCents), { timeout: 60_000 })
        .catch(async () => {
          throw new Error(`the dashboard total is ${await page.getByTestId('kpi-total').textContent()}, expected ${money(expectedCents)}`);
        });
      assert.equal(await page.getByTestId('kpi-total').textContent(), money(expectedCents));
      const chart = page.getByTestId('daily-chart');
      assert.equal(await chart.locator('svg g.day').count(), 30, 'one bar group per day of the 30-day window');
      assert.ok(await chart.locator('svg rect.bar').count() >= 30 * 3, 'stacked segments per day');
      assert.equal(await chart.locator('svg g.day.estimated').count(), 2, 'today and yesterday are estimated');
      const spikeDay = addDays(today, -SPIKE_AGO);
      const spike = history.find((d) => d.day === spikeDay);
      assert.equal(await chart.locator(`svg g.day[data-day="${spikeDay}"]`).getAttribute('data-amount'),
        amount(spike.parts.reduce((a, [, , c]) => a + c, 0)));
      assert.match(await page.locator('table').first().textContent(), /Amazon Elastic Compute Cloud - Compute/);
      await shot('06-dashboard');
    });

    let anomalyId;
    await step('an anomaly is detected, shown and acknowledged', async () => {
      // The detector runs after the cost collection; give it a little time, then fail loudly.
      const deadline = Date.now() + 60_000;
      let last;
      for (;;) {
        last = await api(page, '/api/anomalies?status=open');
        if (last.status === 200 && last.body.anomalies.length) break;
        if (Date.now() > deadline) {
          assert.fail(last.status === 404
            ? 'GET /api/anomalies is missing (404): the anomaly backend (docs/INSIGHTS-API.md) is not in this build'
            : `no open anomaly was detected for the planted EC2 spike on ${addDays(today, -SPIKE_AGO)}: ${JSON.stringify(last.body)}`);
        }
        await new Promise((r) => setTimeout(r, 2000));
      }
      await page.reload();
      await page.getByTestId('attention').waitFor();
      assert.ok(await page.getByTestId('daily-chart').locator('circle.marker').count() >= 1, 'the anomaly is marked on the chart');
      await shot('07-dashboard-with-anomaly');
      await page.getByRole('link', { name: 'Anomalies' }).first().click();
      await page.getByTestId('anomaly').first().waitFor();
      await shot('08-anomalies');
      const spikeDay = addDays(today, -SPIKE_AGO);
      const planted = last.body.anomalies.find((a) => a.first_day <= spikeDay && spikeDay <= (a.last_day ?? a.first_day));
      assert.ok(planted, `an anomaly covers the spike on ${spikeDay}: ${JSON.stringify(last.body.anomalies.map((a) => [a.series, a.first_day]))}`);
      anomalyId = planted.id;
      await page.locator(`[data-testid="anomaly"][data-id="${anomalyId}"] a`).first().click();
      await page.waitForURL(`${BASE}/anomalies/${anomalyId}`);
      await page.getByTestId('band-chart').locator('svg polyline.actual').waitFor();
      await shot('09-anomaly-detail');
      await page.getByTestId('set-acknowledged').click();
      await page.locator('.badge.acknowledged').first().waitFor();
      const after = await api(page, '/api/anomalies?status=acknowledged');
      assert.ok(after.body.anomalies.some((a) => a.id === anomalyId), 'the anomaly is acknowledged in the API');
      await shot('10-anomaly-acknowledged');
    });

    await step('the costs CSV downloads with the preset numbers', async () => {
      await page.getByRole('link', { name: 'Dashboard' }).click();
      await page.getByTestId('kpi-total').waitFor();
      const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('costs-csv').click()]);
      const file = path.join(WORK, 'costs.csv');
      await download.saveAs(file);
      const csv = readFileSync(file, 'utf8').trim().split('\n');
      assert.equal(csv[0], 'period,key,amount,estimated');
      const cents = csv.slice(1).reduce((acc, line) => {
        const value = line.split(',').at(-2);
        const [whole, frac = ''] = value.split('.');
        return acc + Number(whole) * 100 + Number((frac + '00').slice(0, 2));
      }, 0);
      assert.equal(cents, expectedCents, 'the CSV adds up to the dashboard total');
      const spikeDay = addDays(today, -SPIKE_AGO);
      const ec2 = history.find((d) => d.day === spikeDay).parts[0][2];
      assert.ok(csv.includes(`${spikeDay},${EC2},${amount(ec2)},false`), `the spike row is in the CSV: ${csv.slice(0, 5).join(' | ')}`);
    });

    let signingSecret;
    await step('a webhook alert is created with inline validation, tested, signed and logged', async () => {
      await page.goto(`${BASE}/settings`);
      const form = page.getByTestId('subscription-form');
      await form.waitFor();
      // Inline validation before anything is sent.
      await form.getByLabel('Target').fill('hooks.example.com');
      await form.getByLabel('Threshold').fill('lots');
      await page.getByTestId('subscription-submit').click();
      await page.locator('#a-name-error', { hasText: 'name' }).waitFor();
      await page.locator('#a-target-error', { hasText: 'http' }).waitFor();
      await page.locator('#a-threshold-error', { hasText: 'amount' }).waitFor();
      assert.equal(await page.evaluate(() => document.activeElement?.id), 'a-name', 'focus moves to the first invalid field');
      await page.locator('#alerts').screenshot({ path: path.join(SHOTS, '19-alert-validation.png') });
      await form.getByLabel('Name').fill('FinOps webhook');
      await form.getByLabel('Target').fill(receiver.url);
      await form.getByLabel('Alert when the impact is over').selectOption('percent');
      await form.getByLabel('Threshold').fill('20');
      await page.getByTestId('subscription-submit').click();
      signingSecret = (await page.getByTestId('signing-secret').textContent()).trim();
      assert.ok(signingSecret.length >= 16, `a signing secret is shown once: ${signingSecret}`);
      const row = page.getByTestId('subscriptions').locator('tr', { hasText: 'FinOps webhook' });
      await row.waitFor();
      assert.match(await row.textContent(), /20% of expected/);
      await row.getByRole('button', { name: /Send a test alert/ }).click();
      const isTest = (r) => { try { return JSON.parse(r.body.toString()).event === 'test'; } catch { return false; } };
      const hit = await until('the receiver to get the test alert', () => receiver.received.find((r) => r.method === 'POST' && isTest(r)));
      const signature = hit.headers['x-cloudspend-signature'];
      assert.ok(signature, `the POST is signed: ${JSON.stringify(hit.headers)}`);
      const expected = `sha256=${createHmac('sha256', signingSecret).update(hit.body).digest('hex')}`;
      assert.equal(signature, expected, 'X-CloudSpend-Signature is the HMAC-SHA256 of the body with the secret shown once');
      assert.equal(JSON.parse(hit.body.toString()).event, 'test');
      // The delivery log shows it (the page reloads it a few seconds after "Send test").
      await until('the delivery log to show the delivery', async () => {
        await page.locator('#deliveries-reload').click();
        return (await page.getByTestId('deliveries').textContent()).includes('delivered');
      }, 30_000);
      await page.locator('#alerts').screenshot({ path: path.join(SHOTS, '20-settings-alerts.png') });
      await page.locator('#deliveries').screenshot({ path: path.join(SHOTS, '20b-settings-delivery-log.png') });
    });

    await step('a budget is set and the dashboard shows spend and forecast against it', async () => {
      await page.goto(`${BASE}/settings#budget`);
      const form = page.getByTestId('budget-form');
      await form.waitFor();
      await form.getByLabel('Monthly amount (USD)').fill('-5');
      await form.getByLabel(/Alert when spend reaches/).fill('50, 80, 2000');
      await page.getByTestId('budget-save').click();
      await page.locator('#b-amount-error', { hasText: 'above 0' }).waitFor();
      await page.locator('#b-actual-error', { hasText: '1 to 1000' }).waitFor();
      await form.getByLabel('Monthly amount (USD)').fill('8000.00');
      await form.getByLabel(/Alert when spend reaches/).fill('50, 80, 100');
      await page.getByTestId('budget-save').click();
      await page.getByTestId('budget-status').waitFor();
      assert.match(await page.getByTestId('budget-status').textContent(), /\$8,000\.00 a month/);
      await page.evaluate(() => document.getElementById('toasts').replaceChildren());
      await page.locator('#budget').screenshot({ path: path.join(SHOTS, '21-settings-budget.png') });
      const budget = (await api(page, '/api/budgets')).body.budget;
      await page.getByRole('link', { name: 'Dashboard' }).click();
      await page.getByTestId('budget').waitFor();
      assert.equal(await page.getByTestId('budget-amount').textContent(), '$8,000.00');
      assert.equal(await page.getByTestId('budget-spent').textContent(), await page.getByTestId('kpi-mtd').textContent(), 'spent is the month to date');
      assert.equal(await page.getByTestId('budget-spent').textContent(), money(Math.round(Number(budget.spent) * 100)));
      await page.evaluate(() => document.getElementById('toasts').replaceChildren());
      await page.locator('#budget').screenshot({ path: path.join(SHOTS, '22-dashboard-budget.png') });
    });

    await step('an idle instance is stopped through the confirmation dialog', async () => {
      const me = await api(page, '/api/me');
      seedIdleCpu(me.body.current_tenant.id, idleId);
      await page.getByTestId('refresh-now').click();
      await page.getByText(/Refresh finished/).first().waitFor({ timeout: 180_000 });
      await until('the idle recommendation', async () => (await api(page, '/api/recommendations')).body.recommendations.some((r) => r.instance_id === idleId && r.kind === 'idle'));
      await page.goto(`${BASE}/`);
      await page.getByTestId('idle-findings').getByTestId(`stop-${idleId}`).waitFor();
      await page.goto(`${BASE}/recommendations`);
      const stop = page.getByTestId(`stop-${idleId}`);
      await stop.waitFor();
      await shot('23-savings-with-stop');
      await stop.click();
      const dialog = page.getByRole('dialog');
      await dialog.getByTestId('confirm-action').waitFor();
      assert.match(await dialog.getByTestId('action-summary').textContent(), new RegExp(`Stop ${idleId}`));
      assert.match(await dialog.getByTestId('action-cost').textContent(), /\$\d/);
      assert.match(await dialog.getByTestId('action-finding').textContent(), /idle/);
      assert.match(await dialog.getByTestId('action-countdown').textContent(), /^[45]:\d\d$/, 'a countdown to the 5-minute expiry');
      assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Cancel', 'focus starts on Cancel');
      await page.screenshot({ path: path.join(SHOTS, '24-stop-dialog.png') }); // the viewport: the backdrop covers only it
      // Escape closes it without doing anything, and focus returns to the Stop button.
      await page.keyboard.press('Escape');
      await dialog.waitFor({ state: 'detached' });
      assert.equal(await page.evaluate(() => document.activeElement?.dataset.testid), `stop-${idleId}`);
      // The same again from the keyboard, then confirm.
      await page.keyboard.press('Enter');
      await dialog.getByTestId('confirm-action').click();
      await dialog.getByTestId('action-done').waitFor();
      assert.match(await dialog.getByTestId('action-done').textContent(), /now (stopping|stopped)/);
      await page.screenshot({ path: path.join(SHOTS, '25-stop-done.png') }); // the viewport: the backdrop covers only it
      await dialog.getByRole('button', { name: 'Done' }).click();
      // The page redraws with the instance's new state in place of Stop.
      await page.getByTestId(`state-${idleId}`).waitFor();
      assert.equal(await page.getByTestId(`stop-${idleId}`).count(), 0);
      // The next EC2 collection confirms what moto did.
      await page.goto(`${BASE}/`);
      await page.getByTestId('refresh-now').click();
      await page.getByText(/Refresh finished/).first().waitFor({ timeout: 180_000 });
      await page.goto(`${BASE}/instances/${idleId}`);
      await page.locator('.page-head .badge.stopped-state').waitFor();
      assert.ok(await page.getByRole('button', { name: 'Start this instance' }).isVisible(), 'a stopped instance offers Start');
      await shot('26-instance-stopped');
    });

    await step('refusals are shown as the API words them (actions disabled, expired confirmation)', async () => {
      // moto allows every action, so the two refusals a real account gives are answered here.
      const disabled = 'actions are not enabled on this AWS connection: update the CloudSpend CloudFormation stack with the parameter EnableActions=true';
      refusalsExpected = true;
      try {
        await page.route('**/api/instances/*/actions', (route) => route.fulfill({
          status: 403, contentType: 'application/json', body: JSON.stringify({ error: { code: 'actions_disabled', message: disabled } }),
        }));
        await page.goto(`${BASE}/instances/${busyId}`);
        await page.getByRole('button', { name: 'Stop this instance' }).click();
        const dialog = page.getByRole('dialog');
        const error = dialog.getByTestId('action-error');
        await error.waitFor();
        assert.equal(await error.getAttribute('data-code'), 'actions_disabled');
        assert.ok((await error.textContent()).includes(disabled), 'the how-to message is shown as is');
        await page.screenshot({ path: path.join(SHOTS, '35-stop-refused-actions-disabled.png') }); // the viewport: the backdrop covers only it
        await page.keyboard.press('Escape');
        await dialog.waitFor({ state: 'detached' });
        await page.unroute('**/api/instances/*/actions');
        await page.route('**/api/actions/confirm', (route) => route.fulfill({
          status: 409, contentType: 'application/json',
          body: JSON.stringify({ error: { code: 'token_expired', message: 'this confirmation token expired: ask for a new one', field: 'token' } }),
        }));
        await page.getByRole('button', { name: 'Stop this instance' }).click();
        await dialog.getByTestId('confirm-action').click();
        await dialog.getByTestId('action-error').waitFor();
        assert.equal(await dialog.getByTestId('action-error').getAttribute('data-code'), 'token_expired');
        await dialog.getByRole('button', { name: 'Ask again' }).waitFor();
        await page.screenshot({ path: path.join(SHOTS, '36-stop-refused-token-expired.png') }); // the viewport: the backdrop covers only it
        await page.keyboard.press('Escape');
        await dialog.waitFor({ state: 'detached' });
        await page.unroute('**/api/actions/confirm');
        const state = (await api(page, '/api/instances')).body.instances.find((i) => i.instance_id === busyId).state;
        assert.equal(state, 'running', 'nothing was stopped');
      } finally {
        refusalsExpected = false;
      }
    });

    await step('a CPU alarm is created and deleted on the instance page', async () => {
      await page.goto(`${BASE}/instances/${idleId}`);
      const form = page.getByTestId('alarm-form');
      await form.waitFor();
      await form.getByLabel('Threshold (%)').fill('150');
      await form.getByRole('button', { name: 'Create alarm' }).click();
      await page.locator('#al-threshold-error', { hasText: 'at most 100' }).waitFor();
      await form.getByLabel('Threshold (%)').fill('80');
      await form.getByLabel('Period', { exact: true }).selectOption('300');
      await form.getByRole('button', { name: 'Create alarm' }).click();
      const row = page.getByTestId('alarms').locator('tbody tr', { hasText: 'CPU above 80% for 3 × 5 minutes' });
      await row.waitFor();
      const listed = await api(page, `/api/instances/${idleId}/alarms`);
      assert.equal(listed.body.alarms.length, 1, JSON.stringify(listed.body));
      await page.evaluate(() => document.getElementById('toasts').replaceChildren());
      await page.locator('#alarms').screenshot({ path: path.join(SHOTS, '34-instance-alarms.png') });
      page.once('dialog', (d) => d.accept());
      await row.getByRole('button', { name: /Delete alarm/ }).click();
      await page.getByTestId('alarms').getByText('No CloudSpend alarms').waitFor();
      assert.equal((await api(page, `/api/instances/${idleId}/alarms`)).body.alarms.length, 0);
    });

    await step('the audit log lists the stop with the user\'s email, filters and downloads', async () => {
      const firstPage = page.waitForRequest((r) => r.url().includes('/api/audit?'));
      await page.getByRole('link', { name: 'Audit log' }).first().click();
      await page.getByTestId('audit').waitFor();
      // One page at a time (50), not the whole log.
      assert.equal(new URL((await firstPage).url()).searchParams.get('limit'), '50');
      await page.getByLabel('Action').selectOption('instance.action.confirm');
      await page.getByLabel('Outcome').selectOption('succeeded');
      await page.getByRole('button', { name: 'Filter' }).click();
      await page.waitForURL(/action=instance\.action\.confirm/);
      const row = page.getByTestId('audit').locator('tbody tr').first();
      await row.waitFor();
      assert.match(await page.getByTestId('audit-counts').textContent(), /Succeeded [1-9]/);
      assert.equal(await page.getByTestId('audit-older').count(), 0, 'one page holds every match');
      const text = await row.textContent();
      assert.match(text, new RegExp(`finops-${account}@example\\.com`));
      assert.match(text, new RegExp(idleId));
      assert.match(text, /succeeded/);
      await shot('27-audit');
      const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: /Download CSV/ }).click()]);
      const file = path.join(WORK, 'audit.csv');
      await download.saveAs(file);
      const csv = readFileSync(file, 'utf8');
      assert.match(csv.split('\n')[0], /^When,User,Action,Outcome,Detail/);
      assert.match(csv, /instance\.action\.confirm/);
    });

    await step('an API token is created, shown once, works, and is revoked', async () => {
      await page.goto(`${BASE}/settings#tokens`);
      const form = page.getByTestId('token-form');
      await form.waitFor();
      await form.getByLabel('Name').fill('CI cost export');
      await form.getByLabel('Expires after (days)').fill('30');
      await page.getByTestId('token-submit').click();
      const token = (await page.getByTestId('new-token').textContent()).trim();
      const withToken = () => page.request.get(`${BASE}/api/me`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal((await withToken()).status(), 200, 'the new token authenticates');
      await page.locator('#tokens').screenshot({ path: path.join(SHOTS, '28-settings-tokens.png') });
      const row = page.getByTestId('tokens').locator('tr', { hasText: 'CI cost export' });
      page.once('dialog', (d) => d.accept());
      await row.getByRole('button', { name: /Revoke/ }).click();
      await row.waitFor({ state: 'detached' });
      assert.equal((await withToken()).status(), 401, 'the revoked token no longer works');
    });

    await step('a viewer, invited and accepting the link, sees Stop/Start disabled with the reason, and no audit log', async () => {
      const email = `viewer-${account}@example.com`;
      const signup = await page.request.post(`${BASE}/api/auth/signup`, { data: { email, password: 'another long password', tenant_name: 'Viewer Co' } });
      assert.equal(signup.status(), 201, await signup.text());
      const viewer = await signup.json();
      await page.goto(`${BASE}/settings`);
      await page.locator('#m-email').fill(email);
      await page.locator('#m-role').selectOption('viewer');
      await page.getByRole('button', { name: 'Invite or change role' }).click();
      // No SMTP on this server: the link is shown to the owner, to pass on.
      const link = (await page.getByTestId('invitation-link').textContent()).trim();
      assert.match(link, /\/accept-invitation#token=cst_/);
      await page.getByTestId('invitations').getByText(email).waitFor();
      await page.locator('#members').screenshot({ path: path.join(SHOTS, '37-settings-invitation.png') });
      const owner = await page.evaluate(() => ({ token: localStorage.getItem('cloudspend.token'), tenant: localStorage.getItem('cloudspend.tenant'), session: localStorage.getItem('cloudspend.session') }));
      await page.evaluate(([token, info]) => { localStorage.setItem('cloudspend.token', token); localStorage.removeItem('cloudspend.tenant'); localStorage.setItem('cloudspend.session', info); }, [viewer.token, JSON.stringify({ email })]);
      try {
        await page.goto(link);
        await page.getByTestId('accept-form').waitFor();
        await shot('38-accept-invitation');
        await page.getByRole('button', { name: 'Accept the invitation' }).click();
        await page.waitForURL(`${BASE}/`);
        assert.equal(await page.evaluate(() => localStorage.getItem('cloudspend.tenant')), owner.tenant, 'the viewer acts in the tenant that invited them');
        await page.goto(`${BASE}/instances/${idleId}`);
        const start = page.getByRole('button', { name: 'Start this instance' });
        await start.waitFor();
        assert.ok(await start.isDisabled(), 'a viewer cannot start it');
        const why = await page.evaluate((el) => document.getElementById(el.getAttribute('aria-describedby')).textContent, await start.elementHandle());
        assert.match(why, /Only owners and admins/);
        await page.getByTestId('actions-viewer-note').waitFor();
        assert.equal(await page.getByRole('link', { name: 'Audit log' }).count(), 0, 'no audit log link for viewers');
        await shot('33-instance-as-viewer');
      } finally {
        await page.evaluate((o) => { localStorage.setItem('cloudspend.token', o.token); localStorage.setItem('cloudspend.tenant', o.tenant); localStorage.setItem('cloudspend.session', o.session); }, owner);
      }
      await page.goto(`${BASE}/settings`);
      await page.locator('#members table').first().getByText(email).waitFor();
    });

    await step('the password is changed in settings, other sessions end; a reset by e-mail says it is off without SMTP', async () => {
      const email = `finops-${account}@example.com`;
      const other = await page.request.post(`${BASE}/api/auth/login`, { data: { email, password: 'a long enough password' } });
      assert.equal(other.status(), 200, await other.text());
      const otherToken = (await other.json()).token;
      await page.goto(`${BASE}/settings#password`);
      const form = page.getByTestId('password-form');
      await form.waitFor();
      await form.getByLabel('Current password').fill('not the password');
      await form.getByLabel('New password').fill('an even longer password');
      refusalsExpected = true; // the wrong password's 403
      try {
        await form.getByRole('button', { name: 'Change password' }).click();
        await page.locator('#p-current-error').getByText('not right').waitFor();
      } finally {
        refusalsExpected = false;
      }
      await form.getByLabel('Current password').fill('a long enough password');
      await form.getByRole('button', { name: 'Change password' }).click();
      await page.locator('.toast', { hasText: 'Password changed' }).waitFor();
      await page.locator('#password').screenshot({ path: path.join(SHOTS, '39-settings-password.png') });
      const withOther = await page.request.get(`${BASE}/api/me`, { headers: { authorization: `Bearer ${otherToken}` } });
      assert.equal(withOther.status(), 401, 'the other session was revoked');
      assert.equal((await api(page, '/api/me')).status, 200, 'this browser stays logged in');
      await page.goto(`${BASE}/forgot-password`);
      await page.getByLabel('Email').fill(email);
      await page.getByRole('button', { name: 'Send me a reset link' }).click();
      await page.getByText('sends no e-mail').waitFor();
      await shot('40-forgot-password-without-email');
    });

    await step('every other page renders', async () => {
      for (const [route, name, ready] of [
        ['/instances', '11-instances', '[data-testid="instances"]'],
        ['/recommendations', '12-savings', 'h1'],
        ['/collections', '13-collections', '[data-testid="runs"]'],
        ['/settings', '14-settings', '#tokens'],
        ['/audit', '29-audit-all', '[data-testid="audit"]'],
        ['/connect-aws', '15-connect-aws-connected', '#step-form'],
      ]) {
        await page.goto(`${BASE}${route}`);
        await page.locator(ready).first().waitFor();
        await page.waitForTimeout(700); // sparklines load after the table
        await shot(name);
      }
      const instances = await api(page, '/api/instances');
      if (instances.body.instances.length) {
        await page.goto(`${BASE}/instances/${instances.body.instances[0].instance_id}`);
        await page.getByTestId('cpu-chart').waitFor();
        await shot('16-instance');
      }
      await page.setViewportSize({ width: 375, height: 812 });
      await page.goto(`${BASE}/`);
      await page.getByTestId('daily-chart').locator('svg').waitFor();
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      assert.ok(overflow <= 1, `no horizontal scrolling at 375px (overflow ${overflow}px)`);
      await shot('17-dashboard-375px');
      for (const [route, name, ready] of [['/settings', '30-settings-375px', '#tokens'], ['/audit', '31-audit-375px', '[data-testid="audit"]']]) {
        await page.goto(`${BASE}${route}`);
        await page.locator(ready).waitFor();
        const wide = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
        assert.ok(wide <= 1, `no horizontal scrolling of ${route} at 375px (overflow ${wide}px)`);
        await shot(name);
      }
      // The Start dialog of the stopped instance, on a phone, closed with Escape.
      await page.goto(`${BASE}/instances/${idleId}`);
      await page.getByRole('button', { name: 'Start this instance' }).click();
      await page.getByRole('dialog').getByTestId('confirm-action').waitFor();
      assert.match(await page.getByRole('dialog').getByTestId('action-summary').textContent(), /^Start /);
      await page.screenshot({ path: path.join(SHOTS, '32-start-dialog-375px.png') });
      await page.keyboard.press('Escape');
      await page.getByRole('dialog').waitFor({ state: 'detached' });
      await page.setViewportSize({ width: 1360, height: 900 });
      await page.goto(`${BASE}/logout`);
      await page.getByText('You are logged out').waitFor();
      await page.goto(`${BASE}/`);
      await page.waitForURL(/\/login/);
      await shot('18-login');
    });

    assert.deepEqual(problems, [], 'no script errors or server errors');
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
});
