/**
 * `ix worker`'s own `/metrics`, on IX_METRICS_PORT of IX_HOST: a worker has no API to serve them.
 * The same rule as the API's: with keys configured, only an operator key (IX_ADMIN_KEYS) reads
 * them.
 */
import { createServer } from 'node:http';
import { type ApiError, assertSafeExposure, createAuthenticator, requireOperator } from '../api/index.js';
import { type Config, ConfigError } from '../config.js';
import type { Metrics } from '../metrics/index.js';

export interface ServedMetrics {
  address: string;
  close(): Promise<void>;
}

export async function serveMetrics(config: Config, metrics: Metrics): Promise<ServedMetrics> {
  // Open metrics only on loopback, as the API (IX_HOST serves both).
  assertSafeExposure(config);
  const authenticator = createAuthenticator(config.api.apiKeys, config.api.adminKeys);
  const server = createServer((request, response) => {
    const answer = (status: number, body: string, type = 'application/json', headers = {}) => {
      response.writeHead(status, { ...headers, 'content-type': type });
      response.end(body);
    };
    const path = (request.url ?? '/').split('?')[0];
    if (path !== '/metrics') {
      answer(
        404,
        JSON.stringify({ error: { code: 'not_found', message: `no route ${request.method} ${path}` } }),
      );
      return;
    }
    try {
      requireOperator(authenticator.authenticate(request.headers.authorization));
    } catch (error) {
      const refused = error as ApiError;
      answer(refused.statusCode, JSON.stringify(refused.toBody()), 'application/json', refused.headers);
      return;
    }
    metrics.text().then(
      (text) => answer(200, text, metrics.contentType),
      () =>
        answer(503, JSON.stringify({ error: { code: 'unavailable', message: 'metrics could not be read' } })),
    );
  });
  // A worker never takes requests otherwise: keep its sockets from outliving a stop.
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  const port = config.metrics.port ?? 0;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'EADDRINUSE'
          ? new ConfigError('IX_METRICS_PORT', `${config.api.host}:${port} is already in use`)
          : error,
      ),
    );
    server.listen(port, config.api.host, resolve);
  });
  const bound = server.address();
  const address =
    bound && typeof bound === 'object' ? `http://${config.api.host}:${bound.port}` : String(bound);
  return {
    address,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
