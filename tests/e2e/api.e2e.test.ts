/**
 * The real server on a free loopback port, driven through the typed client over HTTP, with a
 * real worker finishing the jobs.
 */
import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningApi, startApi } from '../../src/api/index.js';
import { IxApiError, IxClient, IxWaitTimeoutError } from '../../src/client/index.js';
import { loadConfig } from '../../src/config.js';
import { createPool } from '../../src/store/index.js';
import { echoPipeline } from '../../src/worker/index.js';
import { captureLogs } from '../support/api.js';
import { useTestDatabase } from '../support/db.js';
import { makeRequest } from '../support/factories.js';
import { makeWorker } from '../support/worker.js';

const KEY = 'e2e-key-of-acme-0123456789';
const db = useTestDatabase();
let api: RunningApi;
let client: IxClient;

beforeAll(async () => {
  const config = loadConfig({ IX_HOST: '127.0.0.1', IX_PORT: '0', IX_API_KEYS: `acme=${KEY}` });
  api = await startApi({ pool: db.pool, connectionString: db.url, config, logger: captureLogs().logger });
  client = new IxClient({ baseUrl: api.address, apiKey: KEY, timeoutMs: 5_000 });
});
afterAll(async () => {
  await api?.close();
});

describe('ix API over HTTP', () => {
  it('listens on a loopback address picked by the OS', () => {
    expect(api.address).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(api.address).not.toMatch(/:0$/);
  });

  it('submits a job scheduled for later, with its own budget of runs', async () => {
    const runAfter = new Date(Date.now() + 3_600_000);
    const { job } = await client.submit(makeRequest({ ix_client_id: 'acme' }), null, {
      runAfter,
      maxAttempts: 2,
    });
    expect(job).toMatchObject({ status: 'pending', run_after: runAfter.toISOString(), max_attempts: 2 });
  });

  it('submits, reads back by id and correlation, and waits for done', async () => {
    const request = makeRequest({ ix_client_id: 'acme' });
    const { job, created } = await client.submit(request);
    expect(created).toBe(true);
    expect(job.status).toBe('pending');
    expect(await client.get(job.job_id)).toEqual(job);
    expect(await client.getByCorrelation('acme', request.request_id)).toEqual(job);
    expect((await client.submit(request)).created).toBe(false);

    // A worker that polls only every ten minutes: it finds the first job when it starts, and
    // the second only if the API woke it after committing the submit.
    const worker = makeWorker(db, echoPipeline, { pollIntervalMs: 600_000 });
    await worker.start();
    try {
      const finished = await client.waitFor(job.job_id, { timeoutMs: 10_000 });
      expect(finished).toMatchObject({ status: 'done', response: { error: null, result: request.input } });
      const second = await client.submit(makeRequest({ ix_client_id: 'acme', input: { pages: 3 } }));
      const done = await client.waitFor(second.job.job_id, { timeoutMs: 5_000 });
      expect(done).toMatchObject({ status: 'done', response: { result: { pages: 3 } } });
    } finally {
      await worker.stop();
    }
  });

  it('throws IxApiError with status and code for API errors', async () => {
    await expect(client.get('00000000-0000-4000-8000-000000000000')).rejects.toMatchObject({
      name: 'IxApiError',
      status: 404,
      code: 'not_found',
    });
    const forbidden = await client.submit(makeRequest({ ix_client_id: 'beta' })).catch((e: unknown) => e);
    expect(forbidden).toBeInstanceOf(IxApiError);
    expect(forbidden).toMatchObject({ status: 403, code: 'forbidden' });
    const request = makeRequest({ ix_client_id: 'acme' });
    const { job } = await client.submit(request);
    const conflict = await client.submit({ ...request, input: { changed: true } }).catch((e: unknown) => e);
    expect(conflict).toBeInstanceOf(IxApiError);
    expect(conflict).toMatchObject({ status: 409, code: 'idempotency_conflict', jobId: job.job_id });
    const anonymous = new IxClient({ baseUrl: api.address });
    await expect(anonymous.submit(makeRequest({ ix_client_id: 'acme' }))).rejects.toMatchObject({
      status: 401,
    });
  });

  it('gives up waiting with IxWaitTimeoutError', async () => {
    const { job } = await client.submit(makeRequest({ ix_client_id: 'acme' }));
    const started = Date.now();
    await expect(client.waitFor(job.job_id, { timeoutMs: 200 })).rejects.toBeInstanceOf(IxWaitTimeoutError);
    expect(Date.now() - started).toBeGreaterThanOrEqual(200);
    expect(Date.now() - started).toBeLessThan(1_500);
  });

  it('submitAndWait resolves with the finished job; events yields each state once, through the end', async () => {
    const worker = makeWorker(db, async (request, ctx) => {
      ctx.progress({ percent: 50 });
      await new Promise((resolve) => setTimeout(resolve, 1_300));
      return { result: request.input };
    });
    await worker.start();
    try {
      const request = makeRequest({ ix_client_id: 'acme', input: 'waited' });
      const done = await client.submitAndWait(request, null, { timeoutMs: 10_000 });
      expect(done).toMatchObject({ status: 'done', response: { result: 'waited' } });

      const { job } = await client.submit(makeRequest({ ix_client_id: 'acme', input: 'followed' }));
      const seen = [];
      for await (const event of client.events(job.job_id)) seen.push(event);
      // The worker may have claimed it before the stream opened: then it starts at running.
      const types = seen.map((event) => event.type);
      expect(types.slice(types[0] === 'pending' ? 1 : 0)).toEqual(['running', 'progress', 'done']);
      expect(seen.at(-1)?.job.response).toMatchObject({ result: 'followed' });
      // Resumed after its last event, the stream has nothing more to say.
      const resumed = [];
      for await (const event of client.events(job.job_id, { lastEventId: seen.at(-1)!.id }))
        resumed.push(event);
      expect(resumed).toEqual([]);
    } finally {
      await worker.stop();
    }
  });

  it('closes gracefully with a request in flight: it is answered, then its connection closes', async () => {
    // A "PostgreSQL" that accepts connections and never answers keeps /readyz in flight (2 s).
    const silent = createServer(() => {});
    const sockets: Socket[] = [];
    silent.on('connection', (socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as AddressInfo).port;
    const hangingPool = createPool(`postgres://postgres@127.0.0.1:${port}/none`, { max: 1 });
    const server = await startApi({
      pool: hangingPool,
      connectionString: `postgres://postgres@127.0.0.1:${port}/none`,
      config: loadConfig({ IX_PORT: '0' }),
      logger: captureLogs().logger,
    });
    try {
      const url = new URL(server.address);
      const client = connect(Number(url.port), url.hostname);
      let received = '';
      client.on('data', (chunk) => {
        received += String(chunk);
      });
      client.write('GET /readyz HTTP/1.1\r\nHost: ix\r\nConnection: keep-alive\r\n\r\n');
      await new Promise((resolve) => setTimeout(resolve, 300));
      const clientClosed = once(client, 'close');
      const started = Date.now();
      await server.close();
      await clientClosed;
      // Without `Connection: close` the answered socket would idle for the 72 s keep-alive.
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(received).toMatch(/^HTTP\/1\.1 503/);
      expect(received).toContain('"code":"not_ready"');
      expect(received.toLowerCase()).toContain('connection: close');
    } finally {
      for (const socket of sockets) socket.destroy();
      silent.close();
      await hangingPool.end();
    }
  });

  it('closes gracefully: an idle keep-alive connection does not hold close open', async () => {
    const config = loadConfig({ IX_PORT: '0' });
    const second = await startApi({
      pool: db.pool,
      connectionString: db.url,
      config,
      logger: captureLogs().logger,
    });
    await fetch(`${second.address}/healthz`);
    const started = Date.now();
    await second.close();
    expect(Date.now() - started).toBeLessThan(2_000);
    await expect(fetch(`${second.address}/healthz`)).rejects.toThrow();
  });
});
