/**
 * Outcomes and timings a failure-prone pipeline can produce that must hurt nothing but its own
 * job: results PostgreSQL cannot store, a worker that re-claims its own rescued job, prefetched
 * jobs of a worker that dies, and a pipeline that ignores its abort signal at shutdown.
 */
import { describe, expect, it } from 'vitest';
import type { JsonValue, RequestIX } from '../../src/contracts/index.js';
import { jobClaimMany, jobGet, workerHeartbeat } from '../../src/store/index.js';
import { type Pipeline, type PipelineResult, Sweeper } from '../../src/worker/index.js';
import { useTestDatabase } from '../support/db.js';
import {
  eventually,
  makeWorker,
  silentLogger,
  statusCounts,
  submitMany,
  workerConfig,
} from '../support/worker.js';

const db = useTestDatabase();

const MAX_RESULT_BYTES = 1_048_576;

/** Outcomes that PostgreSQL refuses, or that cannot even be written as JSON. */
const UNSTORABLE: Record<string, () => PipelineResult> = {
  'NUL in a result': () => ({ result: { text: 'page one\u0000page two' } }),
  'lone surrogate in a result': () => ({ result: { text: 'broken \ud800 pair' } }),
  'BigInt in a result': () => ({ result: { n: 10n } as unknown as JsonValue }),
  'circular result': () => {
    const node: Record<string, unknown> = { name: 'loop' };
    node.self = node;
    return { result: node as JsonValue };
  },
  'NUL in an error': () => ({ error: 'excerpt: \u0000\u0000' }),
  'NUL in a thrown message': () => {
    throw new Error('native code said \u0000');
  },
  'oversize result': () => ({ result: { text: 'x'.repeat(MAX_RESULT_BYTES + 1) } }),
};

function poisonName(request: RequestIX): string | null {
  const input = request.input as { poison?: string } | null;
  return typeof input?.poison === 'string' ? input.poison : null;
}

/** Resolves with how long `promise` took, or rejects after `ms`. */
async function within<T>(ms: number, promise: Promise<T>, what: string): Promise<number> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
  return Date.now() - started;
}

