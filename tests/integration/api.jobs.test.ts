/** Every status code of the job endpoints with open access (no keys), on a real database. */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { HTTP_TIMEOUTS } from '../../src/api/index.js';
import { type Job, JobSchema } from '../../src/contracts/index.js';
import { buildTestApi, type CapturedLogs, captureLogs, countJobs, JSON_HEADERS } from '../support/api.js';
import { useTestDatabase } from '../support/db.js';
import { differingReplays, FIRST_CALLBACK_URL, makeRequest } from '../support/factories.js';
import { retriedThenDone } from '../support/jobs.js';

const db = useTestDatabase();
let app: FastifyInstance;
let logs: CapturedLogs;

beforeAll(async () => {
  logs = captureLogs();
  app = await buildTestApi(db.pool, { IX_MAX_BODY_BYTES: '4096' }, logs);
});
afterAll(async () => {
  await app?.close();
});

function submit(body: unknown, headers: Record<string, string> = JSON_HEADERS) {
  return app.inject({ method: 'POST', url: '/jobs', headers, payload: JSON.stringify(body) });
}

function expectError(response: { statusCode: number; json(): unknown }, status: number, code: string) {
  expect(response.statusCode).toBe(status);
  const body = response.json() as { error: { code: string; message: string } };
  expect(body.error.code).toBe(code);
  expect(body.error.message.length).toBeGreaterThan(0);
  return body.error as { code: string; message: string; details?: { in: string; path: string }[] };
}

