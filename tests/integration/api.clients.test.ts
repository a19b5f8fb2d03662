/**
 * Clients as data in one API (built in-process): keys of the table beside IX_API_KEYS, disabled
 * clients, max_pending (429 too_many_pending) and the submit rate (429 rate_limited).
 */
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApi } from '../../src/api/index.js';
import { ConfigError, loadConfig } from '../../src/config.js';
import type { Job } from '../../src/contracts/index.js';
import {
  clientAdd,
  clientKeyGenerate,
  clientSetDisabled,
  clientUpdate,
  createPool,
  keyDigest,
} from '../../src/store/index.js';
import { buildTestApi, captureLogs, countJobs, JSON_HEADERS } from '../support/api.js';
import { useTestDatabase } from '../support/db.js';
import { makeRequest } from '../support/factories.js';
import { eventually } from '../support/worker.js';

const db = useTestDatabase();
const STATIC_KEY = 'static-key-of-client-s-0123456789';
const ADMIN_KEY = 'admin-key-0123456789abcdef';
let apps: FastifyInstance[] = [];

afterEach(async () => {
  await Promise.all(apps.map((app) => app.close()));
  apps = [];
});

async function api(env: Record<string, string> = {}, pool = db.pool): Promise<FastifyInstance> {
  const app = await buildTestApi(pool, env);
  apps.push(app);
  return app;
}

/** Adds `clientId` to the table with a new key, returned. */
async function addClient(clientId: string, settings = {}): Promise<string> {
  const key = clientKeyGenerate();
  await clientAdd(db.pool, clientId, settings, keyDigest(key));
  return key;
}

function submit(app: FastifyInstance, key: string | null, request = makeRequest()) {
  return app.inject({
    method: 'POST',
    url: '/jobs',
    headers: { ...JSON_HEADERS, ...(key ? { authorization: `Bearer ${key}` } : {}) },
    payload: { request, callback_url: null },
  });
}

describe('keys of the table', () => {
  it('are accepted beside IX_API_KEYS, each for its own client', async () => {
    const key = await addClient('t');
    const app = await api({ IX_API_KEYS: `s=${STATIC_KEY}` });
    expect((await submit(app, key, makeRequest({ ix_client_id: 't' }))).statusCode).toBe(201);
    expect((await submit(app, STATIC_KEY, makeRequest({ ix_client_id: 's' }))).statusCode).toBe(201);
    const crossed = await submit(app, key, makeRequest({ ix_client_id: 's' }));
    expect(crossed.statusCode).toBe(403);
    expect((await submit(app, 'ix_not-a-key-of-anyone-at-all', makeRequest())).statusCode).toBe(401);
  });

  it('a disabled client answers 401 naming it, until enabled; operators still read its jobs', async () => {
    const key = await addClient('d');
    const app = await api({ IX_ADMIN_KEYS: `ops=${ADMIN_KEY}` });
    const created = await submit(app, key, makeRequest({ ix_client_id: 'd' }));
    expect(created.statusCode).toBe(201);
    const job = created.json() as Job;
    await clientSetDisabled(db.pool, 'd', true);
    await eventually(
      async () => (await submit(app, key, makeRequest({ ix_client_id: 'd' }))).statusCode === 401,
      'disabled',
    );
    const refused = await app.inject({
      method: 'GET',
      url: `/jobs/${job.job_id}`,
      headers: { authorization: `Bearer ${key}` },
    });
    expect(refused.statusCode).toBe(401);
    expect(refused.json()).toEqual({ error: { code: 'unauthorized', message: 'client d is disabled' } });
    const byOperator = await app.inject({
      method: 'GET',
      url: `/jobs/${job.job_id}`,
      headers: { authorization: `Bearer ${ADMIN_KEY}` },
    });
    expect(byOperator.statusCode).toBe(200);
    await clientSetDisabled(db.pool, 'd', false);
    await eventually(
      async () => (await submit(app, key, makeRequest({ ix_client_id: 'd' }))).statusCode === 201,
      'enabled',
    );
  });

  it('a client both in IX_API_KEYS and the table stops the start, naming it and both places', async () => {
    await addClient('both');
    const attempt = buildApi({
      pool: db.pool,
      connectionString: db.url,
      config: loadConfig({ IX_API_KEYS: `both=${STATIC_KEY}` }),
      logger: captureLogs().logger,
    });
    await expect(attempt).rejects.toBeInstanceOf(ConfigError);
    await expect(attempt).rejects.toThrow(
      /client "both" is defined both in IX_API_KEYS and in the ix_clients table/,
    );
  });
});

