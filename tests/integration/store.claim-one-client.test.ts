/**
 * A claim of a queue that holds one client's jobs takes them without the fair claim's shares,
 * ranking, slots and turns (ONE_CLIENT_CLAIM_SQL); one that finds it cannot serve makes the fair
 * claim, and the process's claims go straight to the fair one for a while. That pause is the
 * process's, so these tests have a file (and a process) of their own, and run in order.
 */
import fc from 'fast-check';
import pg from 'pg';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { jobClaimMany, jobInsertMany, workerHeartbeat } from '../../src/store/index.js';
import { CLAIM_SQL, ONE_CLIENT_CLAIM_SQL } from '../../src/store/jobs/claim.js';
import { truncateAll, useTestDatabase } from '../support/db.js';
import { makeRequest } from '../support/factories.js';

const db = useTestDatabase();
const WORKER = '00000000-0000-7000-8000-0000000000c1';

afterEach(() => {
  vi.useRealTimers();
});

interface QueuedJob {
  client: string;
  priority: number;
  /** Scheduled an hour ahead: queued, not ready. */
  later: boolean;
  inputBytes: number;
}

async function queue(jobs: readonly QueuedJob[]): Promise<void> {
  await jobInsertMany(
    db.pool,
    jobs.map((job) => ({
      request: makeRequest({ ix_client_id: job.client, input: { pad: 'x'.repeat(job.inputBytes) } }),
      callbackUrl: null,
      priority: job.priority,
      delaySeconds: job.later ? 3600 : undefined,
    })),
  );
}

interface Parameters {
  limit: number;
  startNow: number;
  maxInputBytes: number | null;
  defaultMaxRunning: number | null;
}

/** What `sql` claims, in a transaction rolled back afterwards: each job, whether started, whether limited. */
async function claimedBy(client: pg.Client, sql: string, p: Parameters) {
  await client.query('BEGIN');
  try {
    const { rows } = await client.query<{
      job_id: string | null;
      status: string;
      limited: boolean;
      alone?: boolean;
    }>(sql, [p.limit, WORKER, p.startNow, p.maxInputBytes, p.defaultMaxRunning]);
    const { rows: leases } = await client.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM ix_job_leases',
    );
    const { rows: turns } = await client.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM ix_client_turns',
    );
    return {
      alone: rows[0]?.alone,
      jobs: rows.filter((row) => row.job_id !== null).map((row) => [row.job_id, row.status, row.limited]),
      leases: leases[0]!.n,
      turns: turns[0]!.n,
    };
  } finally {
    await client.query('ROLLBACK');
  }
}

async function withClient<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

