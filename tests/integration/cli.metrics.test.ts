/** `ix worker` serves its own metrics on IX_METRICS_PORT, under the operator key. */
import { spawn } from 'node:child_process';
import { type AddressInfo, createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI, cleanEnv, exited } from '../support/cli.js';
import { useTestDatabase } from '../support/db.js';
import { sample } from '../support/metrics.js';
import { eventually, submitMany } from '../support/worker.js';

const db = useTestDatabase();
const ADMIN_KEY = 'worker-metrics-operator-key-0123';
const stops: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('ix worker metrics', () => {
  it('counts the jobs it ran, on IX_METRICS_PORT, for an operator key only', async () => {
    const port = await freePort();
    const child = spawn(process.execPath, [CLI, 'worker'], {
      env: cleanEnv({
        IX_POSTGRES_URL: db.url,
        IX_METRICS_PORT: String(port),
        IX_ADMIN_KEYS: `ops=${ADMIN_KEY}`,
        IX_API_KEYS: 'acme=acme-key-0123456789abcdef',
        IX_WORKER_POLL_INTERVAL_MS: '100',
      }),
      stdio: 'ignore',
    });
    stops.push(() => {
      child.kill('SIGTERM');
      return exited(child);
    });
    await submitMany(db.pool, 3);
    const url = `http://127.0.0.1:${port}/metrics`;
    const scrape = (key: string | null) =>
      fetch(url, { headers: key ? { authorization: `Bearer ${key}` } : {} }).catch(() => null);
    let text = '';
    await eventually(async () => {
      const response = await scrape(ADMIN_KEY);
      text = response?.ok ? await response.text() : '';
      return sample(text, 'ix_jobs_finished_total{outcome="done"}') === 3;
    }, 'the worker to count 3 jobs done');
    expect(sample(text, 'ix_workers_live')).toBe(1);
    expect((await scrape(null))?.status).toBe(401);
    expect((await scrape('acme-key-0123456789abcdef'))?.status).toBe(403);
    expect((await fetch(`http://127.0.0.1:${port}/other`)).status).toBe(404);
  });
});