describe('open access', () => {
  it('becomes keyed as soon as the table holds a key: operator endpoints then take an operator key', async () => {
    const app = await api();
    expect((await submit(app, null)).statusCode).toBe(201);
    expect((await app.inject({ method: 'GET', url: '/admin/overview' })).statusCode).toBe(200);
    const key = await addClient('first');
    await eventually(async () => (await submit(app, null)).statusCode === 401, 'keyed');
    expect((await submit(app, key, makeRequest({ ix_client_id: 'first' }))).statusCode).toBe(201);
    expect((await app.inject({ method: 'GET', url: '/admin/overview' })).statusCode).toBe(401);
    const asClient = await app.inject({
      method: 'GET',
      url: '/admin/overview',
      headers: { authorization: `Bearer ${key}` },
    });
    expect(asClient.statusCode).toBe(403);
  });

  it('on loopback, opens again when the last key goes; off loopback, refuses everything instead', async () => {
    const key = await addClient('only');
    // Off loopback is allowed to start once the table holds a key (and refused without: api.auth).
    const open = await api();
    const exposed = await api({ IX_HOST: '0.0.0.0' });
    expect((await submit(exposed, key, makeRequest({ ix_client_id: 'only' }))).statusCode).toBe(201);
    await db.pool.query('DELETE FROM ix_client_keys');
    await clientUpdate(db.pool, 'only', {});
    await eventually(async () => (await submit(open, null)).statusCode === 201, 'open again');
    // Each process reloads on its own: wait for this one to have dropped the key too.
    await eventually(
      async () => (await submit(exposed, key, makeRequest({ ix_client_id: 'only' }))).statusCode === 401,
      'the key gone off loopback',
      3_000,
    );
    expect((await submit(exposed, null)).statusCode).toBe(401);
  });
});

describe('max_pending (test 5)', () => {
  it('a submit past it answers 429 too_many_pending; a replay of a submitted request still answers 200', async () => {
    const key = await addClient('p', { maxPending: 3 });
    const app = await api();
    const requests = [1, 2, 3].map(() => makeRequest({ ix_client_id: 'p' }));
    for (const request of requests) expect((await submit(app, key, request)).statusCode).toBe(201);
    const refused = await submit(app, key, makeRequest({ ix_client_id: 'p' }));
    expect(refused.statusCode).toBe(429);
    expect(refused.json()).toEqual({
      error: {
        code: 'too_many_pending',
        message:
          'client "p" already has 3 jobs waiting to run (its max_pending); submit again once some have started',
      },
    });
    expect(await countJobs(db.pool)).toBe(3);
    const replay = await submit(app, key, requests[0]);
    expect(replay.statusCode).toBe(200);
    // A job leaving the queue frees a place, seen once the count is read again (within ~1 s).
    await db.pool.query('DELETE FROM ix_job_queue WHERE job_id = $1', [(replay.json() as Job).job_id]);
    await eventually(
      async () => (await submit(app, key, makeRequest({ ix_client_id: 'p' }))).statusCode === 201,
      'a place again',
      3_000,
    );
    expect(await countJobs(db.pool)).toBe(4);
  });

  it('concurrent submits in one process do not pass it together', async () => {
    const key = await addClient('c', { maxPending: 5 });
    const app = await api();
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => submit(app, key, makeRequest({ ix_client_id: 'c' }))),
    );
    expect(answers.filter((a) => a.statusCode === 201)).toHaveLength(5);
    expect(answers.filter((a) => a.statusCode === 429)).toHaveLength(15);
  });

  it('IX_CLIENT_MAX_PENDING applies to clients without their own, IX_API_KEYS ones included', async () => {
    const app = await api({ IX_API_KEYS: `s=${STATIC_KEY}`, IX_CLIENT_MAX_PENDING: '1' });
    expect((await submit(app, STATIC_KEY, makeRequest({ ix_client_id: 's' }))).statusCode).toBe(201);
    expect((await submit(app, STATIC_KEY, makeRequest({ ix_client_id: 's' }))).statusCode).toBe(429);
  });
});

