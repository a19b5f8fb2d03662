/**
 * What the benchmarks share: the peers' job payload, the percentiles they report, and the wait for
 * a worker to have finished.
 */
import type pg from 'pg';
import { HELD_JOBS } from '../src/store/jobs/leases.js';

// The same ~200-byte payload as the peers' common.js makePayload.
export const FILLER = 'lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tem';
export const makePayload = (i: number) => ({
  i,
  kind: 'bench.noop',
  userId: `user-${String(i % 100000).padStart(6, '0')}`,
  email: `user${i % 100000}@example.com`,
  createdAt: '2024-01-01T00:00:00.000Z',
  note: FILLER,
});

/** Percentiles, extremes and mean of `values`, to the microsecond when they are milliseconds. */
export function pcts(values: readonly number[]) {
  const s = [...values].sort((a, b) => a - b);
  const at = (p: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? 0;
  const r = (x: number) => Math.round(x * 1000) / 1000;
  return {
    p50: r(at(50)),
    p95: r(at(95)),
    p99: r(at(99)),
    min: r(s[0] ?? 0),
    max: r(s.at(-1) ?? 0),
    mean: r(s.reduce((a, b) => a + b, 0) / s.length),
  };
}

/**
 * Polls every 2 ms until nothing is queued and no lease holds a job any more: every outcome
 * recorded. (An ended lease may outlive its jobs for a while, until the worker's next outcomes.)
 * As the peers' harness does, after every handler has run (polling from the start would load
 * PostgreSQL with 500 probes a second that the peers' runs do not have).
 */
export async function untilDrained(db: pg.Pool): Promise<void> {
  for (;;) {
    const { rows } = await db.query<{ drained: boolean }>(
      `SELECT NOT EXISTS (SELECT 1 FROM ix_job_queue) AND NOT EXISTS (SELECT 1 FROM ${HELD_JOBS} h) AS drained`,
    );
    if (rows[0]!.drained) return;
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}
