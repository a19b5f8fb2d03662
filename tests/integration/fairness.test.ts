/**
 * The fair claim on real PostgreSQL: round robin between clients whatever their backlogs, weights,
 * priority within a client only, `max_running` held across worker processes, batches shared in
 * proportion, and a disabled client's jobs left alone.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import type { RequestIX } from '../../src/contracts/index.js';
import {
  type Claimed,
  createPool,
  jobClaimMany,
  jobInsertMany,
  jobNotifyPending,
} from '../../src/store/index.js';
import { CLI, cleanEnv, exited } from '../support/cli.js';
import { useTestDatabase } from '../support/db.js';
import { makeRequest, success } from '../support/factories.js';
import { startServer } from '../support/http.js';
import { admitted, finishJob } from '../support/jobs.js';
import { eventually, statusCounts } from '../support/worker.js';

const db = useTestDatabase();
const WORKER = '00000000-0000-7000-8000-00000000f00d';

/** `n` jobs of `client`, inserted in one batch (oldest first), each of `priority`. */
async function queue(client: string, n: number, priority = 0): Promise<void> {
  const submissions = Array.from({ length: n }, () => ({
    request: makeRequest({ ix_client_id: client }),
    callbackUrl: null,
    priority,
  }));
  admitted(await jobInsertMany(db.pool, submissions));
}

async function claim(limit: number, defaultMaxRunning: number | null = null): Promise<Claimed[]> {
  return jobClaimMany(db.pool, { limit, workerId: WORKER, startNow: limit, defaultMaxRunning });
}

/** Claims one job at a time and finishes it before the next claim; returns each job's client. */
async function claimOneByOne(times: number): Promise<string[]> {
  const order: string[] = [];
  for (let i = 0; i < times; i++) {
    const [claimed] = await claim(1);
    if (!claimed) break;
    order.push(claimed.job.client_id);
    await finishJob(db.pool, claimed.job.job_id, claimed.job.attempts, success(claimed.job.ix_id));
  }
  return order;
}

function counts(clients: readonly string[]): Record<string, number> {
  const result: Record<string, number> = {};
  for (const client of clients) result[client] = (result[client] ?? 0) + 1;
  return result;
}

async function setClient(
  clientId: string,
  fields: { weight?: number; maxRunning?: number; disabled?: boolean },
) {
  await db.pool.query(
    `INSERT INTO ix_clients (client_id, weight, max_running, disabled) VALUES ($1, $2, $3, $4)
     ON CONFLICT (client_id) DO UPDATE SET weight = $2, max_running = $3, disabled = $4`,
    [clientId, fields.weight ?? 1, fields.maxRunning ?? null, fields.disabled ?? false],
  );
}

