// The medians of bench/compare.sh's runs, by label, and ix's ratios to graphile-worker and to the
// pgbench bound: the figures issue targets are stated in. Usage: node bench/compare-summary.mjs FILE
import { readFileSync } from 'node:fs';

const runs = readFileSync(process.argv[2], 'utf8')
  .trim()
  .split('\n')
  .map((line) => JSON.parse(line));
const median = (xs) => {
  const sorted = xs.filter((x) => typeof x === 'number').sort((a, b) => a - b);
  return sorted.length === 0 ? null : sorted[Math.floor((sorted.length - 1) / 2)];
};
const of = (label, field) => median(runs.filter((r) => r.label === label).map((r) => r[field]));
const FIELDS = [
  'process_per_s',
  'process_after_bulk_per_s',
  'enqueue_per_s',
  'enqueue_bulk_per_s',
  'wal_bytes_per_job',
  'wal_bytes_per_job_after_bulk',
];
const labels = [...new Set(runs.map((r) => r.label))];
for (const label of labels)
  console.log(
    JSON.stringify({
      label,
      runs: runs.filter((r) => r.label === label).length,
      ...Object.fromEntries(FIELDS.map((f) => [f, of(label, f)]).filter(([, v]) => v !== null)),
    }),
  );
const ratio = (a, b) => (a === null || b === null ? null : Math.round((a / b) * 100) / 100);
const ix = 'ix prefetch=1000';
console.log(
  JSON.stringify({
    ix_process_over_graphile_worker: ratio(
      of(ix, 'process_per_s'),
      of('graphile-worker batching', 'process_per_s'),
    ),
    ix_process_over_bound: ratio(of(ix, 'process_per_s'), of('pgbench bound', 'process_per_s')),
    ix_wal_over_bound: ratio(of(ix, 'wal_bytes_per_job'), of('pgbench bound', 'wal_bytes_per_job')),
    ix_wal_after_bulk_over_bound: ratio(
      of(ix, 'wal_bytes_per_job_after_bulk'),
      of('pgbench bound', 'wal_bytes_per_job'),
    ),
  }),
);
