// Money arrives as exact decimal strings; it is parsed into BigInt nano-units and never into a
// float, so what the page shows (and sums) is exact to the cent.

const NANO = 1_000_000_000n;

export function nanos(value) {
  if (value === null || value === undefined || value === '') return 0n;
  const text = String(value).trim();
  const negative = text.startsWith('-');
  const [whole, fraction = ''] = text.replace(/^[-+]/, '').split('.');
  const n = BigInt(whole || '0') * NANO + BigInt((fraction + '000000000').slice(0, 9));
  return negative ? -n : n;
}

export function fromNanos(n) {
  const negative = n < 0n;
  const abs = negative ? -n : n;
  const whole = abs / NANO;
  const fraction = (abs % NANO).toString().padStart(9, '0').replace(/0+$/, '');
  return (negative ? '-' : '') + whole.toString() + (fraction ? '.' + fraction : '');
}

export function sum(values) {
  return fromNanos(values.reduce((acc, v) => acc + nanos(v), 0n));
}

function cents(value) {
  // Half away from zero, as accountants round.
  const n = nanos(value);
  const unit = 10_000_000n;
  const abs = n < 0n ? -n : n;
  const rounded = (abs + unit / 2n) / unit;
  return n < 0n ? -rounded : rounded;
}

const SYMBOLS = { USD: '$', EUR: '€', GBP: '£', JPY: '¥' };

/** "$1,234.56"; negative as "−$4.25". */
export function money(value, currency = 'USD') {
  if (value === null || value === undefined) return '—';
  const c = cents(value);
  const negative = c < 0n;
  const abs = negative ? -c : c;
  const whole = (abs / 100n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  const frac = (abs % 100n).toString().padStart(2, '0');
  const symbol = SYMBOLS[currency];
  const body = symbol ? `${symbol}${whole}.${frac}` : `${whole}.${frac} ${currency}`;
  return negative ? `−${body}` : body;
}

/** Signed: "+$134.56" / "−$20.00". */
export function signedMoney(value, currency) {
  const n = nanos(value);
  return (n > 0n ? '+' : '') + money(value, currency);
}

/** Short labels for chart axes: "$1.2k". Display only (float is fine here). */
export function moneyShort(amount, currency = 'USD') {
  const symbol = SYMBOLS[currency] ?? '';
  const abs = Math.abs(amount);
  const sign = amount < 0 ? '−' : '';
  if (abs >= 1e6) return `${sign}${symbol}${trim(abs / 1e6)}M`;
  if (abs >= 1e3) return `${sign}${symbol}${trim(abs / 1e3)}k`;
  if (abs >= 10 || abs === 0) return `${sign}${symbol}${Math.round(abs)}`;
  return `${sign}${symbol}${abs.toFixed(2)}`;
}

function trim(x) {
  return x >= 100 ? Math.round(x).toString() : x.toFixed(1).replace(/\.0$/, '');
}

export function toNumber(value) {
  return Number(nanos(value)) / 1e9;
}

export function percent(value, digits = 1) {
  if (value === null || value === undefined || Number.isNaN(value)) return '—';
  return `${Number(value).toFixed(digits)}%`;
}

export function signedPercent(value) {
  if (value === null || value === undefined) return 'no earlier data';
  const v = Number(value);
  return `${v > 0 ? '+' : v < 0 ? '−' : ''}${Math.abs(v).toFixed(1)}%`;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** "2026-11-20" → "Nov 20" (calendar days are UTC days; never shifted by the browser's zone). */
export function shortDay(day) {
  if (!day) return '—';
  const [y, m, d] = day.split('-').map(Number);
  return `${MONTHS[m - 1]} ${d}`;
}

export function longDay(day) {
  if (!day) return '—';
  const [y, m, d] = day.split('-').map(Number);
  return `${MONTHS[m - 1]} ${d}, ${y}`;
}

export function dayRange(first, last) {
  if (!last || first === last) return longDay(first);
  return `${shortDay(first)} – ${longDay(last)}`;
}

export function dateTime(value) {
  if (!value) return '—';
  const d = new Date(value);
  return d.toLocaleString(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

export function ago(value) {
  if (!value) return 'never';
  const seconds = Math.round((Date.now() - new Date(value).getTime()) / 1000);
  if (seconds < -60) return `in ${humanSeconds(-seconds)}`;
  if (seconds < 45) return 'just now';
  return `${humanSeconds(seconds)} ago`;
}

export function humanSeconds(seconds) {
  if (seconds < 90) return `${Math.max(1, Math.round(seconds))} s`;
  if (seconds < 90 * 60) return `${Math.round(seconds / 60)} min`;
  if (seconds < 36 * 3600) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} days`;
}

/** UTC calendar arithmetic on YYYY-MM-DD strings. */
export function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

export function addDays(day, n) {
  const d = new Date(`${day}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + n);
  return isoDay(d);
}

export function todayUtc() {
  return isoDay(new Date());
}

export function daysBetween(from, to) {
  return Math.round((new Date(`${to}T00:00:00Z`) - new Date(`${from}T00:00:00Z`)) / 86400000);
}

/** "service:AmazonEC2" → "AmazonEC2 (service)"; "total" → "Total spend". */
export function seriesLabel(anomaly) {
  if (!anomaly) return '';
  const dim = anomaly.dimension || (anomaly.series || '').split(':')[0];
  const key = anomaly.key ?? (anomaly.series || '').split(':').slice(1).join(':');
  if (!dim || dim === 'total') return 'Total spend';
  const names = { service: 'service', account: 'account', region: 'region', usage_type: 'usage type' };
  return `${key} (${names[dim] ?? dim})`;
}

export function titleCase(text) {
  return String(text || '').replace(/_/g, ' ').replace(/^\w/, (c) => c.toUpperCase());
}
