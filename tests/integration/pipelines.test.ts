import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Config, loadConfig } from '../../src/config.js';
import type { RequestIX } from '../../src/contracts/index.js';
import { httpPipeline, loadPipeline } from '../../src/worker/index.js';
import { startServer, type TestServer } from '../support/http.js';
import { silentLogger } from '../support/worker.js';

let server: TestServer;
const request: RequestIX = { ix_client_id: 'acme', request_id: 'r1', input: { page: 1 } };
const ctx = () => ({
  signal: new AbortController().signal,
  ix_id: '0123456789abcdef',
  job_id: '00000000-0000-7000-8000-000000000001',
  attempt: 0,
  logger: silentLogger,
  progress: () => {},
});

beforeAll(async () => {
  server = await startServer((req, res, body) => {
    if (req.url === '/ok') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ received: JSON.parse(body) }));
    } else if (req.url === '/boom') {
      res.statusCode = 500;
      res.end('internal failure in the model server');
    } else if (req.url?.startsWith('/status/')) {
      const url = new URL(req.url, 'http://x');
      res.statusCode = Number(url.pathname.slice('/status/'.length));
      const after = url.searchParams.get('after');
      if (after) res.setHeader('retry-after', after);
      res.end('no');
    } else if (req.url === '/huge') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ text: 'x'.repeat(100_000) }));
    } else {
      res.end('<html>not json</html>');
    }
  });
});
afterAll(() => server.close());

const moduleConfig = (path: string): Config['worker'] => ({
  ...loadConfig({}).worker,
  pipeline: { kind: 'module', path },
});

describe('the http pipeline', () => {
  /** Far above any answer of this server's but /huge. */
  const ROOMY_LIMIT = 1_000_000;

  it('takes a 2xx JSON body as the result, having POSTed the request', async () => {
    expect(await httpPipeline(`${server.url}/ok`, ROOMY_LIMIT)(request, ctx())).toEqual({
      result: { received: request },
    });
  });

  it('turns a 500 into an error naming the status and an excerpt', async () => {
    const outcome = await httpPipeline(`${server.url}/boom`, ROOMY_LIMIT)(request, ctx());
    expect(outcome).toEqual({
      error: 'pipeline service answered HTTP 500: internal failure in the model server',
      retryable: true,
    });
  });

  it.each([
    [408, true],
    [425, true],
    [429, true],
    [502, true],
    [400, false],
    [404, false],
    [422, false],
  ])('takes HTTP %i as retryable: %s', async (status, retryable) => {
    const outcome = await httpPipeline(`${server.url}/status/${status}`, ROOMY_LIMIT)(request, ctx());
    expect(outcome).toEqual({
      error: `pipeline service answered HTTP ${status}: no`,
      ...(retryable ? { retryable: true } : {}),
    });
  });

  it('passes a Retry-After on', async () => {
    const outcome = await httpPipeline(`${server.url}/status/503?after=7`, ROOMY_LIMIT)(request, ctx());
    expect(outcome).toMatchObject({ retryable: true, retryAfterSeconds: 7 });
  });

  it('a retryable status stays retryable whatever the size of its body', async () => {
    const outcome = await httpPipeline(`${server.url}/status/503`, 1)(request, ctx());
    expect(outcome).toMatchObject({ retryable: true });
    expect((outcome as { error: string }).error).toMatch(/HTTP 503 with more than 1 bytes/);
  });

  it('a 2xx that is not JSON is permanent', async () => {
    const outcome = await httpPipeline(`${server.url}/html`, ROOMY_LIMIT)(request, ctx());
    expect(outcome).not.toHaveProperty('retryable');
  });

  it('a refused connection throws (retryable, as anything a pipeline throws)', async () => {
    const refused = await startServer(() => {});
    await refused.close();
    await expect(httpPipeline(refused.url, ROOMY_LIMIT)(request, ctx())).rejects.toThrow();
  });

  it('turns a body that is not JSON into an error', async () => {
    const outcome = await httpPipeline(`${server.url}/html`, ROOMY_LIMIT)(request, ctx());
    expect(outcome).toEqual({
      error: 'pipeline service answered HTTP 200 with invalid JSON: <html>not json</html>',
    });
  });

  it('reads no more of an answer than its byte limit, and says so', async () => {
    expect(await httpPipeline(`${server.url}/huge`, 200_000)(request, ctx())).toMatchObject({
      result: { text: expect.any(String) },
    });
    expect(await httpPipeline(`${server.url}/huge`, 10_000)(request, ctx())).toEqual({
      error: 'pipeline service answered HTTP 200 with more than 10000 bytes (IX_PIPELINE_MAX_RESULT_BYTES)',
    });
  });
});

describe('pipelines from users’ modules (IX_PIPELINE=path)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ix-pipeline-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('loads the default export of a JavaScript module', async () => {
    const path = join(dir, 'upper.mjs');
    writeFileSync(
      path,
      'export default async (request) => ({ result: String(request.input.text).toUpperCase() });\n',
    );
    const pipeline = await loadPipeline(moduleConfig(path));
    expect(await pipeline({ ...request, input: { text: 'scan' } }, ctx())).toEqual({ result: 'SCAN' });
  });

  it('loads a TypeScript module', async () => {
    const path = join(dir, 'typed.ts');
    writeFileSync(
      path,
      'export default async (request: { request_id: string }): Promise<{ result: string }> => ({ result: request.request_id });\n',
    );
    const pipeline = await loadPipeline(moduleConfig(path));
    expect(await pipeline(request, ctx())).toEqual({ result: 'r1' });
  });

  it('refuses a module without a default function, naming IX_PIPELINE', async () => {
    const path = join(dir, 'nothing.mjs');
    writeFileSync(path, 'export const helper = 1;\n');
    await expect(loadPipeline(moduleConfig(path))).rejects.toThrow(/IX_PIPELINE: .*no default export/);
    await expect(loadPipeline(moduleConfig(join(dir, 'missing.mjs')))).rejects.toThrow(
      /IX_PIPELINE: cannot load/,
    );
  });
});