describe('POST /jobs', () => {
  it('creates a job: 201, the Job, and Location', async () => {
    const request = makeRequest();
    const response = await submit({ request, callback_url: 'https://example.com/hook' });
    expect(response.statusCode).toBe(201);
    const job = JobSchema.parse(response.json());
    expect(job).toMatchObject({
      status: 'pending',
      client_id: request.ix_client_id,
      request_id: request.request_id,
      callback_url: 'https://example.com/hook',
    });
    expect(response.headers.location).toBe(`/jobs/${job.job_id}`);
    expect(await countJobs(db.pool)).toBe(1);
  });

  it('answers an identical replay with 200 and the first job, unchanged', async () => {
    const request = makeRequest();
    const first = (await submit({ request, callback_url: null })).json() as Job;
    const replay = await submit({ request, callback_url: null });
    expect(replay.statusCode).toBe(200);
    expect(replay.json()).toEqual(first);
    expect(replay.headers.location).toBe(`/jobs/${first.job_id}`);
    expect(await countJobs(db.pool)).toBe(1);
  });

  it('the same request is the same whatever its key order, number spelling or ix_id', async () => {
    const requestId = `order-${randomUUID()}`;
    const first = await app.inject({
      method: 'POST',
      url: '/jobs',
      headers: JSON_HEADERS,
      payload: `{"request": {"ix_client_id": "acme", "request_id": "${requestId}",
        "input": {"document": "s3://a.pdf", "options": {"dpi": 300, "scale": 1.5, "ocr": true}}},
        "callback_url": "https://example.com/hook"}`,
    });
    expect(first.statusCode).toBe(201);
    const replay = await app.inject({
      method: 'POST',
      url: '/jobs',
      headers: JSON_HEADERS,
      payload: `{"callback_url": "https://example.com/hook", "request": {"ix_id": "0123456789abcdef",
        "input": {"options": {"ocr": true, "scale": 1.50, "dpi": 3.0e2}, "document": "s3://a.pdf"},
        "request_id": "${requestId}", "ix_client_id": "acme"}}`,
    });
    expect(replay.statusCode).toBe(200);
    expect(replay.json()).toEqual(first.json());
  });

  it.each(differingReplays)(
    '409 idempotency_conflict naming the first job when the %s differs; the first job stands',
    async (_, replayOf, callbackUrl) => {
      const request = makeRequest();
      const first = (await submit({ request, callback_url: FIRST_CALLBACK_URL })).json() as Job;
      const replay = await submit({ request: replayOf(request), callback_url: callbackUrl });
      const error = expectError(replay, 409, 'idempotency_conflict');
      expect(replay.json()).toEqual({
        error: { code: 'idempotency_conflict', message: error.message, job_id: first.job_id },
      });
      expect(error.message).toContain(request.request_id);
      expect(error.message).toContain(first.job_id);
      expect(replay.headers.location).toBe(`/jobs/${first.job_id}`);
      expect((await app.inject({ method: 'GET', url: `/jobs/${first.job_id}` })).json()).toEqual(first);
      expect(await countJobs(db.pool)).toBe(1);
    },
  );

  it('treats an absent callback_url as none', async () => {
    const response = await submit({ request: makeRequest() });
    expect(response.statusCode).toBe(201);
    expect((response.json() as Job).callback_url).toBeNull();
  });

  it('schedules a job: run_after is kept and shown while it is ahead; delay_seconds counts from now', async () => {
    const runAfter = new Date(Date.now() + 3_600_000).toISOString();
    const scheduled = await submit({ request: makeRequest(), run_after: runAfter, max_attempts: 7 });
    expect(scheduled.statusCode).toBe(201);
    expect(JobSchema.parse(scheduled.json())).toMatchObject({
      run_after: runAfter,
      max_attempts: 7,
      last_error: null,
    });
    const before = Date.now();
    const delayed = JobSchema.parse((await submit({ request: makeRequest(), delay_seconds: 60 })).json());
    expect(Date.parse(delayed.run_after!) - before).toBeGreaterThanOrEqual(59_000);
    const now = JobSchema.parse((await submit({ request: makeRequest() })).json());
    expect(now).toMatchObject({ run_after: null, max_attempts: null, priority: 0 });
  });

  it('keeps a priority from 0 to 9, read back as sent', async () => {
    const urgent = JobSchema.parse((await submit({ request: makeRequest(), priority: 9 })).json());
    expect(urgent.priority).toBe(9);
    const { rows } = await db.pool.query('SELECT priority FROM ix_job_queue WHERE job_id = $1', [
      urgent.job_id,
    ]);
    expect(rows).toEqual([{ priority: 9 }]);
  });

  it.each([
    [{ run_after: 'tomorrow' }, '$.run_after'],
    [{ run_after: new Date().toISOString(), delay_seconds: 5 }, '$.delay_seconds'],
    [{ delay_seconds: -1 }, '$.delay_seconds'],
    [{ max_attempts: 0 }, '$.max_attempts'],
    [{ max_attempts: 26 }, '$.max_attempts'],
    [{ priority: 10 }, '$.priority'],
    [{ priority: -1 }, '$.priority'],
    [{ priority: 1.5 }, '$.priority'],
  ])('400 invalid_request for %j', async (fields, path) => {
    const error = expectError(await submit({ request: makeRequest(), ...fields }), 400, 'invalid_request');
    expect(error.details?.map((d) => d.path)).toEqual([path]);
    expect(await countJobs(db.pool)).toBe(0);
  });

  it('replaces a client-chosen ix_id with its own', async () => {
    const response = await submit({ request: makeRequest({ ix_id: 'mine' }), callback_url: null });
    expect((response.json() as Job).ix_id).toMatch(/^[0-9a-f]{16}$/);
  });

  it('logs the request with its request id, job_id and ix_id, never the body', async () => {
    const request = makeRequest({ input: { secret_document: 'do-not-log-me' } });
    const response = await submit(
      { request, callback_url: null },
      { ...JSON_HEADERS, 'x-request-id': 'trace-42' },
    );
    const job = response.json() as Job;
    expect(response.headers['x-request-id']).toBe('trace-42');
    const completed = logs
      .entries()
      .find((e) => e.request_id === 'trace-42' && e.msg === 'request completed');
    expect(completed).toMatchObject({ job_id: job.job_id, ix_id: job.ix_id });
    expect(logs.text()).not.toContain('do-not-log-me');
  });

  it('400 invalid_json for malformed JSON and for an empty JSON body', async () => {
    const malformed = await app.inject({
      method: 'POST',
      url: '/jobs',
      headers: JSON_HEADERS,
      payload: '{"request":',
    });
    expectError(malformed, 400, 'invalid_json');
    const empty = await app.inject({ method: 'POST', url: '/jobs', headers: JSON_HEADERS, payload: '' });
    expectError(empty, 400, 'invalid_json');
  });

  it.each([
    ['missing ix_client_id', { request: { request_id: 'r', input: {} } }, ['$.request.ix_client_id']],
    [
      'a wrong type',
      { request: { ix_client_id: 7, request_id: 'r', input: {} } },
      ['$.request.ix_client_id'],
    ],
    [
      'an overlong request_id',
      { request: { ix_client_id: 'acme', request_id: 'x'.repeat(257), input: {} } },
      ['$.request.request_id'],
    ],
    [
      'unknown keys at both levels',
      { request: { ix_client_id: 'acme', request_id: 'r', input: {}, extra: 1 }, surprise: true },
      ['$.request.extra', '$.surprise'],
    ],
    ['missing input', { request: { ix_client_id: 'acme', request_id: 'r' } }, ['$.request.input']],
    ['a body that is not an object', [1, 2], ['$']],
  ])('400 invalid_request naming the fields: %s', async (_name, body, paths) => {
    const error = expectError(await submit(body), 400, 'invalid_request');
    expect(error.details?.map((d) => d.path).sort()).toEqual([...paths].sort());
    expect(error.details?.every((d) => d.in === 'body')).toBe(true);
    for (const path of paths) expect(error.message).toContain(path);
    expect(await countJobs(db.pool)).toBe(0);
  });

  it.each([
    ['file:///etc/passwd'],
    ['javascript:alert(1)'],
    ['/relative/path'],
    ['ftp://example.com/hook'],
    [`https://example.com/${'a'.repeat(2048)}`],
    ['http://127.0.0.1:9000/hook'],
    ['http://[::1]/hook'],
    ['http://10.1.2.3/hook'],
    ['http://169.254.169.254/latest/meta-data'],
    ['http://[::ffff:192.168.0.1]/hook'],
    ['http://0.0.0.0/hook'],
    ['http://localhost:3000/hook'],
  ])('400 invalid_request for callback_url %s', async (callbackUrl) => {
    const error = expectError(
      await submit({ request: makeRequest(), callback_url: callbackUrl }),
      400,
      'invalid_request',
    );
    expect(error.details?.map((d) => d.path)).toEqual(['$.callback_url']);
    expect(error.message).toContain('callback_url');
    expect(await countJobs(db.pool)).toBe(0);
  });

  it('accepts private callback addresses when IX_CALLBACK_ALLOW_PRIVATE', async () => {
    const permissive = await buildTestApi(db.pool, { IX_CALLBACK_ALLOW_PRIVATE: 'true' });
    try {
      const response = await permissive.inject({
        method: 'POST',
        url: '/jobs',
        headers: JSON_HEADERS,
        payload: { request: makeRequest(), callback_url: 'http://127.0.0.1:9000/hook' },
      });
      expect(response.statusCode).toBe(201);
    } finally {
      await permissive.close();
    }
  });

  it('concurrent submits share statements, and one unstorable body fails alone with a 400', async () => {
    const good = Array.from({ length: 20 }, () => makeRequest());
    const bad = makeRequest({ input: { text: 'nul \u0000 byte' } });
    const responses = await Promise.all([
      ...good.map((request) => submit({ request, callback_url: null })),
      submit({ request: bad, callback_url: null }),
    ]);
    expect(responses.slice(0, 20).map((r) => r.statusCode)).toEqual(Array(20).fill(201));
    expectError(responses[20]!, 400, 'invalid_request');
    expect(responses[20]!.json().error.message).toMatch(/cannot store/);
    const ids = new Set(responses.slice(0, 20).map((r) => (r.json() as Job).job_id));
    expect(ids.size).toBe(20);
  });

  it('concurrent submits share statements, and one conflicting submission fails alone with a 409', async () => {
    const known = makeRequest();
    const first = (await submit({ request: known, callback_url: null })).json() as Job;
    const fresh = Array.from({ length: 20 }, () => makeRequest());
    const responses = await Promise.all([
      ...fresh.map((request) => submit({ request, callback_url: null })),
      submit({ request: { ...known, input: 'something else' }, callback_url: null }),
      submit({ request: known, callback_url: null }),
    ]);
    expect(responses.slice(0, 20).map((r) => r.statusCode)).toEqual(Array(20).fill(201));
    expectError(responses[20]!, 409, 'idempotency_conflict');
    expect(responses[20]!.json().error.job_id).toBe(first.job_id);
    expect(responses[21]!.statusCode).toBe(200);
    expect(responses[21]!.json()).toEqual(first);
    expect(await countJobs(db.pool)).toBe(21);
  });

  it('413 for a body over IX_MAX_BODY_BYTES', async () => {
    const response = await submit({ request: makeRequest({ input: 'x'.repeat(5000) }), callback_url: null });
    const error = expectError(response, 413, 'payload_too_large');
    expect(error.message).toContain('4096');
    expect(await countJobs(db.pool)).toBe(0);
  });

  it('415 for a body that is not JSON', async () => {
    const text = await submit('hello', { 'content-type': 'text/plain' });
    expectError(text, 415, 'unsupported_media_type');
    const form = await submit('a=1', { 'content-type': 'application/x-www-form-urlencoded' });
    expectError(form, 415, 'unsupported_media_type');
  });
});

