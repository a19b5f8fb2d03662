/** Keys bind callers to clients: A's jobs are invisible to B, and nobody submits as someone else. */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApi } from '../../src/api/index.js';
import { ConfigError, loadConfig } from '../../src/config.js';
import type { Job } from '../../src/contracts/index.js';
import { buildTestApi, type CapturedLogs, captureLogs, countJobs } from '../support/api.js';
import { useTestDatabase } from '../support/db.js';
import { makeRequest } from '../support/factories.js';

const KEY_A = 'key-of-client-a-0123456789';
const KEY_B = 'key-of-client-b-9876543210';
const db = useTestDatabase();
let app: FastifyInstance;
let logs: CapturedLogs;

beforeAll(async () => {
  logs = captureLogs();
  app = await buildTestApi(db.pool, { IX_API_KEYS: `client-a=${KEY_A},client-b=${KEY_B}` }, logs);
});
afterAll(async () => {
  await app?.close();
});

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

async function submitAs(key: string, clientId: string) {
  const request = makeRequest({ ix_client_id: clientId });
  const response = await app.inject({
    method: 'POST',
    url: '/jobs',
    headers: bearer(key),
    payload: { request, callback_url: null },
  });
  return { request, response };
}

describe('authentication', () => {
  it('201 for a key submitting as its own client', async () => {
    const { response } = await submitAs(KEY_A, 'client-a');
    expect(response.statusCode).toBe(201);
  });

  it.each([
    ['no Authorization header', {}],
    ['an unknown key', bearer('not-a-key-of-anyone-at-all')],
    ['a key of the right length but wrong', bearer(KEY_A.replace('a', 'b'))],
    [
      'a non-Bearer scheme',
      { authorization: `Basic ${Buffer.from(`client-a:${KEY_A}`).toString('base64')}` },
    ],
    ['an empty Bearer', { authorization: 'Bearer ' }],
  ])('401 unauthorized for %s, writing nothing', async (_name, headers) => {
    for (const [method, url] of [
      ['POST', '/jobs'],
      ['GET', `/jobs/${randomUUID()}`],
      ['GET', '/jobs?client_id=client-a&request_id=r'],
    ] as const) {
      const response = await app.inject({
        method,
        url,
        headers,
        ...(method === 'POST' ? { payload: { request: makeRequest({ ix_client_id: 'client-a' }) } } : {}),
      });
      expect(response.statusCode).toBe(401);
      expect(response.headers['www-authenticate']).toContain('Bearer');
      expect((response.json() as { error: { code: string } }).error.code).toBe('unauthorized');
    }
    expect(await countJobs(db.pool)).toBe(0);
  });

  it('leaves the probes and documentation open', async () => {
    for (const url of ['/healthz', '/readyz', '/openapi.json', '/docs']) {
      expect((await app.inject({ method: 'GET', url })).statusCode).toBe(200);
    }
  });

  it('never logs a key', async () => {
    await submitAs(KEY_A, 'client-a');
    await submitAs(KEY_B, 'client-a');
    await app.inject({ method: 'GET', url: '/jobs/x', headers: bearer('wrong-key-zzzzzzzzzzzz') });
    const text = logs.text();
    expect(text.length).toBeGreaterThan(0);
    expect(text).not.toContain(KEY_A);
    expect(text).not.toContain(KEY_B);
    expect(text).not.toContain('wrong-key-zzzzzzzzzzzz');
  });
});

describe('isolation between clients', () => {
  it('403 when B submits as A, and nothing is written', async () => {
    const { response } = await submitAs(KEY_B, 'client-a');
    expect(response.statusCode).toBe(403);
    expect((response.json() as { error: { code: string } }).error.code).toBe('forbidden');
    expect(await countJobs(db.pool)).toBe(0);
  });

  it("404 when B reads A's job by id or by correlation; A reads it", async () => {
    const { request, response } = await submitAs(KEY_A, 'client-a');
    const job = response.json() as Job;
    const byId = `/jobs/${job.job_id}`;
    const byCorrelation = `/jobs?client_id=client-a&request_id=${encodeURIComponent(request.request_id)}`;

    const missing = await app.inject({ method: 'GET', url: `/jobs/${randomUUID()}`, headers: bearer(KEY_B) });
    for (const url of [byId, byCorrelation]) {
      const asB = await app.inject({ method: 'GET', url, headers: bearer(KEY_B) });
      expect(asB.statusCode).toBe(404);
      // Indistinguishable from a job that does not exist, apart from the id echoed back.
      expect(Object.keys(asB.json() as object)).toEqual(Object.keys(missing.json() as object));
      const asA = await app.inject({ method: 'GET', url, headers: bearer(KEY_A) });
      expect(asA.statusCode).toBe(200);
      expect(asA.json()).toEqual(job);
    }
  });

  it("B's replay of A's request id under its own client makes B's own job", async () => {
    const { request } = await submitAs(KEY_A, 'client-a');
    const asB = await app.inject({
      method: 'POST',
      url: '/jobs',
      headers: bearer(KEY_B),
      payload: { request: { ...request, ix_client_id: 'client-b' }, callback_url: null },
    });
    expect(asB.statusCode).toBe(201);
    expect((asB.json() as Job).client_id).toBe('client-b');
  });
});

describe('exposure', () => {
  it('refuses to build on a non-loopback host without keys, naming IX_API_KEYS', async () => {
    const config = loadConfig({ IX_HOST: '0.0.0.0' });
    const attempt = buildApi({
      pool: db.pool,
      connectionString: db.url,
      config,
      logger: captureLogs().logger,
    });
    await expect(attempt).rejects.toBeInstanceOf(ConfigError);
    await expect(attempt).rejects.toThrow(/IX_API_KEYS/);
  });

  it('builds on a non-loopback host with keys, and on loopback without', async () => {
    for (const env of [
      { IX_HOST: '0.0.0.0', IX_API_KEYS: `a=${KEY_A}` },
      { IX_HOST: '::1' },
      { IX_HOST: 'localhost' },
    ]) {
      const built = await buildApi({
        pool: db.pool,
        connectionString: db.url,
        config: loadConfig(env),
        logger: captureLogs().logger,
      });
      await built.close();
    }
  });
});
