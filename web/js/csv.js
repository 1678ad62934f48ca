import { saveBlob } from './api.js';

/** CSV of `rows` with `columns` = [{label, value: row => string}]. Formula-leading cells are
 *  neutralised so a spreadsheet never executes them. */
export function toCsv(columns, rows) {
  const cell = (raw) => {
    let text = raw === null || raw === undefined ? '' : String(raw);
    // Tab and carriage return too: spreadsheets skip them before looking for a formula.
    if (/^[=+\-@\t\r]/.test(text) && !/^-?\d+(\.\d+)?$/.test(text)) text = `'${text}`;
    return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  };
  const lines = [columns.map((c) => cell(c.label)).join(',')];
  for (const row of rows) lines.push(columns.map((c) => cell(c.value(row))).join(','));
  return lines.join('\n') + '\n';
}

export function downloadCsv(filename, columns, rows) {
  saveBlob(new Blob([toCsv(columns, rows)], { type: 'text/csv;charset=utf-8' }), filename);
}