describe('POST /jobs with JSON that ix cannot keep as sent', () => {
  let roomy: FastifyInstance;
  beforeAll(async () => {
    // The default body limit, so that deep nesting is refused for its depth and not its size.
    roomy = await buildTestApi(db.pool);
  });
  afterAll(async () => {
    await roomy?.close();
  });

  /** A submission whose input is `inputText` exactly as written, escapes and digits included. */
  function submitInput(inputText: string) {
    const body = JSON.stringify({ request: makeRequest({ input: '@input' }), callback_url: null });
    return roomy.inject({
      method: 'POST',
      url: '/jobs',
      headers: JSON_HEADERS,
      payload: body.replace('"@input"', inputText),
    });
  }

  const deep = (levels: number) => `${'['.repeat(levels)}${']'.repeat(levels)}`;

  it.each([
    // The body is level 1, `request` 2, `input` 3: the 257th level is input's 255th.
    ['nesting deeper than 256 levels', deep(4_000), `$.request.input${'[0]'.repeat(254)}`, /256/],
    ['a lone high surrogate in a string', '{"text": "a\\ud800b"}', '$.request.input.text', /surrogate/],
    ['a lone low surrogate in a string', '["ok", "\\uDC00"]', '$.request.input[1]', /surrogate/],
    ['a lone surrogate in a key', '{"k\\ud800": 1}', '$.request.input["k\\ud800"]', /surrogate/],
    ['a number beyond the range of a double', '{"big": 1e400}', '$.request.input.big', /as a string/],
    ['a number too small for a double', '{"tiny": -1e-400}', '$.request.input.tiny', /as a string/],
    [
      'an integer beyond 2^53',
      '{"id": 12345678901234567890123}',
      '$.request.input.id',
      /9007199254740991.*as a string/,
    ],
    ['more digits than a double keeps', '[0.1, 3.14159265358979323846]', '$.request.input[1]', /as a string/],
  ])('400 invalid_request naming the field: %s', async (_name, inputText, path, message) => {
    const error = expectError(await submitInput(inputText), 400, 'invalid_request');
    expect(error.details).toEqual([{ in: 'body', path, message: expect.stringMatching(message) }]);
    expect(error.message).toContain(path.slice(2));
    expect(await countJobs(db.pool)).toBe(0);
  });

  it('keeps exactly what a double keeps, paired surrogates, and 256 levels of nesting', async () => {
    const inputText = `{"a": 0.1, "b": 1e300, "c": -9007199254740991, "d": 5e-324, "e": 1.7976931348623157e308,
      "f": 123456789012345.6, "g": 2.50e-5, "h": 1e20, "smile": "\ud83d\ude00 \\ud83d\\ude00",
      "deep": ${deep(253)}}`;
    const response = await submitInput(inputText);
    expect(response.statusCode).toBe(201);
    const stored = await roomy.inject({ method: 'GET', url: `/jobs/${(response.json() as Job).job_id}` });
    expect((stored.json() as Job).request.input).toEqual(JSON.parse(inputText));
  });
});

