import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { Job } from '../../src/contracts/index.js';
import { backoffSeconds, JobAbort, RetryableError, runPipeline } from '../../src/worker/index.js';
import type { PipelineContext, ProgressReport } from '../../src/worker/pipeline.js';

const policy = { retryBaseSeconds: 5, retryMaxSeconds: 60 };

describe('backoffSeconds', () => {
  it('waits up to base × 2^attempts, uniformly (full jitter), at most the maximum', () => {
    expect(backoffSeconds(0, null, policy, () => 0)).toBe(0);
    expect(backoffSeconds(0, null, policy, () => 0.5)).toBe(2.5);
    expect(backoffSeconds(2, null, policy, () => 0.5)).toBe(10);
    expect(backoffSeconds(3, null, policy, () => 0.999)).toBeLessThanOrEqual(40);
    expect(backoffSeconds(3, null, policy, () => 1)).toBe(40);
    expect(backoffSeconds(6, null, policy, () => 1)).toBe(60);
  });

  it('lets a pipeline’s Retry-After win, capped by the maximum', () => {
    expect(backoffSeconds(0, 30, policy, () => 0)).toBe(30);
    expect(backoffSeconds(0, 3_600, policy, () => 0)).toBe(60);
  });
});

describe('runPipeline: which failures are retryable', () => {
  const job = {
    job_id: '00000000-0000-7000-8000-000000000001',
    ix_id: '0123456789abcdef',
    attempts: 0,
    request: { ix_client_id: 'c', request_id: 'r', ix_id: '0123456789abcdef', input: null },
  } as Job;
  const run = (pipeline: Parameters<typeof runPipeline>[0], timeoutSeconds = 5) =>
    runPipeline(pipeline, job, {
      timeoutSeconds,
      abort: new JobAbort(),
      logger: () => pino({ level: 'silent' }),
    });

  it('a returned error is permanent unless it says retryable', async () => {
    expect((await run(async () => ({ error: 'no' }))).retry).toBeNull();
    expect((await run(async () => ({ error: 'later', retryable: true }))).retry).toEqual({
      afterSeconds: null,
    });
    expect(
      (await run(async () => ({ error: 'later', retryable: true, retryAfterSeconds: 9 }))).retry,
    ).toEqual({ afterSeconds: 9 });
  });

  it('RetryableError carries its wait; anything else thrown is retryable too', async () => {
    const thrown = await run(async () => {
      throw new RetryableError('rate limited', { afterSeconds: 12 });
    });
    expect(thrown).toEqual({
      response: { ix_id: job.ix_id, error: 'rate limited', result: null },
      retry: { afterSeconds: 12 },
    });
    // Another copy of ix's class (a pipeline module's own node_modules/ix) is told by its name.
    class CopiedRetryableError extends Error {
      override name = 'RetryableError';
      afterSeconds = 4;
    }
    const copy = await run(async () => {
      throw new CopiedRetryableError('busy');
    });
    expect(copy.retry).toEqual({ afterSeconds: 4 });
    const unknown = await run(async () => {
      throw new TypeError('fetch failed');
    });
    expect(unknown.retry).toEqual({ afterSeconds: null });
  });

  it('a timeout is retryable; garbage returned is not', async () => {
    const slow = await run(() => new Promise(() => {}), 0.01);
    expect(slow.response.error).toMatch(/timed out/);
    expect(slow.retry).toEqual({ afterSeconds: null });
    expect((await run(async () => ({}) as never)).retry).toBeNull();
  });

  it('takes a result a JavaScript pipeline returns without a promise', async () => {
    const plain = (() => ({ result: 'plain' })) as unknown as Parameters<typeof runPipeline>[0];
    expect(await run(plain)).toEqual({
      response: { ix_id: job.ix_id, error: null, result: 'plain' },
      retry: null,
    });
  });

  it('hands the pipeline its job’s ids, a signal its timeout aborts, a logger made once when asked, and its progress', async () => {
    let loggers = 0;
    const reports: ProgressReport[] = [];
    let seen: PipelineContext | undefined;
    const outcome = await runPipeline(
      (_request, ctx) => {
        seen = ctx;
        ctx.progress({ percent: 50 });
        return new Promise(() => {});
      },
      job,
      {
        timeoutSeconds: 0.01,
        abort: new JobAbort(),
        logger: () => {
          loggers++;
          return pino({ level: 'silent' });
        },
        progress: (report) => reports.push(report),
      },
    );
    expect(outcome.response.error).toMatch(/timed out/);
    const ctx = seen!;
    // What a pipeline that logs or spreads its context sees: the ids, nothing of the worker's.
    expect({ ...ctx }).toEqual({ ix_id: job.ix_id, job_id: job.job_id, attempt: 0 });
    expect(ctx.signal.aborted).toBe(true);
    expect(reports).toEqual([{ percent: 50 }]);
    expect(loggers).toBe(0);
    expect(ctx.logger).toBe(ctx.logger);
    expect(loggers).toBe(1);
  });
});
