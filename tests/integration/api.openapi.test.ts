/**
 * The OpenAPI document as generated clients meet it: every operation named, who may call it where,
 * and only the components it uses.
 */
import type { FastifyInstance } from 'fastify';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool } from '../../src/store/index.js';
import { buildTestApi } from '../support/api.js';
import { useTestDatabase } from '../support/db.js';

const KEY_A = 'key-of-client-a-0123456789';
const KEYS_ENV = { IX_API_KEYS: `client-a=${KEY_A},client-b=key-of-client-b-9876543210` };
const MAX_BODY_ENV = { IX_MAX_BODY_BYTES: '4096' };

interface Operation {
  operationId?: string;
  security?: Record<string, string[]>[];
  responses: Record<string, { content?: { 'application/json'?: { schema?: { $ref?: string } } } }>;
}

interface OpenApiDocument {
  servers?: { url: string }[];
  info: { license?: { name: string } };
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, unknown>; securitySchemes?: Record<string, unknown> };
}

const db = useTestDatabase();
/** Open access (no keys), API keys, and open access on a database nothing listens for. */
const apps: { open?: FastifyInstance; keyed?: FastifyInstance; down?: FastifyInstance } = {};
let deadPool: pg.Pool;

beforeAll(async () => {
  apps.open = await buildTestApi(db.pool, MAX_BODY_ENV);
  apps.keyed = await buildTestApi(db.pool, { ...MAX_BODY_ENV, ...KEYS_ENV });
  // Port 1 on loopback: nothing listens, so connecting fails at once.
  deadPool = createPool('postgres://postgres@127.0.0.1:1/none', { max: 1 });
  apps.down = await buildTestApi(deadPool, MAX_BODY_ENV);
});
afterAll(async () => {
  await apps.open?.close();
  await apps.keyed?.close();
  await apps.down?.close();
  await deadPool?.end();
});

type AppName = keyof typeof apps;

function app(name: AppName): FastifyInstance {
  const built = apps[name];
  if (!built) throw new Error(`the ${name} API is built in beforeAll`);
  return built;
}

async function documentOf(name: AppName): Promise<OpenApiDocument> {
  const response = await app(name).inject({ method: 'GET', url: '/openapi.json' });
  expect(response.statusCode).toBe(200);
  return response.json() as OpenApiDocument;
}

function operations(document: OpenApiDocument): { method: string; path: string; operation: Operation }[] {
  return Object.entries(document.paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, operation]) => ({ method, path, operation })),
  );
}

function operationById(document: OpenApiDocument, operationId: string) {
  const found = operations(document).find((o) => o.operation.operationId === operationId);
  if (!found) throw new Error(`no operation ${operationId} in the document`);
  return found;
}

describe('the OpenAPI document', () => {
  it('names every operation, for generated clients', async () => {
    const document = await documentOf('open');
    const ids = operations(document).map(({ method, path, operation }) => [
      `${method.toUpperCase()} ${path}`,
      operation.operationId,
    ]);
    expect(Object.fromEntries(ids)).toEqual({
      'POST /jobs': 'submitJob',
      'GET /jobs': 'getJobByCorrelation',
      'GET /jobs/{job_id}': 'getJob',
      'GET /healthz': 'checkHealth',
      'GET /readyz': 'checkReadiness',
    });
  });

  it('holds only the components it uses: one schema per contract, named as in src/contracts', async () => {
    const open = await documentOf('open');
    const keyed = await documentOf('keyed');
    for (const document of [open, keyed]) {
      expect(Object.keys(document.components.schemas).sort()).toEqual([
        'CallbackAttempt',
        'Error',
        'Job',
        'RequestIX',
        'ResponseIX',
        'SubmitJob',
      ]);
    }
    // The body a client sends is the contract as read: callback_url may be left out (null).
    const submitJob = operationById(open, 'submitJob').operation as Operation & {
      requestBody: { content: { 'application/json': { schema: { $ref: string } } } };
    };
    expect(submitJob.requestBody.content['application/json'].schema.$ref).toBe(
      '#/components/schemas/SubmitJob',
    );
    expect(open.components.schemas.SubmitJob).toMatchObject({ required: ['request'] });
    const refs = [...JSON.stringify(open).matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g)].map(
      (m) => m[1],
    );
    expect(refs.filter((name) => !(String(name) in open.components.schemas))).toEqual([]);
    // The key scheme only where some operation takes a key.
    expect(open.components.securitySchemes).toBeUndefined();
    expect(keyed.components.securitySchemes).toEqual({
      bearer: expect.objectContaining({ scheme: 'bearer' }),
    });
  });

  it('names where it is served from, and who may call what', async () => {
    const open = await documentOf('open');
    const keyed = await documentOf('keyed');
    // Relative: clients reach the API at the address they fetched the document from.
    expect(open.servers).toEqual([{ url: '/' }]);
    for (const probe of ['checkHealth', 'checkReadiness']) {
      expect(operationById(open, probe).operation.security).toEqual([]);
      expect(operationById(keyed, probe).operation.security).toEqual([]);
    }
    for (const jobs of ['submitJob', 'getJob', 'getJobByCorrelation']) {
      expect(operationById(open, jobs).operation.security).toEqual([]);
      expect(operationById(keyed, jobs).operation.security).toEqual([{ bearer: [] }]);
    }
  });
});
