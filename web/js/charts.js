// Small SVG charts drawn at the container's real width (so text stays legible on a phone) and
// redrawn when it changes: stacked daily costs, a series with its expected band, CPU lines and
// sparklines. Each chart carries an aria-label that says what it shows in words.

import { h, s, clear } from './dom.js';
import { moneyShort, money, shortDay, toNumber, longDay } from './format.js';

export const PALETTE = ['#1d4ed8', '#0e9f6e', '#d97706', '#7c3aed', '#db2777', '#0891b2', '#65a30d', '#b45309', '#4f46e5', '#be123c'];
export const OTHER_COLOR = '#94a3b8';

export function colorFor(key, index) {
  return key === 'Other' ? OTHER_COLOR : PALETTE[index % PALETTE.length];
}

/** Draws with `draw(width)` now and whenever the container's width changes. */
function responsive(container, draw) {
  let lastWidth = 0;
  const render = () => {
    const width = Math.max(280, Math.floor(container.clientWidth || 800));
    if (width === lastWidth) return;
    lastWidth = width;
    clear(container);
    draw(width);
  };
  render();
  if ('ResizeObserver' in window) {
    const observer = new ResizeObserver(() => {
      if (!container.isConnected) { observer.disconnect(); return; }
      render();
    });
    observer.observe(container);
  }
}

function niceTicks(min, max, count = 5) {
  if (min === max) { max = min + 1; }
  const span = max - min;
  const step0 = span / count;
  const magnitude = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => span / s <= count) ?? 10 * magnitude;
  const lo = Math.floor(min / step) * step;
  const hi = Math.ceil(max / step) * step;
  const ticks = [];
  for (let v = lo; v <= hi + step / 2; v += step) ticks.push(Math.round(v * 1e6) / 1e6);
  return ticks;
}

function tooltip(container) {
  const tip = h('div.chart-tip', { hidden: true, role: 'presentation' });
  container.append(tip);
  return {
    show(event, lines) {
      clear(tip);
      lines.forEach((line, i) => tip.append(i ? h('div', line) : h('strong', line)));
      tip.hidden = false;
      const box = container.getBoundingClientRect();
      const x = event.clientX - box.left;
      const y = event.clientY - box.top;
      const left = Math.min(Math.max(0, x + 12), box.width - tip.offsetWidth - 4);
      Object.assign(tip.style, { left: `${left}px`, top: `${Math.max(0, y - tip.offsetHeight - 10)}px` });
    },
    hide() { tip.hidden = true; },
  };
}

function yAxis(svg, ticks, y, left, right, label) {
  const g = s('g', { class: 'axis' });
  for (const t of ticks) {
    g.append(s('line', { class: t === 0 ? 'grid-line zero-line' : 'grid-line', x1: left, x2: right, y1: y(t), y2: y(t) }));
    g.append(s('text', { x: left - 6, y: y(t) + 4, 'text-anchor': 'end' }, label(t)));
  }
  svg.append(g);
}

function inAnomaly(day, anomalies) {
  return anomalies.filter((a) => day >= a.first_day && day <= (a.last_day || a.first_day));
}

/**
 * Daily costs stacked by service. `daily` = [{day, amount, estimated, by_service: [{key, amount}]}].
 * Estimated days are lighter and hatched; days inside an anomaly get a red marker.
 */