describe('fair claiming', () => {
  it('takes turns between 3 clients with uneven backlogs, whoever submitted first', async () => {
    // Oldest first would run all of a's 30 before b's and c's first.
    await queue('a', 30);
    await queue('b', 10);
    await queue('c', 3);
    const order = await claimOneByOne(13);
    expect(order.slice(0, 9)).toEqual(['a', 'b', 'c', 'a', 'b', 'c', 'a', 'b', 'c']);
    // c has run out: a and b go on in turn.
    expect(order.slice(9)).toEqual(['a', 'b', 'a', 'b']);
  });

  it('a batch of 500 from 3 clients with ready work is shared in proportion, and filled when one runs short', async () => {
    await queue('a', 600);
    await queue('b', 600);
    await queue('c', 600);
    expect(counts((await claim(501)).map((c) => c.job.client_id))).toEqual({ a: 167, b: 167, c: 167 });
    await db.pool.query('TRUNCATE ix_jobs, ix_job_queue, ix_job_leases, ix_job_slots, ix_client_turns');
    await queue('a', 600);
    await queue('b', 600);
    await queue('c', 50);
    // c's share was 167 but it has 50: the rest goes to a and b, so the batch is still full.
    expect(counts((await claim(500)).map((c) => c.job.client_id))).toEqual({ a: 225, b: 225, c: 50 });
  });

  it('gives each client its weight’s share, in batches and one job at a time', async () => {
    await setClient('heavy', { weight: 3 });
    await queue('heavy', 200);
    await queue('light', 200);
    expect(counts((await claim(40)).map((c) => c.job.client_id))).toEqual({ heavy: 30, light: 10 });
    // The turns carry over from claim to claim: 3 to 1 in single claims too.
    const order = counts(await claimOneByOne(40));
    expect(order.heavy).toBeGreaterThanOrEqual(29);
    expect(order.heavy).toBeLessThanOrEqual(31);
    expect(order.heavy! + order.light!).toBe(40);
  });

  it('orders a client’s own jobs by priority, and never one client’s against another’s', async () => {
    await queue('a', 3, 0);
    await queue('a', 3, 5);
    await queue('b', 3, 0);
    await queue('b', 1, 9);
    const first = await claim(4);
    const priorities = (client: string) =>
      first.filter((c) => c.job.client_id === client).map((c) => c.job.priority);
    // Two each: priority picked which of a client's jobs, not which client.
    expect(priorities('a')).toEqual([5, 5]);
    expect(priorities('b')).toEqual([9, 0]);
    await db.pool.query('TRUNCATE ix_jobs, ix_job_queue, ix_job_leases, ix_job_slots, ix_client_turns');
    await queue('urgent', 10, 9);
    await queue('calm', 10, 0);
    expect(counts((await claim(6)).map((c) => c.job.client_id))).toEqual({ urgent: 3, calm: 3 });
  });

  it('claims nothing of a disabled client until it is enabled again', async () => {
    await setClient('off', { disabled: true });
    await queue('off', 5);
    await queue('on', 2);
    expect((await claim(10)).map((c) => c.job.client_id)).toEqual(['on', 'on']);
    expect(await claim(10)).toEqual([]);
    await setClient('off', { disabled: false });
    expect(await claim(10)).toHaveLength(5);
  });

  it('never claims more than max_running of a client at once, with 8 claimers racing', async () => {
    // Two limited clients and two others: every claim waits on slots and turns of several clients,
    // so claims that took them in different orders would deadlock (and throw here).
    await setClient('limited', { maxRunning: 5 });
    await setClient('limited-too', { maxRunning: 7 });
    await queue('limited', 100);
    await queue('limited-too', 100);
    await queue('other', 100);
    await queue('other-too', 100);
    // No claimer finishes anything: the slots stay taken, whoever took them.
    const pools = Array.from({ length: 8 }, () => createPool(db.url, { max: 1 }));
    try {
      const claims = await Promise.all(
        pools.map((pool) =>
          (async () => {
            const got: Claimed[] = [];
            for (let i = 0; i < 10; i++)
              got.push(...(await jobClaimMany(pool, { limit: 4, workerId: WORKER, startNow: 4 })));
            return got;
          })(),
        ),
      );
      const all = claims.flat();
      const ids = all.map((c) => c.job.job_id);
      expect(new Set(ids).size).toBe(ids.length);
      expect(counts(all.map((c) => c.job.client_id))).toMatchObject({ limited: 5, 'limited-too': 7 });
      const { rows } = await db.pool.query<{ client_id: string; n: number }>(
        `SELECT client_id, count(*)::int AS n FROM ix_job_slots WHERE client_id LIKE 'limited%' GROUP BY 1 ORDER BY 1`,
      );
      expect(rows).toEqual([
        { client_id: 'limited', n: 5 },
        { client_id: 'limited-too', n: 7 },
      ]);
    } finally {
      await Promise.all(pools.map((pool) => pool.end()));
    }
    // IX_CLIENT_MAX_RUNNING applies to a client without its own.
    await queue('third', 10);
    expect(counts((await claim(20, 2)).map((c) => c.job.client_id)).third).toBe(2);
  });
});

describe('max_running across worker processes', () => {
  const children: ChildProcess[] = [];
  afterEach(async () => {
    for (const child of children.splice(0)) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited(child);
    }
  });

  it('3 worker processes run at most max_running of a client’s jobs at once, and others’ beside them', async () => {
    // The pipeline counts what it holds per client; each call takes 40 ms.
    const running = new Map<string, number>();
    const most = new Map<string, number>();
    const pipeline = await startServer((_req, res, body) => {
      const client = (JSON.parse(body) as RequestIX).ix_client_id;
      const now = (running.get(client) ?? 0) + 1;
      running.set(client, now);
      most.set(client, Math.max(most.get(client) ?? 0, now));
      setTimeout(() => {
        running.set(client, running.get(client)! - 1);
        res.setHeader('content-type', 'application/json');
        res.end('{"ok":true}');
      }, 40);
    });
    try {
      await setClient('limited', { maxRunning: 3 });
      await queue('limited', 60);
      await queue('free', 60);
      await jobNotifyPending(db.pool);
      for (let i = 0; i < 3; i++) {
        const child = spawn(process.execPath, [CLI, 'worker'], {
          env: cleanEnv({
            IX_POSTGRES_URL: db.url,
            IX_PIPELINE: 'http',
            IX_PIPELINE_URL: pipeline.url,
            IX_WORKER_CONCURRENCY: '6',
            IX_WORKER_PREFETCH: '2',
            IX_WORKER_POLL_INTERVAL_MS: '20',
          }),
          stdio: ['ignore', 'ignore', 'inherit'],
        });
        children.push(child);
      }
      await eventually(async () => (await statusCounts(db.pool)).done === 120, 'all 120 jobs done', 60_000);
    } finally {
      await pipeline.close();
    }
    expect(most.get('limited')).toBe(3);
    // The limit is the limited client's own: the other ran more at once beside it.
    expect(most.get('free')).toBeGreaterThan(3);
  }, 90_000);
});
