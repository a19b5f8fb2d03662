/**
 * The OpenAPI document as generated clients and linters meet it: clean under redocly's recommended
 * rules (run offline), every operation named, who may call it where, only the components it uses,
 * and every status an operation answers documented, checked against what the API really answers.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorSchema } from '../../src/api/schemas.js';
import { loadConfig } from '../../src/config.js';
import type { Job, RequestIX } from '../../src/contracts/index.js';
import { createPool, jobPruneExpired } from '../../src/store/index.js';
import { retentionPolicy } from '../../src/worker/index.js';
import { buildTestApi, JSON_HEADERS } from '../support/api.js';
import { useTestDatabase } from '../support/db.js';
import { makeRequest } from '../support/factories.js';
import { finishedJobs } from '../support/jobs.js';

const KEY_A = 'key-of-client-a-0123456789';
const KEYS_ENV = { IX_API_KEYS: `client-a=${KEY_A},client-b=key-of-client-b-9876543210` };
const MAX_BODY_ENV = { IX_MAX_BODY_BYTES: '4096' };

interface Operation {
  operationId?: string;
  security?: Record<string, string[]>[];
  responses: Record<
    string,
    { description: string; content?: { 'application/json'?: { schema?: { $ref?: string } } } }
  >;
}

interface OpenApiDocument {
  servers?: { url: string }[];
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, unknown>; securitySchemes?: Record<string, unknown> };
}

const db = useTestDatabase();
/** Open access (no keys), API keys, and open access on a database nothing listens for. */
const apps: {
  open?: FastifyInstance;
  keyed?: FastifyInstance;
  down?: FastifyInstance;
  /** Open access with a submit rate (IX_CLIENT_RATE): one submit a client, then 429. */
  limited?: FastifyInstance;
} = {};
let deadPool: pg.Pool;

