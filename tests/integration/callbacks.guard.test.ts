import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Resolver, systemResolver } from '../../src/callbacks/index.js';
import { jobGet } from '../../src/store/index.js';
import { callbackPendingCount, makeDeliverer } from '../support/callbacks.js';
import { useTestDatabase } from '../support/db.js';
import { finishedJobs } from '../support/jobs.js';
import { type Receiver, startReceiver } from '../support/receiver.js';

const db = useTestDatabase();
let v4: Receiver;
// Also listening on ::1 (where the machine has it), so http://[::1] refused proves something.
let v6: Receiver | null = null;

beforeAll(async () => {
  v4 = await startReceiver('127.0.0.1');
  v6 = await startReceiver('::1').catch(() => null);
});
afterAll(async () => {
  await v4.close();
  await v6?.close();
});

const toLoopback: Resolver = async () => [{ address: '127.0.0.1', family: 4 }];
const GUARD_ON = { IX_CALLBACK_ALLOW_PRIVATE: 'false' };

describe('SSRF guard at delivery', () => {
  it('refuses loopback, link-local, private and names resolving to loopback; nothing is sent', async () => {
    const urls = [
      `http://127.0.0.1:${v4.port}/hook`,
      `http://[::1]:${v6?.port ?? v4.port}/hook`,
      'http://169.254.169.254/latest/meta-data/',
      'http://10.0.0.1/hook',
      `http://localhost:${v4.port}/hook`,
      `http://callbacks.example:${v4.port}/hook`,
    ];
    const jobs = [];
    for (const url of urls) jobs.push(...(await finishedJobs(db.pool, url, ['done'])));
    // localhost goes to the system resolver; the made-up name to one that answers 127.0.0.1.
    const resolve: Resolver = (host) => (host === 'localhost' ? systemResolver(host) : toLoopback(host));
    const deliverer = makeDeliverer({ pool: db.pool, env: GUARD_ON, options: { resolve } });
    const started = Date.now();
    expect(await deliverer.runOnce()).toBe(urls.length);
    // Refused before any connection: no attempt waited on 10.0.0.1 or 169.254.169.254.
    expect(Date.now() - started).toBeLessThan(2000);

    expect(v4.requests).toEqual([]);
    expect(v6?.requests ?? []).toEqual([]);
    expect(await callbackPendingCount(db.pool)).toBe(0);
    for (const job of jobs) {
      const after = await jobGet(db.pool, job.job_id);
      expect(after, job.callback_url!).toMatchObject({ status: 'done', callback_status: 'failed' });
      expect(after?.callback_attempts).toHaveLength(1);
      expect(after?.callback_attempts?.[0]).toMatchObject({ attempt: 1, status_code: null });
      expect(after?.callback_attempts?.[0]?.error, job.callback_url!).toMatch(
        /^refused by the SSRF guard: .*(loopback|linkLocal|private)/,
      );
    }
    expect((await jobGet(db.pool, jobs[5]!.job_id))?.callback_attempts?.[0]?.error).toMatch(
      /callbacks\.example resolves to 127\.0\.0\.1 is loopback/,
    );
  });

  it('refuses non-http schemes for good', async () => {
    const [job] = await finishedJobs(db.pool, 'file:///etc/passwd', ['done']);
    await makeDeliverer({ pool: db.pool, env: GUARD_ON }).runOnce();
    expect(await jobGet(db.pool, job!.job_id)).toMatchObject({
      callback_status: 'failed',
      callback_attempts: [{ error: 'refused: scheme file: is not http or https' }],
    });
  });

  it('with IX_CALLBACK_ALLOW_PRIVATE, connects to the checked address and keeps the host name as Host', async () => {
    const [job] = await finishedJobs(db.pool, `http://callbacks.example:${v4.port}/hook?x=1`, ['done']);
    let lookups = 0;
    // Answers 127.0.0.1 once, then a rebinding attacker's address: the connection must use the first.
    const rebinding: Resolver = async () => [
      { address: lookups++ === 0 ? '127.0.0.1' : '10.0.0.1', family: 4 },
    ];
    const deliverer = makeDeliverer({ pool: db.pool, options: { resolve: rebinding } });
    expect(await deliverer.runOnce()).toBe(1);
    expect(lookups).toBe(1);
    expect(v4.requests).toHaveLength(1);
    expect(v4.requests[0]?.headers.host).toBe(`callbacks.example:${v4.port}`);
    expect(await jobGet(db.pool, job!.job_id)).toMatchObject({ callback_status: 'delivered' });
    v4.requests.length = 0;
  });
});
