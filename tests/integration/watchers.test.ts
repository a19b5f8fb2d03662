/**
 * Job change notifications go out only while some process has someone waiting on a job
 * (ix_watchers): the store's notifying statement, and a watcher's registration as its waiters
 * come and go.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHANGED_CHANNEL, jobNotifyChanged, watcherRegister, watcherRemove } from '../../src/store/index.js';
import { JobWatcher } from '../../src/watch/index.js';
import { useTestDatabase } from '../support/db.js';
import { makeRequest } from '../support/factories.js';
import { insertPending } from '../support/jobs.js';
import { eventually, silentLogger } from '../support/worker.js';

const db = useTestDatabase();
const WATCHER = '00000000-0000-7000-8000-0000000000e1';
let listening: pg.Client;
const heard: string[] = [];

beforeAll(async () => {
  listening = new pg.Client({ connectionString: db.url });
  await listening.connect();
  listening.on('notification', ({ payload }) => heard.push(payload ?? ''));
  await listening.query(`LISTEN ${CHANGED_CHANNEL}`);
});
afterAll(async () => {
  await listening?.end();
});

/** What CHANGED_CHANNEL carried after `notify`, once a marker sent behind it has arrived. */
async function heardAfter(notify: () => Promise<void>): Promise<string[]> {
  heard.length = 0;
  await notify();
  const marker = `marker-${Math.random()}`;
  await db.pool.query('SELECT pg_notify($1, $2)', [CHANGED_CHANNEL, marker]);
  await eventually(async () => heard.includes(marker), 'the marker arrives');
  return heard.filter((payload) => payload !== marker);
}

const registrations = async () =>
  (await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM ix_watchers')).rows[0]!.n;

describe('job change notifications', () => {
  it('are sent only while a watcher is registered and its registration has not lapsed', async () => {
    const notify = () => jobNotifyChanged(db.pool, ['a', 'b']);
    expect(await heardAfter(notify)).toEqual([]);
    await watcherRegister(db.pool, WATCHER, 60);
    expect(await heardAfter(notify)).toEqual(['a,b']);
    await watcherRemove(db.pool, WATCHER);
    expect(await heardAfter(notify)).toEqual([]);
    // A registration whose time has passed counts for nothing, and the next one removes it.
    await db.pool.query(
      `INSERT INTO ix_watchers (watcher_id, until) VALUES ($1, now() - interval '1 second')`,
      [WATCHER],
    );
    expect(await heardAfter(notify)).toEqual([]);
    await watcherRegister(db.pool, '00000000-0000-7000-8000-0000000000e2', 60);
    expect(
      (await db.pool.query<{ watcher_id: string }>('SELECT watcher_id FROM ix_watchers')).rows.map(
        (r) => r.watcher_id,
      ),
    ).toEqual(['00000000-0000-7000-8000-0000000000e2']);
  });

  it('a watcher registers before it reads its first waiter’s job again, and withdraws once nobody waits', async () => {
    const watcher = new JobWatcher({
      pool: db.pool,
      connectionString: db.url,
      logger: silentLogger,
      pollIntervalMs: 600_000,
    });
    await watcher.start();
    try {
      await eventually(async () => watcher.listening, 'notifications are known to arrive');
      expect(await registrations()).toBe(0);
      const { job } = await insertPending(db.pool, makeRequest(), null);
      const seen: string[] = [];
      const unwatch = watcher.watch(job.job_id, (read) => seen.push(read.status));
      // The watch's own read of the job comes after the registration.
      await eventually(async () => seen.length === 1, 'the job read once more');
      expect(await registrations()).toBe(1);
      // Told, and read again at once: no poll runs in this test.
      await db.pool.query(`UPDATE ix_jobs SET status = 'running', started_at = now() WHERE job_id = $1`, [
        job.job_id,
      ]);
      await jobNotifyChanged(db.pool, [job.job_id]);
      await eventually(async () => seen.at(-1) === 'running', 'the change told');
      unwatch();
      await watcher.runOnce();
      expect(await registrations()).toBe(0);
      // A registration that went meanwhile is made again for the next first waiter.
      const again = watcher.watch(job.job_id, () => {});
      await eventually(async () => (await registrations()) === 1, 'registered again');
      again();
    } finally {
      await watcher.close();
    }
    expect(await registrations()).toBe(0);
  });

  it('a first waiter that joins a read in flight, after the last one left and its registration went, is registered before its job is read', async () => {
    // The watcher's reads of jobs wait at a gate while it is shut; its other statements pass.
    let gate: Promise<void> | null = null;
    let open = () => {};
    const readsOf: string[][] = [];
    const registeredAtRead: number[] = [];
    const pool = {
      query: async (config: string | pg.QueryConfig, values?: unknown[]) => {
        const text = typeof config === 'string' ? config : config.text;
        if (text.includes('FROM ix_jobs')) {
          readsOf.push((values?.[0] ?? (config as pg.QueryConfig).values?.[0]) as string[]);
          registeredAtRead.push(await registrations());
          if (gate) await gate;
        }
        return db.pool.query(config as string, values);
      },
    } as unknown as pg.Pool;
    const watcher = new JobWatcher({
      pool,
      connectionString: null,
      logger: silentLogger,
      pollIntervalMs: 600_000,
    });
    try {
      const { job: first } = await insertPending(db.pool, makeRequest(), null);
      const { job: second } = await insertPending(db.pool, makeRequest(), null);
      gate = new Promise<void>((resolve) => {
        open = resolve;
      });
      const unwatchFirst = watcher.watch(first.job_id, () => {});
      await eventually(async () => readsOf.length === 1, 'the first job read, held at the gate');
      unwatchFirst();
      await watcher.runOnce();
      expect(await registrations()).toBe(0);
      const seen: string[] = [];
      watcher.watch(second.job_id, (read) => seen.push(read.status));
      open();
      await eventually(async () => seen.length === 1, 'the second job read');
      // Its read came after its registration, in the loop that was reading the first job.
      expect(readsOf.at(-1)).toContain(second.job_id);
      expect(registeredAtRead.at(-1)).toBe(1);
    } finally {
      await watcher.close();
    }
  });
});
