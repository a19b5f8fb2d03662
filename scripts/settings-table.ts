/**
 * The README's configuration table, rendered from SETTINGS: `npm run docs:settings` writes it
 * into the README, and a unit test fails while the README's differs.
 */
import { documentedDefault, documentedRange, documentedSettings } from '../src/config.js';

/** The lines that enclose the generated table in the README. */
const START =
  '<!-- settings table: generated from SETTINGS in src/config/settings.ts by npm run docs:settings -->';
const END = '<!-- end of settings table -->';

const code = (text: string) => `\`${text}\``;

/** A Markdown table with each column as wide as its widest cell, as the formatter lays it out. */
function markdownTable(header: string[], rows: string[][]): string {
  const escaped = [header, ...rows].map((row) => row.map((cell) => cell.replaceAll('|', '\\|')));
  const widths = header.map((_, column) => Math.max(...escaped.map((row) => (row[column] ?? '').length)));
  const line = (cells: string[]) =>
    `| ${cells.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join(' | ')} |`;
  const [head = [], ...body] = escaped;
  return [line(head), line(widths.map((width) => '-'.repeat(width))), ...body.map(line)].join('\n');
}

export function renderSettingsTable(): string {
  const rows = documentedSettings().flatMap(({ settings }) =>
    settings.map((setting) => [
      code(setting.name),
      documentedDefault(setting, code),
      documentedRange(setting),
      setting.doc,
    ]),
  );
  return markdownTable(['variable', 'default', 'range', 'what it does'], rows);
}

function markers(readme: string): { start: number; end: number } {
  const start = readme.indexOf(START);
  const end = readme.indexOf(END, start);
  if (start === -1 || end === -1) throw new Error(`README.md lost the lines ${START} and ${END}`);
  return { start: start + START.length, end };
}

/** The README's table, between its markers. */
export function settingsTableIn(readme: string): string {
  const { start, end } = markers(readme);
  return readme.slice(start, end).trim();
}

/** The README with its table replaced by the one SETTINGS renders. */
export function withSettingsTable(readme: string): string {
  const { start, end } = markers(readme);
  // Blank lines around it, so that no Markdown reader takes a marker for part of the table.
  return `${readme.slice(0, start)}\n\n${renderSettingsTable()}\n\n${readme.slice(end)}`;
}
