/** `npm run docs:settings`: rewrites the README's configuration table from SETTINGS. */
import { readFileSync, writeFileSync } from 'node:fs';
import { withSettingsTable } from './settings-table.js';

const README = new URL('../README.md', import.meta.url);
const before = readFileSync(README, 'utf8');
const after = withSettingsTable(before);
if (after === before) {
  console.log('README.md: the settings table is up to date');
} else {
  writeFileSync(README, after);
  console.log('README.md: rewrote the settings table');
}