describe('the one-client claim', () => {
  it("takes what the fair claim takes, in its order, whatever one client's queue and the claim's limits", async () => {
    await workerHeartbeat(db.pool, WORKER);
    const job = fc.record({
      client: fc.constant('solo'),
      priority: fc.integer({ min: 0, max: 3 }),
      later: fc.boolean(),
      inputBytes: fc.integer({ min: 0, max: 400 }),
    });
    const parameters = fc.record({
      limit: fc.integer({ min: 1, max: 25 }),
      startNow: fc.integer({ min: 0, max: 25 }),
      maxInputBytes: fc.option(fc.integer({ min: 1, max: 6000 }), { nil: null }),
      defaultMaxRunning: fc.constant(null),
    });
    await withClient((client) =>
      fc.assert(
        fc.asyncProperty(fc.array(job, { minLength: 0, maxLength: 30 }), parameters, async (jobs, p) => {
          await db.pool.query('TRUNCATE ix_jobs, ix_job_queue, ix_job_leases');
          await queue(jobs);
          const fair = await claimedBy(client, CLAIM_SQL, p);
          const alone = await claimedBy(client, ONE_CLIENT_CLAIM_SQL, p);
          expect(alone.alone).toBe(true);
          expect(alone.jobs).toEqual(fair.jobs);
          expect([alone.leases, alone.turns]).toEqual([fair.leases, fair.turns]);
        }),
        { numRuns: 40 },
      ),
    );
  }, 60_000);

  it('takes nothing and says so where the fair claim has to choose: two clients, a max_running, a disabled client', async () => {
    await workerHeartbeat(db.pool, WORKER);
    const cases: { setup: () => Promise<void>; defaultMaxRunning?: number }[] = [
      {
        setup: () =>
          queue([
            { client: 'a', priority: 0, later: false, inputBytes: 10 },
            { client: 'b', priority: 0, later: true, inputBytes: 10 },
          ]),
      },
      {
        setup: async () => {
          await queue([{ client: 'capped', priority: 0, later: false, inputBytes: 10 }]);
          await db.pool.query("INSERT INTO ix_clients (client_id, max_running) VALUES ('capped', 1)");
        },
      },
      {
        setup: () => queue([{ client: 'anyone', priority: 0, later: false, inputBytes: 10 }]),
        defaultMaxRunning: 5,
      },
      {
        setup: async () => {
          await queue([{ client: 'off', priority: 0, later: false, inputBytes: 10 }]);
          await db.pool.query("INSERT INTO ix_clients (client_id, disabled) VALUES ('off', true)");
        },
      },
    ];
    await withClient(async (client) => {
      for (const { setup, defaultMaxRunning } of cases) {
        await truncateAll(db.pool);
        await workerHeartbeat(db.pool, WORKER);
        await setup();
        const p = {
          limit: 10,
          startNow: 10,
          maxInputBytes: null,
          defaultMaxRunning: defaultMaxRunning ?? null,
        };
        expect(await claimedBy(client, ONE_CLIENT_CLAIM_SQL, p)).toEqual({
          alone: false,
          jobs: [],
          leases: 0,
          turns: 0,
        });
        const { rows } = await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM ix_job_queue');
        expect(rows[0]!.n).toBeGreaterThan(0);
      }
      // An empty queue has nothing to share: served, with nothing.
      await truncateAll(db.pool);
      const p = { limit: 10, startNow: 10, maxInputBytes: null, defaultMaxRunning: null };
      expect(await claimedBy(client, ONE_CLIENT_CLAIM_SQL, p)).toEqual({
        alone: true,
        jobs: [],
        leases: 0,
        turns: 0,
      });
    });
  });

  it('jobClaimMany claims fairly at once after finding two clients, and tries the one-client claim again after the pause', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    await workerHeartbeat(db.pool, WORKER);
    const names: string[] = [];
    const counting = new Proxy(db.pool, {
      get(target, property) {
        const value = Reflect.get(target, property, target);
        if (property !== 'query') return typeof value === 'function' ? value.bind(target) : value;
        return (config: pg.QueryConfig, values?: unknown[]) => {
          if (config?.name) names.push(config.name);
          return target.query(config, values);
        };
      },
    });
    const claim = () => jobClaimMany(counting, { limit: 1, workerId: WORKER, startNow: 1 });
    await queue([{ client: 'solo', priority: 0, later: false, inputBytes: 10 }]);
    expect(await claim()).toHaveLength(1);
    expect(names.splice(0)).toEqual(['ix_job_claim_one_client']);

    await queue([
      { client: 'a', priority: 0, later: false, inputBytes: 10 },
      { client: 'b', priority: 0, later: false, inputBytes: 10 },
      { client: 'b', priority: 0, later: false, inputBytes: 10 },
    ]);
    const [first] = await claim();
    expect(names.splice(0)).toEqual(['ix_job_claim_one_client', 'ix_job_claim']);
    // The fair claim took turns: the next one serves the other client.
    const [second] = await claim();
    expect(names.splice(0)).toEqual(['ix_job_claim']);
    expect(new Set([first!.job.client_id, second!.job.client_id])).toEqual(new Set(['a', 'b']));

    vi.setSystemTime(Date.now() + 30_001);
    const [third] = await claim();
    expect(third!.job.client_id).toBe('b');
    expect(names.splice(0)).toEqual(['ix_job_claim_one_client']);
  });
});