export function stackedDaily(container, { daily, anomalies = [], currency = 'USD', onDay }) {
  container.classList.add('chart');
  const keys = [];
  for (const d of daily) for (const part of d.by_service || []) if (!keys.includes(part.key)) keys.push(part.key);
  keys.sort((a, b) => (a === 'Other') - (b === 'Other'));
  const colors = new Map(keys.map((k, i) => [k, colorFor(k, i)]));
  const total = daily.reduce((acc, d) => acc + toNumber(d.amount), 0);
  const peak = daily.reduce((best, d) => (!best || toNumber(d.amount) > toNumber(best.amount) ? d : best), null);
  container.setAttribute('role', 'img');
  container.setAttribute('aria-label', `Daily cost from ${longDay(daily[0]?.day)} to ${longDay(daily.at(-1)?.day)}, ${daily.length} days, `
    + `highest ${peak ? `${money(peak.amount, currency)} on ${longDay(peak.day)}` : 'none'}; `
    + `${daily.filter((d) => d.estimated).length} estimated days; ${anomalies.length} anomalies marked.`);

  responsive(container, (width) => {
    const height = width < 500 ? 220 : 280;
    const m = { l: width < 500 ? 44 : 58, r: 10, t: 24, b: 26 };
    const plotW = width - m.l - m.r;
    const plotH = height - m.t - m.b;
    let hi = 0; let lo = 0;
    for (const d of daily) {
      let pos = 0; let neg = 0;
      for (const part of d.by_service?.length ? d.by_service : [{ key: 'Total', amount: d.amount }]) {
        const v = toNumber(part.amount);
        if (v >= 0) pos += v; else neg += v;
      }
      hi = Math.max(hi, pos); lo = Math.min(lo, neg);
    }
    const ticks = niceTicks(lo, hi || 1, height < 250 ? 4 : 5);
    const y0 = ticks[0]; const y1 = ticks.at(-1);
    const y = (v) => m.t + plotH - ((v - y0) / (y1 - y0)) * plotH;
    const band = plotW / Math.max(1, daily.length);
    const barW = Math.max(1, Math.min(36, band * 0.74));

    const svg = s('svg', { width, height, viewBox: `0 0 ${width} ${height}`, 'aria-hidden': 'true', class: 'stacked-daily' });
    svg.append(s('defs', {},
      s('pattern', { id: 'hatch', width: 6, height: 6, patternUnits: 'userSpaceOnUse', patternTransform: 'rotate(45)' },
        s('rect', { width: 6, height: 6, fill: 'rgba(255,255,255,0)' }),
        s('line', { x1: 0, y1: 0, x2: 0, y2: 6, stroke: 'rgba(255,255,255,0.85)', 'stroke-width': 2.5 }))));
    yAxis(svg, ticks, y, m.l, width - m.r, (t) => moneyShort(t, currency));

    const tip = tooltip(container);
    const bars = s('g', { class: 'bars' });
    daily.forEach((d, i) => {
      const x = m.l + i * band + (band - barW) / 2;
      const marks = inAnomaly(d.day, anomalies);
      const g = s('g', { class: `day${d.estimated ? ' estimated' : ''}${marks.length ? ' anomalous' : ''}`, 'data-day': d.day, 'data-amount': d.amount });
      if (marks.length) {
        g.append(s('rect', { x: m.l + i * band, y: m.t, width: band, height: plotH, fill: '#fdecec' }));
      }
      let pos = 0; let neg = 0;
      const parts = d.by_service?.length ? d.by_service : [{ key: 'Total', amount: d.amount }];
      for (const part of parts) {
        const v = toNumber(part.amount);
        if (v === 0) continue;
        const from = v >= 0 ? pos : neg;
        const to = from + v;
        if (v >= 0) pos = to; else neg = to;
        const top = y(Math.max(from, to));
        const rectH = Math.max(0.5, Math.abs(y(from) - y(to)));
        g.append(s('rect', {
          class: 'bar', x, y: top, width: barW, height: rectH,
          fill: colors.get(part.key) || PALETTE[0], 'fill-opacity': d.estimated ? 0.45 : 1, 'data-key': part.key,
        }));
        if (d.estimated) g.append(s('rect', { x, y: top, width: barW, height: rectH, fill: 'url(#hatch)' }));
      }
      const lines = [`${longDay(d.day)}: ${money(d.amount, currency)}${d.estimated ? ' (estimated)' : ''}`,
        ...parts.filter((p) => toNumber(p.amount) !== 0).map((p) => `${p.key}: ${money(p.amount, currency)}`),
        ...marks.map((a) => `Anomaly: ${a.severity} — ${money(a.impact, currency)} over expected`)];
      const hit = s('rect', { class: 'hit', x: m.l + i * band, y: m.t, width: band, height: plotH, fill: 'transparent' }, s('title', {}, lines.join('\n')));
      hit.addEventListener('mousemove', (event) => tip.show(event, lines));
      hit.addEventListener('mouseleave', () => tip.hide());
      if (onDay) hit.addEventListener('click', () => onDay(d));
      g.append(hit);
      bars.append(g);
    });
    svg.append(bars);

    // Anomaly markers above the bars, one per anomaly on its first day in view.
    const markers = s('g', { class: 'markers' });
    for (const a of anomalies) {
      const i = daily.findIndex((d) => d.day >= a.first_day && d.day <= (a.last_day || a.first_day));
      if (i < 0) continue;
      const cx = m.l + i * band + band / 2;
      const dayTotal = daily[i].by_service?.length
        ? daily[i].by_service.reduce((acc, p) => acc + Math.max(0, toNumber(p.amount)), 0)
        : toNumber(daily[i].amount);
      const cy = Math.max(m.t - 10, y(dayTotal) - 10);
      markers.append(s('circle', { class: 'marker', cx, cy, r: 6, 'data-anomaly': a.id }, s('title', {}, `Anomaly ${a.severity}: ${money(a.impact, currency)} over expected`)));
      markers.append(s('text', { class: 'marker-label', x: cx, y: cy + 3.5, 'text-anchor': 'middle', fill: '#fff' }, '!'));
    }
    svg.append(markers);

    const step = Math.max(1, Math.ceil(56 / band));
    const xAxis = s('g', { class: 'axis' });
    daily.forEach((d, i) => {
      if (i % step !== 0 && i !== daily.length - 1) return;
      if (i === daily.length - 1 && i % step !== 0 && (i % step) * band < 40) return;
      xAxis.append(s('text', { x: m.l + i * band + band / 2, y: height - 8, 'text-anchor': 'middle' }, shortDay(d.day)));
    });
    svg.append(xAxis);
    container.append(svg);
  });
  void total;
  return { keys, colors };
}

