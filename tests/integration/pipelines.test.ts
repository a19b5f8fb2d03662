import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RequestIX } from '../../src/contracts/index.js';
import { httpPipeline } from '../../src/worker/index.js';
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
});

beforeAll(async () => {
  server = await startServer((req, res, body) => {
    if (req.url === '/ok') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ received: JSON.parse(body) }));
    } else if (req.url === '/boom') {
      res.statusCode = 500;
      res.end('internal failure in the model server');
    } else {
      res.end('<html>not json</html>');
    }
  });
});
afterAll(() => server.close());

describe('the http pipeline', () => {
  it('takes a 2xx JSON body as the result, having POSTed the request', async () => {
    expect(await httpPipeline(`${server.url}/ok`)(request, ctx())).toEqual({ result: { received: request } });
  });

  it('turns a 500 into an error naming the status and an excerpt', async () => {
    const outcome = await httpPipeline(`${server.url}/boom`)(request, ctx());
    expect(outcome).toEqual({
      error: 'pipeline service answered HTTP 500: internal failure in the model server',
    });
  });

  it('turns a body that is not JSON into an error', async () => {
    const outcome = await httpPipeline(`${server.url}/html`)(request, ctx());
    expect(outcome).toEqual({
      error: 'pipeline service answered HTTP 200 with invalid JSON: <html>not json</html>',
    });
  });
});