describe('worker faults', () => {
  it('outcomes that cannot be stored end their own job error; every other outcome is recorded and the worker goes on', async () => {
    const ordinary = await submitMany(db.pool, 40);
    const poisoned = new Map<string, string>();
    for (const name of Object.keys(UNSTORABLE)) {
      const [id] = await submitMany(db.pool, 1, { poison: name });
      poisoned.set(id!, name);
    }
    const pipeline: Pipeline = async (request) => {
      const name = poisonName(request);
      return name ? UNSTORABLE[name]!() : { result: { ok: request.request_id } };
    };
    const worker = makeWorker(db, pipeline, {
      concurrency: 5,
      prefetch: 20,
      shutdownGraceSeconds: 2,
      maxResultBytes: MAX_RESULT_BYTES,
    });
    await worker.start();
    try {
      await eventually(async () => {
        const counts = await statusCounts(db.pool);
        return (counts.done ?? 0) + (counts.error ?? 0) === ordinary.length + poisoned.size;
      }, 'every job finished');
      for (const id of ordinary) expect((await jobGet(db.pool, id))?.status).toBe('done');
      for (const [id, name] of poisoned) {
        const job = await jobGet(db.pool, id);
        expect({ name, status: job?.status }).toEqual({ name, status: 'error' });
        expect(job?.response?.error).toMatch(/^pipeline (result|error) could not be stored: /);
      }
      // Still claiming.
      const later = await submitMany(db.pool, 5);
      await eventually(
        async () =>
          (await Promise.all(later.map((id) => jobGet(db.pool, id)))).every((j) => j?.status === 'done'),
        'jobs submitted afterwards done',
      );
    } finally {
      await within(5_000, worker.stop(), 'stop');
    }
  });

  it('outcomes that cannot be recorded while ix_jobs is locked do not hold stop beyond the grace period', async () => {
    const [id] = await submitMany(db.pool, 1);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const pipeline: Pipeline = async () => {
      await gate;
      return { result: { ok: true } };
    };
    const worker = makeWorker(db, pipeline, { shutdownGraceSeconds: 1 });
    await worker.start();
    await eventually(async () => (await jobGet(db.pool, id!))?.status === 'running', 'the job runs');
    // A long lock: the completion waits behind it for as long as it is held.
    const locker = await db.pool.connect();
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE ix_jobs IN ACCESS EXCLUSIVE MODE');
    try {
      release();
      const took = await within(10_000, worker.stop(), 'stop');
      expect(took).toBeLessThan(6_000);
    } finally {
      await locker.query('ROLLBACK');
      locker.release();
    }
    // The statement stop gave up waiting for still applies once the lock is gone.
    await eventually(
      async () => (await jobGet(db.pool, id!))?.status === 'done',
      'the outcome recorded after all',
    );
  });

  it('a live worker that claims its own rescued job again records the new attempt, whatever the old one does', async () => {
    const [id] = await submitMany(db.pool, 1);
    const gates = new Map<number, () => void>();
    const runs: number[] = [];
    const pipeline: Pipeline = (_request, ctx) => {
      runs.push(ctx.attempt);
      return new Promise((resolve) => {
        gates.set(ctx.attempt, () => resolve({ result: { attempt: ctx.attempt } }));
      });
    };
    const worker = makeWorker(db, pipeline, { concurrency: 2, heartbeatTimeoutSeconds: 30 });
    await worker.start();
    try {
      await eventually(async () => gates.has(0), 'attempt 0 runs');
      // The worker is late (a long outage, a blocked event loop): its lease is rescued.
      const sweeper = new Sweeper(db.pool, workerConfig(), silentLogger);
      const rescued = await sweeper.runOnce(new Date(Date.now() + 60_000));
      expect(rescued.requeued).toEqual([id]);
      worker.wake();
      // Claimed again by the same worker; rescued from a stalled worker, it runs alone, so it
      // starts once the stale attempt is out of the way.
      await eventually(async () => worker.heldCount === 2, 'attempt 1 claimed by the same worker');
      gates.get(0)!(); // the stale attempt ends first; its outcome must be discarded alone
      await eventually(async () => gates.has(1), 'attempt 1 runs in the same worker');
      expect(worker.heldCount).toBe(1);
      gates.get(1)!();
      await eventually(async () => (await jobGet(db.pool, id!))?.status === 'done', 'attempt 1 recorded');
      expect(await jobGet(db.pool, id!)).toMatchObject({ attempts: 1, response: { result: { attempt: 1 } } });
      expect(worker.heldCount).toBe(0);
      expect(runs).toEqual([0, 1]);
    } finally {
      await worker.stop();
    }
  });

  it('prefetched jobs read as pending, not running, until their pipeline starts', async () => {
    const ids = await submitMany(db.pool, 4);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const pipeline: Pipeline = async () => {
      await gate;
      return { result: null };
    };
    const worker = makeWorker(db, pipeline, { concurrency: 1, prefetch: 3 });
    await worker.start();
    try {
      await eventually(async () => worker.heldCount === 4, 'the worker holds all four');
      const jobs = await Promise.all(ids.map((id) => jobGet(db.pool, id)));
      expect(jobs.map((j) => [j?.status, j?.started_at === null])).toEqual([
        ['running', false],
        ['pending', true],
        ['pending', true],
        ['pending', true],
      ]);
      release();
      await eventually(async () => (await statusCounts(db.pool)).done === 4, 'all four done');
    } finally {
      await worker.stop();
    }
  });

  it('a job rescued from a worker that died runs alone, so no job beside it is charged for it again', async () => {
    const [suspect] = await submitMany(db.pool, 1);
    const others = await submitMany(db.pool, 8);
    // The suspect was running on a worker that died: rescued with an attempt and a rescue counted.
    const dead = '00000000-0000-7000-8000-0000000000dd';
    await workerHeartbeat(db.pool, dead);
    await jobClaimMany(db.pool, { limit: 1, workerId: dead, startNow: 1 });
    await new Sweeper(db.pool, workerConfig(), silentLogger).runOnce(new Date(Date.now() + 60_000));
    expect(await jobGet(db.pool, suspect!)).toMatchObject({ status: 'pending', attempts: 1 });
    // Requeued behind the others: the worker claims all nine at once, the suspect last.
    let running = 0;
    const beside = new Map<string, number>();
    const pipeline: Pipeline = async (request) => {
      running += 1;
      beside.set(request.request_id, running);
      await new Promise((resolve) => setTimeout(resolve, 30));
      running -= 1;
      return { result: null };
    };
    const worker = makeWorker(db, pipeline, { concurrency: 4, prefetch: 8 });
    await worker.start();
    try {
      await eventually(async () => (await statusCounts(db.pool)).done === 9, 'all nine done');
    } finally {
      await worker.stop();
    }
    const suspectJob = await jobGet(db.pool, suspect!);
    expect(beside.get(suspectJob!.request_id)).toBe(1);
    expect(others).toHaveLength(8);
  });

  it('a worker judges others by their heartbeats only once its own have held for a whole timeout', async () => {
    const [orphan] = await submitMany(db.pool, 1);
    const dead = '00000000-0000-7000-8000-0000000000dd';
    await workerHeartbeat(db.pool, dead);
    await jobClaimMany(db.pool, { limit: 1, workerId: dead, startNow: 1 });
    // The dead worker's heartbeat is long stale, as every heartbeat is right after an outage.
    await db.pool.query("UPDATE ix_workers SET heartbeat_at = now() - interval '1 hour'");
    const config = { heartbeatIntervalSeconds: 1, heartbeatTimeoutSeconds: 2, sweepIntervalSeconds: 1 };
    const worker = makeWorker(db, async () => ({ result: null }), config);
    const started = Date.now();
    await worker.start();
    try {
      await eventually(
        async () => (await jobGet(db.pool, orphan!))?.status === 'done',
        'the orphan rescued and run',
      );
      expect(Date.now() - started).toBeGreaterThanOrEqual(2_000);
    } finally {
      await worker.stop();
    }
  });

  it('stop returns within the grace period plus a few seconds when a pipeline ignores its abort signal', async () => {
    const [id] = await submitMany(db.pool, 1);
    const stubborn: Pipeline = () => new Promise(() => {});
    const worker = makeWorker(db, stubborn, { shutdownGraceSeconds: 1, requestTimeoutSeconds: 600 });
    await worker.start();
    await eventually(async () => (await jobGet(db.pool, id!))?.status === 'running', 'the job runs');
    const took = await within(10_000, worker.stop(), 'stop');
    expect(took).toBeLessThan(5_000);
    // Handed back by the stop, which spends no attempt.
    expect(await jobGet(db.pool, id!)).toMatchObject({ status: 'pending', attempts: 0 });
  });
});
