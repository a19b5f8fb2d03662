/** Readiness against an unmigrated and an unreachable database, and how internal errors leave. */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool } from '../../src/store/index.js';
import { buildTestApi, type CapturedLogs, captureLogs, JSON_HEADERS } from '../support/api.js';
import { useTestDatabase } from '../support/db.js';
import { makeRequest } from '../support/factories.js';

// An empty database: reachable, but without the ix schema.
const db = useTestDatabase({ migrated: false });
let app: FastifyInstance;
let logs: CapturedLogs;

beforeAll(async () => {
  logs = captureLogs();
  app = await buildTestApi(db.pool, {}, logs);
});
afterAll(async () => {
  await app?.close();
});

describe('readiness', () => {
  it('503 not_ready when the schema is behind, naming the fix; /healthz still 200', async () => {
    const ready = await app.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(503);
    expect(ready.json()).toEqual({
      error: { code: 'not_ready', message: expect.stringContaining('migrate up') },
    });
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
  });

  it('503 not_ready when the database is unreachable', async () => {
    // Port 1 on loopback: nothing listens, so connecting fails at once.
    const deadPool = createPool('postgres://postgres@127.0.0.1:1/none', { max: 1 });
    const deadApp = await buildTestApi(deadPool);
    try {
      const ready = await deadApp.inject({ method: 'GET', url: '/readyz' });
      expect(ready.statusCode).toBe(503);
      expect((ready.json() as { error: { code: string } }).error.code).toBe('not_ready');
    } finally {
      await deadApp.close();
      await deadPool.end();
    }
  });
});

describe('internal errors', () => {
  it('500 internal without details, logged with the stack', async () => {
    // No ix_jobs table here: the insert fails inside PostgreSQL, which is not the client's fault.
    const response = await app.inject({
      method: 'POST',
      url: '/jobs',
      headers: JSON_HEADERS,
      payload: { request: makeRequest(), callback_url: null },
    });
    expect(response.statusCode).toBe(500);
    expect(response.json()).toEqual({ error: { code: 'internal', message: 'internal server error' } });
    expect(response.body).not.toContain('ix_jobs');
    const logged = logs.entries().find((e) => e.msg === 'internal error') as
      | { err?: { stack?: string; message?: string } }
      | undefined;
    expect(logged?.err?.message).toContain('ix_jobs');
    expect(logged?.err?.stack).toContain('at ');
  });
});