describe('GET /jobs/:job_id and GET /jobs?client_id&request_id', () => {
  it('200 with the job by id and by correlation', async () => {
    const request = makeRequest();
    const created = (await submit({ request, callback_url: null })).json() as Job;
    const byId = await app.inject({ method: 'GET', url: `/jobs/${created.job_id}` });
    expect(byId.statusCode).toBe(200);
    expect(byId.json()).toEqual(created);
    const byCorrelation = await app.inject({
      method: 'GET',
      url: '/jobs',
      query: { client_id: request.ix_client_id, request_id: request.request_id },
    });
    expect(byCorrelation.statusCode).toBe(200);
    expect(byCorrelation.json()).toEqual(created);
  });

  it('200 with the attempt history: every run, its worker, times, outcome and error', async () => {
    const workerId = randomUUID();
    const job = await retriedThenDone(db.pool, workerId);
    const response = await app.inject({ method: 'GET', url: `/jobs/${job.job_id}` });
    expect(response.statusCode).toBe(200);
    const read = JobSchema.parse(response.json());
    expect(read.attempt_history).toEqual([
      {
        attempt: 1,
        worker_id: workerId,
        started_at: expect.any(String),
        finished_at: expect.any(String),
        duration_ms: expect.any(Number),
        outcome: 'retry',
        error: 'HTTP 503: busy',
        retry_at: expect.any(String),
      },
      {
        attempt: 2,
        worker_id: workerId,
        started_at: read.started_at,
        finished_at: read.finished_at,
        duration_ms: Date.parse(read.finished_at!) - Date.parse(read.started_at!),
        outcome: 'done',
        error: null,
        retry_at: null,
      },
    ]);
  });

  it('404 for an unknown job id or correlation', async () => {
    expectError(await app.inject({ method: 'GET', url: `/jobs/${randomUUID()}` }), 404, 'not_found');
    const unknown = await app.inject({
      method: 'GET',
      url: '/jobs',
      query: { client_id: 'acme', request_id: 'nope' },
    });
    expectError(unknown, 404, 'not_found');
  });

  it('400 for a job id that is not a UUID', async () => {
    const error = expectError(
      await app.inject({ method: 'GET', url: '/jobs/not-a-uuid' }),
      400,
      'invalid_request',
    );
    expect(error.details).toEqual([{ in: 'params', path: '$.job_id', message: expect.any(String) }]);
  });

  it('400 for a request_id without its client_id (client_id alone lists that client’s jobs)', async () => {
    const error = expectError(
      await app.inject({ method: 'GET', url: '/jobs', query: { request_id: 'r' } }),
      400,
      'invalid_request',
    );
    expect(error.details?.map((d) => d.path)).toEqual(['$.client_id']);
  });
});