describe('the submit rate (test 6)', () => {
  it('past the bucket answers 429 rate_limited with Retry-After in whole seconds', async () => {
    const key = await addClient('r', { ratePerSecond: 0.5 });
    const app = await api({ IX_CLIENT_RATE_BURST: '2' });
    expect((await submit(app, key, makeRequest({ ix_client_id: 'r' }))).statusCode).toBe(201);
    expect((await submit(app, key, makeRequest({ ix_client_id: 'r' }))).statusCode).toBe(201);
    const limited = await submit(app, key, makeRequest({ ix_client_id: 'r' }));
    expect(limited.statusCode).toBe(429);
    expect(limited.headers['retry-after']).toBe('2');
    expect(limited.json()).toMatchObject({ error: { code: 'rate_limited' } });
    expect((limited.json() as { error: { message: string } }).error.message).toMatch(
      /client "r" is over its submit rate \(0\.5 a second on this API process\); retry after 2 s/,
    );
    expect(await countJobs(db.pool)).toBe(2);
    // Another client has its own bucket (once this process has heard of it).
    const other = await addClient('o');
    await eventually(
      async () => (await submit(app, other, makeRequest({ ix_client_id: 'o' }))).statusCode === 201,
      'the other client',
      3_000,
    );
  });

  it('a rate raised in the table applies at once; IX_CLIENT_RATE is the default', async () => {
    const key = await addClient('q');
    const app = await api({ IX_CLIENT_RATE: '1' });
    expect((await submit(app, key, makeRequest({ ix_client_id: 'q' }))).statusCode).toBe(201);
    const limited = await submit(app, key, makeRequest({ ix_client_id: 'q' }));
    expect(limited.statusCode).toBe(429);
    expect(limited.headers['retry-after']).toBe('1');
    await clientUpdate(db.pool, 'q', { ratePerSecond: 1000 });
    await eventually(
      async () => (await submit(app, key, makeRequest({ ix_client_id: 'q' }))).statusCode === 201,
      'raised',
      3_000,
    );
  });
});

describe('a clients table not read yet (the database down at start-up)', () => {
  it('the API starts; a key not of the variables, or no key, answers 503 rather than open access', async () => {
    const deadPool = createPool('postgres://postgres@127.0.0.1:1/none', { max: 1 });
    try {
      for (const env of [{}, { IX_API_KEYS: `s=${STATIC_KEY}` }] as Record<string, string>[]) {
        const app = await api(env, deadPool);
        const response = await submit(app, 'ix_some-key-of-the-table-maybe');
        expect(response.statusCode).toBe(503);
        expect(response.headers['retry-after']).toBe('1');
        expect(response.json()).toEqual({
          error: {
            code: 'unavailable',
            message: 'the clients table could not be read yet (the database is unavailable); retry shortly',
          },
        });
      }
      const open = await api({}, deadPool);
      expect((await submit(open, null)).json()).toMatchObject({ error: { code: 'unavailable' } });
    } finally {
      await Promise.all(apps.map((app) => app.close()));
      apps = [];
      await deadPool.end();
    }
  });
});