export function legend(keys, colors, { estimated = true, anomalies = true } = {}) {
  return h('div.legend', { 'aria-hidden': 'true' },
    keys.map((k) => h('span.item', h('span.swatch', { style: { background: colors.get(k) } }), k)),
    estimated ? h('span.item', h('span.swatch.est'), 'Estimated (may still change)') : null,
    anomalies ? h('span.item', h('span.swatch.anom'), 'Anomaly') : null);
}

/**
 * A cost series with its expected band: series = [{day, actual, expected, lower, upper}].
 * Days inside [first, last] are drawn red.
 */
export function bandChart(container, { series, first, last, currency = 'USD' }) {
  container.classList.add('chart');
  container.setAttribute('role', 'img');
  const flagged = series.filter((p) => p.day >= first && p.day <= (last || first));
  container.setAttribute('aria-label', `Actual daily cost against the expected range, ${series.length} days; `
    + flagged.map((p) => `${longDay(p.day)}: actual ${money(p.actual, currency)}, expected ${p.expected === null ? 'not scored' : money(p.expected, currency)}`).join('; '));
  responsive(container, (width) => {
    const height = width < 500 ? 220 : 280;
    const m = { l: width < 500 ? 44 : 58, r: 12, t: 14, b: 26 };
    const plotW = width - m.l - m.r; const plotH = height - m.t - m.b;
    const values = series.flatMap((p) => [p.actual, p.upper, p.lower, p.expected]).filter((v) => v !== null && v !== undefined).map(toNumber);
    const ticks = niceTicks(Math.min(0, ...values), Math.max(1, ...values), 5);
    const y = (v) => m.t + plotH - ((v - ticks[0]) / (ticks.at(-1) - ticks[0])) * plotH;
    const x = (i) => m.l + (series.length <= 1 ? plotW / 2 : (i / (series.length - 1)) * plotW);
    const svg = s('svg', { width, height, viewBox: `0 0 ${width} ${height}`, 'aria-hidden': 'true', class: 'band-chart' });
    yAxis(svg, ticks, y, m.l, width - m.r, (t) => moneyShort(t, currency));

    // The band, drawn as one polygon per run of scored days.
    let run = [];
    const flush = () => {
      if (run.length > 1) {
        const top = run.map(({ i, p }) => `${x(i)},${y(toNumber(p.upper))}`);
        const bottom = run.slice().reverse().map(({ i, p }) => `${x(i)},${y(toNumber(p.lower))}`);
        svg.append(s('polygon', { class: 'band', points: [...top, ...bottom].join(' ') }));
        svg.append(s('polyline', { class: 'expected', points: run.map(({ i, p }) => `${x(i)},${y(toNumber(p.expected))}`).join(' ') }));
      }
      run = [];
    };
    series.forEach((p, i) => {
      if (p.upper !== null && p.upper !== undefined && p.lower !== null && p.lower !== undefined && p.expected !== null && p.expected !== undefined) run.push({ i, p });
      else flush();
    });
    flush();
    svg.append(s('polyline', { class: 'actual', points: series.map((p, i) => `${x(i)},${y(toNumber(p.actual))}`).join(' ') }));
    const tip = tooltip(container);
    series.forEach((p, i) => {
      const anomalous = p.day >= first && p.day <= (last || first);
      const lines = [longDay(p.day), `Actual ${money(p.actual, currency)}`,
        p.expected === null || p.expected === undefined ? 'Not scored' : `Expected ${money(p.expected, currency)} (${money(p.lower, currency)} – ${money(p.upper, currency)})`];
      const dot = s('circle', { class: anomalous ? 'dot anomalous' : 'dot', cx: x(i), cy: y(toNumber(p.actual)), r: anomalous ? 5.5 : 2.5 }, s('title', {}, lines.join('\n')));
      svg.append(dot);
      const hit = s('rect', { x: x(i) - plotW / Math.max(2, series.length) / 2, y: m.t, width: plotW / Math.max(2, series.length), height: plotH, fill: 'transparent' });
      hit.addEventListener('mousemove', (e) => tip.show(e, lines));
      hit.addEventListener('mouseleave', () => tip.hide());
      svg.append(hit);
    });
    const step = Math.max(1, Math.ceil(60 / (plotW / Math.max(1, series.length))));
    series.forEach((p, i) => {
      if (i % step === 0) svg.append(s('text', { x: x(i), y: height - 8, 'text-anchor': 'middle' }, shortDay(p.day)));
    });
    container.append(svg);
  });
}

