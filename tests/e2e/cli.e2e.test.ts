/**
 * `ix start` as a newcomer runs it: the built CLI, no IX_POSTGRES_URL, so an embedded PostgreSQL
 * in a temporary IX_DATA_DIR. Submit over HTTP, stop, start again: the job is still there; after
 * a SIGKILL the next start recovers the data directory.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { Job } from '../../src/contracts/index.js';
import { isAlive, killPostmaster, postmasterPid, type RunningIx, startIx } from '../support/cli.js';
import { eventually } from '../support/worker.js';

const dataDir = mkdtempSync(join(tmpdir(), 'ix-cli-e2e-'));
// A poll this slow cannot be what finishes a job within a second: only the NOTIFY can.
const env = { IX_DATA_DIR: dataDir, IX_WORKER_POLL_INTERVAL_MS: '60000' };
const running: RunningIx[] = [];

async function start(): Promise<RunningIx> {
  const ix = await startIx(env, 'start', 90_000);
  running.push(ix);
  return ix;
}

async function fetchJob(ix: RunningIx, jobId: string): Promise<Job> {
  const response = await fetch(`${ix.address}/jobs/${jobId}`);
  expect(response.status).toBe(200);
  return (await response.json()) as Job;
}

afterEach(async () => {
  for (const ix of running.splice(0)) {
    if (ix.child.exitCode === null && ix.child.signalCode === null) await ix.stop('SIGKILL');
  }
});
afterAll(() => {
  killPostmaster(dataDir);
  rmSync(dataDir, { recursive: true, force: true });
});

describe('ix start with an embedded PostgreSQL', () => {
  let jobId = '';

  it('serves, runs a submitted job well under the poll interval, and stops cleanly on SIGTERM', async () => {
    const ix = await start();
    expect(ix.stderr()).toMatch(/API docs: http:\/\/127\.0\.0\.1:\d+\/docs/);
    expect(ix.stderr()).toMatch(
      /database: postgres:\/\/postgres@127\.0\.0\.1:\d+\/ix \(embedded PostgreSQL in /,
    );
    expect(ix.stderr()).not.toMatch(/postgres:\/\/[^:@\s]+:[^@\s]+@/); // no password, ever

    const submitted = Date.now();
    const response = await fetch(`${ix.address}/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ request: { ix_client_id: 'e2e', request_id: 'first', input: { n: 1 } } }),
    });
    expect(response.status).toBe(201);
    jobId = ((await response.json()) as Job).job_id;
    await eventually(async () => (await fetchJob(ix, jobId)).status === 'done', 'the job is done', 10_000);
    expect(Date.now() - submitted).toBeLessThan(2_000);

    const pid = postmasterPid(dataDir);
    expect(pid).not.toBeNull();
    expect(await ix.stop('SIGTERM')).toBe(0);
    expect(isAlive(pid as number)).toBe(false);
    expect(postmasterPid(dataDir)).toBeNull();
  }, 120_000);

  it('keeps the job across a restart, and a double Ctrl-C still stops cleanly', async () => {
    const ix = await start();
    expect(await fetchJob(ix, jobId)).toMatchObject({
      status: 'done',
      response: { error: null, result: { n: 1 } },
    });
    // Ctrl-C under `npm start` arrives twice (terminal and npm): the second must not cut the stop short.
    // Signals of one kind are not queued: the second is sent once the first was taken.
    ix.child.kill('SIGINT');
    await eventually(async () => ix.stderr().includes('SIGINT received, stopping'), 'ix stopping');
    expect(await ix.stop('SIGINT')).toBe(0);
    expect(ix.stderr()).toContain('SIGINT received, already stopping');
    expect(postmasterPid(dataDir)).toBeNull();
  }, 120_000);

  it('recovers the data directory after a SIGKILL of ix start', async () => {
    const killed = await start();
    const leftover = postmasterPid(dataDir);
    await killed.stop('SIGKILL');
    // The postmaster outlives its parent: the next start must stop it before starting its own.
    expect(leftover !== null && isAlive(leftover)).toBe(true);

    const ix = await start();
    expect(isAlive(leftover as number)).toBe(false);
    expect((await fetchJob(ix, jobId)).status).toBe('done');
    const response = await fetch(`${ix.address}/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ request: { ix_client_id: 'e2e', request_id: 'after-kill', input: 2 } }),
    });
    const job = (await response.json()) as Job;
    await eventually(async () => (await fetchJob(ix, job.job_id)).status === 'done', 'done after recovery');

    const pid = postmasterPid(dataDir);
    expect(await ix.stop('SIGTERM')).toBe(0);
    expect(isAlive(pid as number)).toBe(false);
    expect(postmasterPid(dataDir)).toBeNull();
  }, 180_000);
});