beforeAll(async () => {
  apps.open = await buildTestApi(db.pool, MAX_BODY_ENV);
  apps.keyed = await buildTestApi(db.pool, { ...MAX_BODY_ENV, ...KEYS_ENV });
  // Port 1 on loopback: nothing listens, so connecting fails at once.
  deadPool = createPool('postgres://postgres@127.0.0.1:1/none', { max: 1 });
  apps.down = await buildTestApi(deadPool, MAX_BODY_ENV);
  apps.limited = await buildTestApi(db.pool, { ...MAX_BODY_ENV, IX_CLIENT_RATE: '0.001' });
});
afterAll(async () => {
  await apps.open?.close();
  await apps.keyed?.close();
  await apps.down?.close();
  await apps.limited?.close();
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

const redocly = createRequire(import.meta.url).resolve('@redocly/cli/bin/cli.js');

/**
 * `redocly lint` on the document with the built-in recommended rules, from an empty directory so
 * no redocly.yaml is picked up. It sends usage data unless REDOCLY_TELEMETRY=off (seen under
 * strace: a DNS lookup without it, no connection at all with it), and looks for a newer version
 * unless told not to, so it runs offline. Each problem as `rule: message at pointer`.
 */
async function lintProblems(document: OpenApiDocument): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), 'ix-openapi-lint-'));
  try {
    writeFileSync(join(dir, 'openapi.json'), JSON.stringify(document, null, 2));
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(
        process.execPath,
        [redocly, 'lint', 'openapi.json', '--extends', 'recommended', '--format', 'json'],
        {
          cwd: dir,
          env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
        },
        // It exits 1 when it finds errors: the report on stdout is what counts.
        (error, out, err) =>
          out ? resolve(out) : reject(error ?? new Error(`redocly printed nothing: ${err}`)),
      );
    });
    const report = JSON.parse(stdout) as {
      problems: { ruleId: string; message: string; location: { pointer: string }[] }[];
    };
    return report.problems.map((p) => `${p.ruleId}: ${p.message} at ${p.location[0]?.pointer ?? '?'}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('the OpenAPI document', () => {
  it.each([
    ['open access', 'open'],
    ['API keys', 'keyed'],
  ] as const)('is clean under redocly lint with the recommended rules, with %s', async (_name, appName) => {
    expect(await lintProblems(await documentOf(appName))).toEqual([]);
  });

  it('names every operation, for generated clients', async () => {
    const document = await documentOf('open');
    const ids = operations(document).map(({ method, path, operation }) => [
      `${method.toUpperCase()} ${path}`,
      operation.operationId,
    ]);
    expect(Object.fromEntries(ids)).toEqual({
      'POST /jobs': 'submitJob',
      'GET /jobs': 'findJobs',
      'GET /admin/jobs': 'searchJobs',
      'GET /admin/jobs/{job_id}': 'getAdminJob',
      'POST /admin/jobs/{job_id}/retry': 'retryJob',
      'POST /admin/jobs/{job_id}/cancel': 'cancelAnyJob',
      'GET /admin/overview': 'getOverview',
      'GET /jobs/{job_id}': 'getJob',
      'GET /jobs/{job_id}/events': 'streamJobEvents',
      'POST /jobs/{job_id}/cancel': 'cancelJob',
      'POST /jobs/cancel': 'cancelJobByCorrelation',
      'GET /healthz': 'checkHealth',
      'GET /readyz': 'checkReadiness',
    });
  });

  it('holds only the components it uses: one schema per contract, named as in src/contracts', async () => {
    const open = await documentOf('open');
    const keyed = await documentOf('keyed');
    for (const document of [open, keyed]) {
      expect(Object.keys(document.components.schemas).sort()).toEqual([
        'AdminJob',
        'CallbackAttempt',
        'Error',
        'Job',
        'JobPage',
        'JobSummary',
        'OperatorAction',
        'Overview',
        'Progress',
        'RequestIX',
        'ResponseIX',
        'Run',
        'SubmitJob',
        'Tombstone',
      ]);
    }
    // Every reference resolves, to a renamed input view too.
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

  it('lets a generated client leave callback_url out, as the API does', async () => {
    const open = await documentOf('open');
    const submitJob = operationById(open, 'submitJob').operation as Operation & {
      requestBody: { content: { 'application/json': { schema: { $ref: string } } } };
    };
    expect(submitJob.requestBody.content['application/json'].schema.$ref).toBe(
      '#/components/schemas/SubmitJob',
    );
    // Optional, and without a default: openapi-typescript (with its default options) types a
    // property that has one as always present, so its clients could not leave callback_url out.
    expect(open.components.schemas.SubmitJob).toMatchObject({ required: ['request'] });
    expect(open.components.schemas.SubmitJob).not.toHaveProperty(['properties', 'callback_url', 'default']);
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
    for (const jobs of [
      'submitJob',
      'getJob',
      'findJobs',
      'streamJobEvents',
      'cancelJob',
      'cancelJobByCorrelation',
      'searchJobs',
      'getAdminJob',
      'retryJob',
      'cancelAnyJob',
      'getOverview',
    ]) {
      expect(operationById(open, jobs).operation.security).toEqual([]);
      expect(operationById(keyed, jobs).operation.security).toEqual([{ bearer: [] }]);
    }
  });
});

/** One status an operation answers, and a request that gets it from one of the apps. */
interface Answer {
  operationId: string;
  status: number;
  app: AppName;
  send(app: FastifyInstance): Promise<LightMyRequestResponse>;
}

const bearerA = { authorization: `Bearer ${KEY_A}` };

function submit(target: FastifyInstance, body: unknown, headers: Record<string, string> = JSON_HEADERS) {
  return target.inject({ method: 'POST', url: '/jobs', headers, payload: JSON.stringify(body) });
}

async function submitted(
  target: FastifyInstance,
): Promise<{ job_id: string; client_id: string; request_id: string }> {
  const response = await submit(target, { request: makeRequest() });
  expect(response.statusCode).toBe(201);
  return response.json();
}

/** Submits a request, then `replay` of it under the same key. */
async function resubmit(target: FastifyInstance, replay: (request: RequestIX) => RequestIX) {
  const request = makeRequest();
  await submit(target, { request });
  return submit(target, { request: replay(request) });
}

/** A submitted job, moved on by hand as a worker would: `running`, or ended `done` or `error`. */
async function submittedAs(target: FastifyInstance, status: 'running' | 'done' | 'error') {
  const job = await submitted(target);
  await db.pool.query('DELETE FROM ix_job_queue WHERE job_id = $1', [job.job_id]);
  await db.pool.query(
    `UPDATE ix_jobs SET status = $2, started_at = now(),
       finished_at = CASE WHEN $2 <> 'running' THEN now() END,
       response = CASE WHEN $2 = 'done' THEN jsonb_build_object('ix_id', ix_id, 'error', NULL, 'result', 1)
         WHEN $2 = 'error' THEN jsonb_build_object('ix_id', ix_id, 'error', 'failed', 'result', NULL) END
     WHERE job_id = $1`,
    [job.job_id, status],
  );
  return job;
}

function post(options: InjectOptions) {
  return (target: FastifyInstance) => target.inject({ method: 'POST', ...options });
}

/** Cancels the job `made` by id, or by its correlation. */
function cancelOf(
  made: (a: FastifyInstance) => Promise<{ job_id: string; client_id: string; request_id: string }>,
  by: 'id' | 'correlation',
) {
  return async (a: FastifyInstance) => {
    const job = await made(a);
    return by === 'id'
      ? post({ url: `/jobs/${job.job_id}/cancel` })(a)
      : post({ url: '/jobs/cancel', query: { client_id: job.client_id, request_id: job.request_id } })(a);
  };
}

function get(options: InjectOptions) {
  return (target: FastifyInstance) => target.inject({ method: 'GET', ...options });
}

/** A submitted job, ended `done` by hand, then pruned a week on: only its tombstone is left. */
async function pruned(target: FastifyInstance) {
  const job = (await submittedAs(target, 'done')) as Job;
  await jobPruneExpired(db.pool, {
    policy: retentionPolicy(loadConfig({}).retention),
    batchSize: 100,
    now: new Date(Date.now() + 8 * 86_400_000),
  });
  return job;
}

/** Another method on the operation's path. */
function otherMethod(method: 'PUT' | 'POST' | 'DELETE', url: string) {
  return (target: FastifyInstance) => target.inject({ method, url });
}

const ANSWERS: Answer[] = [
  { operationId: 'submitJob', status: 201, app: 'open', send: (a) => submit(a, { request: makeRequest() }) },
  { operationId: 'submitJob', status: 200, app: 'open', send: (a) => resubmit(a, (request) => request) },
  { operationId: 'submitJob', status: 400, app: 'open', send: (a) => submit(a, {}) },
  {
    operationId: 'submitJob',
    status: 401,
    app: 'keyed',
    send: (a) => submit(a, { request: makeRequest({ ix_client_id: 'client-a' }) }),
  },
  {
    operationId: 'submitJob',
    status: 403,
    app: 'keyed',
    send: (a) =>
      submit(a, { request: makeRequest({ ix_client_id: 'client-b' }) }, { ...JSON_HEADERS, ...bearerA }),
  },
  { operationId: 'submitJob', status: 405, app: 'open', send: otherMethod('PUT', '/jobs') },
  {
    operationId: 'submitJob',
    status: 409,
    app: 'open',
    send: (a) => resubmit(a, (request) => ({ ...request, input: 'another input' })),
  },
  {
    operationId: 'submitJob',
    status: 410,
    app: 'open',
    send: async (a) => submit(a, { request: (await pruned(a)).request }),
  },
  {
    operationId: 'submitJob',
    status: 413,
    app: 'open',
    send: (a) => submit(a, { request: makeRequest({ input: 'x'.repeat(5000) }) }),
  },
  {
    operationId: 'submitJob',
    status: 415,
    app: 'open',
    send: (a) => submit(a, { request: makeRequest() }, { 'content-type': 'text/plain' }),
  },
  {
    operationId: 'submitJob',
    status: 429,
    app: 'limited',
    send: async (a) => {
      const client = `limited-${randomUUID()}`;
      await submit(a, { request: makeRequest({ ix_client_id: client }) });
      return submit(a, { request: makeRequest({ ix_client_id: client }) });
    },
  },
  { operationId: 'submitJob', status: 503, app: 'down', send: (a) => submit(a, { request: makeRequest() }) },

  {
    operationId: 'getJob',
    status: 200,
    app: 'open',
    send: async (a) => get({ url: `/jobs/${(await submitted(a)).job_id}` })(a),
  },
  { operationId: 'getJob', status: 400, app: 'open', send: get({ url: '/jobs/not-a-uuid' }) },
  { operationId: 'getJob', status: 401, app: 'keyed', send: get({ url: `/jobs/${randomUUID()}` }) },
  { operationId: 'getJob', status: 404, app: 'open', send: get({ url: `/jobs/${randomUUID()}` }) },
  { operationId: 'getJob', status: 405, app: 'open', send: otherMethod('POST', `/jobs/${randomUUID()}`) },
  {
    operationId: 'getJob',
    status: 410,
    app: 'open',
    send: async (a) => get({ url: `/jobs/${(await pruned(a)).job_id}` })(a),
  },
  { operationId: 'getJob', status: 503, app: 'down', send: get({ url: `/jobs/${randomUUID()}` }) },

  {
    // A finished job's stream: its one event, then the end.
    operationId: 'streamJobEvents',
    status: 200,
    app: 'open',
    send: async (a) =>
      get({ url: `/jobs/${(await finishedJobs(db.pool, null, ['done']))[0]!.job_id}/events` })(a),
  },
  { operationId: 'streamJobEvents', status: 400, app: 'open', send: get({ url: '/jobs/not-a-uuid/events' }) },
  {
    operationId: 'streamJobEvents',
    status: 401,
    app: 'keyed',
    send: get({ url: `/jobs/${randomUUID()}/events` }),
  },
  {
    operationId: 'streamJobEvents',
    status: 404,
    app: 'open',
    send: get({ url: `/jobs/${randomUUID()}/events` }),
  },
  {
    operationId: 'streamJobEvents',
    status: 405,
    app: 'open',
    send: otherMethod('POST', `/jobs/${randomUUID()}/events`),
  },
  {
    operationId: 'streamJobEvents',
    status: 410,
    app: 'open',
    send: async (a) => get({ url: `/jobs/${(await pruned(a)).job_id}/events` })(a),
  },
  {
    operationId: 'streamJobEvents',
    status: 503,
    app: 'down',
    send: get({ url: `/jobs/${randomUUID()}/events` }),
  },

  {
    operationId: 'findJobs',
    status: 200,
    app: 'open',
    send: async (a) => {
      const job = await submitted(a);
      return get({ url: '/jobs', query: { client_id: job.client_id, request_id: job.request_id } })(a);
    },
  },
  {
    operationId: 'findJobs',
    status: 400,
    app: 'open',
    send: get({ url: '/jobs', query: { request_id: 'r' } }),
  },
  {
    operationId: 'findJobs',
    status: 401,
    app: 'keyed',
    send: get({ url: '/jobs', query: { client_id: 'client-a', request_id: 'r' } }),
  },
  {
    operationId: 'findJobs',
    status: 403,
    app: 'keyed',
    send: get({ url: '/jobs', query: { client_id: 'client-b' }, headers: bearerA }),
  },
  {
    operationId: 'findJobs',
    status: 404,
    app: 'open',
    send: get({ url: '/jobs', query: { client_id: 'acme', request_id: randomUUID() } }),
  },
  { operationId: 'findJobs', status: 405, app: 'open', send: otherMethod('DELETE', '/jobs') },
  {
    operationId: 'findJobs',
    status: 410,
    app: 'open',
    send: async (a) => {
      const job = await pruned(a);
      return get({ url: '/jobs', query: { client_id: job.client_id, request_id: job.request_id } })(a);
    },
  },
  {
    operationId: 'findJobs',
    status: 503,
    app: 'down',
    send: get({ url: '/jobs', query: { client_id: 'acme', request_id: 'r' } }),
  },

  { operationId: 'searchJobs', status: 200, app: 'open', send: get({ url: '/admin/jobs' }) },
  {
    operationId: 'searchJobs',
    status: 400,
    app: 'open',
    send: get({ url: '/admin/jobs', query: { ix_id: 'XYZ' } }),
  },
  { operationId: 'searchJobs', status: 401, app: 'keyed', send: get({ url: '/admin/jobs' }) },
  {
    operationId: 'searchJobs',
    status: 403,
    app: 'keyed',
    send: get({ url: '/admin/jobs', headers: bearerA }),
  },
  { operationId: 'searchJobs', status: 405, app: 'open', send: otherMethod('DELETE', '/admin/jobs') },
  { operationId: 'searchJobs', status: 503, app: 'down', send: get({ url: '/admin/jobs' }) },

  {
    operationId: 'getAdminJob',
    status: 200,
    app: 'open',
    send: async (a) => get({ url: `/admin/jobs/${(await submitted(a)).job_id}` })(a),
  },
  { operationId: 'getAdminJob', status: 400, app: 'open', send: get({ url: '/admin/jobs/not-a-uuid' }) },
  {
    operationId: 'getAdminJob',
    status: 401,
    app: 'keyed',
    send: get({ url: `/admin/jobs/${randomUUID()}` }),
  },
  {
    operationId: 'getAdminJob',
    status: 403,
    app: 'keyed',
    send: get({ url: `/admin/jobs/${randomUUID()}`, headers: bearerA }),
  },
  { operationId: 'getAdminJob', status: 404, app: 'open', send: get({ url: `/admin/jobs/${randomUUID()}` }) },
  {
    operationId: 'getAdminJob',
    status: 405,
    app: 'open',
    send: otherMethod('DELETE', `/admin/jobs/${randomUUID()}`),
  },
  { operationId: 'getAdminJob', status: 503, app: 'down', send: get({ url: `/admin/jobs/${randomUUID()}` }) },

  ...(['retryJob', 'cancelAnyJob'] as const).flatMap((operationId): Answer[] => {
    const action = operationId === 'retryJob' ? 'retry' : 'cancel';
    const on = (made: (a: FastifyInstance) => Promise<{ job_id: string }>) => async (a: FastifyInstance) =>
      post({ url: `/admin/jobs/${(await made(a)).job_id}/${action}` })(a);
    const missing = `/admin/jobs/${randomUUID()}/${action}`;
    return [
      {
        operationId,
        status: 200,
        app: 'open',
        send: on(action === 'retry' ? (a) => submittedAs(a, 'error') : submitted),
      },
      ...(action === 'cancel'
        ? [{ operationId, status: 202, app: 'open' as const, send: on((a) => submittedAs(a, 'running')) }]
        : []),
      { operationId, status: 400, app: 'open', send: post({ url: `/admin/jobs/not-a-uuid/${action}` }) },
      { operationId, status: 401, app: 'keyed', send: post({ url: missing }) },
      { operationId, status: 403, app: 'keyed', send: post({ url: missing, headers: bearerA }) },
      { operationId, status: 404, app: 'open', send: post({ url: missing }) },
      { operationId, status: 405, app: 'open', send: otherMethod('DELETE', missing) },
      { operationId, status: 409, app: 'open', send: on((a) => submittedAs(a, 'done')) },
      { operationId, status: 503, app: 'down', send: post({ url: missing }) },
    ];
  }),

  { operationId: 'getOverview', status: 200, app: 'open', send: get({ url: '/admin/overview' }) },
  { operationId: 'getOverview', status: 401, app: 'keyed', send: get({ url: '/admin/overview' }) },
  {
    operationId: 'getOverview',
    status: 403,
    app: 'keyed',
    send: get({ url: '/admin/overview', headers: bearerA }),
  },
  { operationId: 'getOverview', status: 405, app: 'open', send: otherMethod('POST', '/admin/overview') },
  { operationId: 'getOverview', status: 503, app: 'down', send: get({ url: '/admin/overview' }) },

  ...(['id', 'correlation'] as const).flatMap((by): Answer[] => {
    const operationId = by === 'id' ? 'cancelJob' : 'cancelJobByCorrelation';
    const missing =
      by === 'id'
        ? { url: `/jobs/${randomUUID()}/cancel` }
        : { url: '/jobs/cancel', query: { client_id: 'client-a', request_id: randomUUID() } };
    return [
      { operationId, status: 200, app: 'open', send: cancelOf(submitted, by) },
      // No worker runs it: the request is taken, and the job still runs when the answer is due.
      { operationId, status: 202, app: 'open', send: cancelOf((a) => submittedAs(a, 'running'), by) },
      {
        operationId,
        status: 400,
        app: 'open',
        send: post(by === 'id' ? { url: '/jobs/not-a-uuid/cancel' } : { url: '/jobs/cancel' }),
      },
      { operationId, status: 401, app: 'keyed', send: post(missing) },
      { operationId, status: 404, app: 'open', send: post(missing) },
      { operationId, status: 405, app: 'open', send: otherMethod('DELETE', missing.url) },
      { operationId, status: 409, app: 'open', send: cancelOf((a) => submittedAs(a, 'done'), by) },
      { operationId, status: 410, app: 'open', send: cancelOf(pruned, by) },
      { operationId, status: 503, app: 'down', send: post(missing) },
    ];
  }),

  { operationId: 'checkHealth', status: 200, app: 'open', send: get({ url: '/healthz' }) },
  { operationId: 'checkHealth', status: 405, app: 'open', send: otherMethod('POST', '/healthz') },

  { operationId: 'checkReadiness', status: 200, app: 'open', send: get({ url: '/readyz' }) },
  { operationId: 'checkReadiness', status: 405, app: 'open', send: otherMethod('DELETE', '/readyz') },
  { operationId: 'checkReadiness', status: 503, app: 'down', send: get({ url: '/readyz' }) },
];

const ERROR_REF = '#/components/schemas/Error';

describe('the statuses the document promises', () => {
  it.each(ANSWERS.map((a) => [a.operationId, a.status, a.app, a] as const))(
    '%s answers %i (%s) as documented',
    async (operationId, status, appName, answer) => {
      const response = await answer.send(app(appName));
      expect(response.statusCode).toBe(status);
      const { path, operation } = operationById(await documentOf(appName), operationId);
      const documented = operation.responses[String(status)];
      expect(documented, `${operationId} documents ${status}`).toBeDefined();
      // What the status means for this operation, not @fastify/swagger's placeholder.
      expect(documented?.description).not.toBe('Default Response');
      if (status < 400) return;
      // Every error has the one Error shape, and is documented with it.
      ErrorSchema.parse(response.json());
      expect(documented?.content?.['application/json']?.schema?.$ref).toBe(ERROR_REF);
      if (status === 405) {
        const methods = Object.keys((await documentOf(appName)).paths[path] ?? {}).map((m) =>
          m.toUpperCase(),
        );
        // HEAD comes with GET (fastify's exposeHeadRoutes).
        const head = methods.includes('GET') ? ['HEAD'] : [];
        expect(response.headers.allow?.toString().split(', ').sort()).toEqual([...methods, ...head].sort());
      }
    },
  );

  it.each([
    ['open access', 'open', ['open', 'down', 'limited']],
    ['API keys', 'keyed', ['open', 'keyed', 'down', 'limited']],
  ] as const)(
    'documents no status an operation cannot answer, with %s',
    async (_name, appName, answering) => {
      const document = await documentOf(appName);
      for (const { operation } of operations(document)) {
        const answered = ANSWERS.filter(
          (a) => a.operationId === operation.operationId && (answering as readonly AppName[]).includes(a.app),
        ).map((a) => String(a.status));
        expect(Object.keys(operation.responses).sort(), String(operation.operationId)).toEqual(
          answered.sort(),
        );
      }
    },
  );
});