describe('routing', () => {
  it('404 not_found for an unknown route', async () => {
    expectError(await app.inject({ method: 'GET', url: '/nothing/here' }), 404, 'not_found');
  });

  it('405 with Allow for a wrong method', async () => {
    const onJob = await app.inject({ method: 'DELETE', url: `/jobs/${randomUUID()}` });
    expectError(onJob, 405, 'method_not_allowed');
    expect(onJob.headers.allow).toContain('GET');
    const onCollection = await app.inject({ method: 'PUT', url: '/jobs' });
    expectError(onCollection, 405, 'method_not_allowed');
    expect(String(onCollection.headers.allow).split(', ')).toEqual(expect.arrayContaining(['GET', 'POST']));
  });
});

describe('the HTTP server', () => {
  it('has explicit header, request, keep-alive and idle timeouts', () => {
    expect(app.server.headersTimeout).toBe(HTTP_TIMEOUTS.headersTimeoutMs);
    expect(app.server.requestTimeout).toBe(HTTP_TIMEOUTS.requestTimeoutMs);
    expect(app.server.keepAliveTimeout).toBe(HTTP_TIMEOUTS.keepAliveTimeoutMs);
    expect(app.server.timeout).toBe(HTTP_TIMEOUTS.connectionTimeoutMs);
    expect(HTTP_TIMEOUTS.headersTimeoutMs).toBeLessThan(HTTP_TIMEOUTS.requestTimeoutMs);
  });
});

describe('probes and documentation', () => {
  it('200 on /healthz and /readyz with a migrated database', async () => {
    expect((await app.inject({ method: 'GET', url: '/healthz' })).json()).toEqual({ status: 'ok' });
    const ready = await app.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toMatchObject({ status: 'ready' });
  });

  it("gives the OpenAPI document package.json's version, however ix was started", async () => {
    const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    // npm sets this for scripts it runs; `ix api` started any other way has none, or another's.
    vi.stubEnv('npm_package_version', '0.0.0-not-ix');
    const started = await buildTestApi(db.pool).finally(() => vi.unstubAllEnvs());
    try {
      const document = (await started.inject({ method: 'GET', url: '/openapi.json' })).json() as {
        info: { version: string };
      };
      expect(document.info.version).toBe(version);
    } finally {
      await started.close();
    }
  });

  it('serves the OpenAPI document built from the contracts, and the docs page', async () => {
    const openapi = await app.inject({ method: 'GET', url: '/openapi.json' });
    expect(openapi.statusCode).toBe(200);
    const document = openapi.json() as {
      paths: Record<string, unknown>;
      components: { schemas: Record<string, unknown> };
    };
    expect(Object.keys(document.paths)).toEqual(
      expect.arrayContaining(['/jobs', '/jobs/{job_id}', '/healthz', '/readyz']),
    );
    expect(Object.keys(document.components.schemas)).toEqual(
      expect.arrayContaining(['Job', 'RequestIX', 'ResponseIX', 'Error']),
    );
    const submitResponses = (document.paths['/jobs'] as { post: { responses: Record<string, unknown> } }).post
      .responses;
    expect(Object.keys(submitResponses)).toEqual(expect.arrayContaining(['200', '201', '400', '409']));
    const docs = await app.inject({ method: 'GET', url: '/docs' });
    expect(docs.statusCode).toBe(200);
    expect(docs.headers['content-type']).toContain('text/html');
    // The page's assets come from this server (node_modules), not from the internet.
    const assets = [...docs.body.matchAll(/(?:href|src)="([^"]+)"/g)].map((m) => m[1] ?? '');
    expect(assets.length).toBeGreaterThan(0);
    for (const asset of assets) {
      expect(asset).toMatch(/^\/docs\//);
      expect((await app.inject({ method: 'GET', url: asset })).statusCode).toBe(200);
    }
  });
});