/** CPU utilisation over time: points = [{timestamp, average, maximum}]. */
export function cpuChart(container, { points }) {
  container.classList.add('chart');
  container.setAttribute('role', 'img');
  const avg = points.map((p) => p.average);
  const mean = avg.length ? avg.reduce((a, b) => a + b, 0) / avg.length : 0;
  container.setAttribute('aria-label', `CPU utilisation, ${points.length} hourly points, average ${mean.toFixed(1)}%, highest ${Math.max(0, ...points.map((p) => p.maximum)).toFixed(1)}%`);
  responsive(container, (width) => {
    const height = width < 500 ? 200 : 240;
    const m = { l: 40, r: 10, t: 12, b: 26 };
    const plotW = width - m.l - m.r; const plotH = height - m.t - m.b;
    const t0 = points.length ? new Date(points[0].timestamp).getTime() : Date.now() - 86400000;
    const t1 = points.length ? new Date(points.at(-1).timestamp).getTime() : Date.now();
    const x = (t) => m.l + (t1 === t0 ? plotW / 2 : ((t - t0) / (t1 - t0)) * plotW);
    const y = (v) => m.t + plotH - (Math.min(100, Math.max(0, v)) / 100) * plotH;
    const svg = s('svg', { width, height, viewBox: `0 0 ${width} ${height}`, 'aria-hidden': 'true', class: 'cpu-chart' });
    yAxis(svg, [0, 25, 50, 75, 100], y, m.l, width - m.r, (t) => `${t}%`);
    const at = (p) => x(new Date(p.timestamp).getTime());
    if (points.length) {
      svg.append(s('polygon', { class: 'cpu-area', points: [`${at(points[0])},${y(0)}`, ...points.map((p) => `${at(p)},${y(p.average)}`), `${at(points.at(-1))},${y(0)}`].join(' ') }));
      svg.append(s('polyline', { class: 'cpu-max', points: points.map((p) => `${at(p)},${y(p.maximum)}`).join(' ') }));
      svg.append(s('polyline', { class: 'cpu-avg', points: points.map((p) => `${at(p)},${y(p.average)}`).join(' ') }));
    }
    const days = Math.max(1, Math.round((t1 - t0) / 86400000));
    const labels = Math.min(days + 1, Math.floor(plotW / 70));
    for (let i = 0; i <= labels; i++) {
      const t = t0 + ((t1 - t0) * i) / Math.max(1, labels);
      const d = new Date(t);
      const text = days > 2 ? d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' }) : d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
      svg.append(s('text', { x: x(t), y: height - 8, 'text-anchor': i === 0 ? 'start' : i === labels ? 'end' : 'middle' }, text));
    }
    const tip = tooltip(container);
    const hit = s('rect', { x: m.l, y: m.t, width: plotW, height: plotH, fill: 'transparent' });
    hit.addEventListener('mousemove', (event) => {
      if (!points.length) return;
      const box = svg.getBoundingClientRect();
      const t = t0 + ((event.clientX - box.left - m.l) / plotW) * (t1 - t0);
      const p = points.reduce((best, q) => (Math.abs(new Date(q.timestamp) - t) < Math.abs(new Date(best.timestamp) - t) ? q : best), points[0]);
      tip.show(event, [new Date(p.timestamp).toLocaleString(), `Average ${p.average.toFixed(1)}%`, `Maximum ${p.maximum.toFixed(1)}%`]);
    });
    hit.addEventListener('mouseleave', () => tip.hide());
    svg.append(hit);
    container.append(svg);
  });
}

/** A 120×28 sparkline of values in 0..max. */
export function sparkline(values, { max = 100, label = '' } = {}) {
  const w = 120; const hgt = 28;
  if (!values.length) return h('span.spark-empty', 'no data');
  const x = (i) => (values.length === 1 ? w / 2 : (i / (values.length - 1)) * (w - 2) + 1);
  const y = (v) => hgt - 2 - (Math.min(max, Math.max(0, v)) / max) * (hgt - 4);
  const line = values.map((v, i) => `${x(i)},${y(v)}`).join(' ');
  return s('svg', { class: 'spark', viewBox: `0 0 ${w} ${hgt}`, width: w, height: hgt, role: 'img', 'aria-label': label },
    s('polygon', { class: 'area', points: `${x(0)},${hgt} ${line} ${x(values.length - 1)},${hgt}` }),
    s('polyline', { class: 'line', points: line }));
}
