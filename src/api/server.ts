/** Builds the Fastify instance (nothing listens until `startApi`). */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import Fastify, { type FastifyInstance } from 'fastify';
import { validatorCompiler } from 'fastify-type-provider-zod';
import type pg from 'pg';
import type { Config } from '../config.js';
import { jsonTextProblems } from '../contracts/index.js';
import { registerDashboard } from '../dashboard/index.js';
import type { Logger } from '../log.js';
import { Metrics } from '../metrics/index.js';
import { SubmitService } from '../submit/index.js';
import { version } from '../version.js';
import { JobWatcher } from '../watch/index.js';
import { registerAdminRoutes } from './admin.js';
import { assertSafeExposure, createAuthenticator, isLoopbackHost } from './auth.js';
import { ClientDirectory } from './directory.js';
import { installErrorHandling, invalidFields } from './errors.js';
import { registerHealthRoutes } from './health.js';
import { SubmitLimits } from './limits.js';
import { IxLogController } from './logging.js';
import { registerOpenApi } from './openapi.js';
import { registerJobRoutes } from './routes.js';
import { HTTP_TIMEOUTS } from './timeouts.js';

export { HTTP_TIMEOUTS } from './timeouts.js';

export interface ApiDeps {
  pool: pg.Pool;
  /** For the one LISTEN connection that feeds every waiter (src/watch/), outside the pool; null: none, they are polled for. */
  connectionString: string | null;
  /** A watcher its caller starts and closes; absent: the API runs its own. */
  watcher?: JobWatcher;
  config: Config;
  logger: Logger;
  /** The process's metrics, shared with its worker (`ix start`); default: the API's own. */
  metrics?: Metrics;
}

/** A process's metrics as the settings describe them, its gauges read from `pool`. */
export function metricsFor(pool: pg.Pool, config: Config): Metrics {
  return new Metrics({
    db: pool,
    heartbeatTimeoutSeconds: config.worker.heartbeatTimeoutSeconds,
    clientLabels: config.metrics.clientLabels,
  });
}

const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{1,64}$/;

/** Keeps a caller's `X-Request-Id` (e.g. from a load balancer) when it is sane; else a fresh one. */
function requestId(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && REQUEST_ID_PATTERN.test(given) ? given : randomUUID();
}

export async function buildApi(deps: ApiDeps): Promise<FastifyInstance> {
  const { pool, config, logger } = deps;
  const ownsWatcher = deps.watcher === undefined;
  const watcher =
    deps.watcher ??
    new JobWatcher({
      pool,
      connectionString: deps.connectionString,
      logger: logger.child({ component: 'watch' }),
      pollIntervalMs: config.api.watchPollIntervalMs,
    });
  // Read before anything else: it decides whether access is keyed, and a client defined both in
  // IX_API_KEYS and in the table stops the start. Told of changes on the watcher's connection.
  const directory = new ClientDirectory({
    pool,
    changes: watcher,
    config,
    logger: logger.child({ component: 'clients' }),
  });
  try {
    await directory.start();
    assertSafeExposure(config, directory.hasKeys);
    return await buildWith(deps, directory, watcher, ownsWatcher);
  } catch (error) {
    await directory.close();
    throw error;
  }
}

async function buildWith(
  deps: ApiDeps,
  directory: ClientDirectory,
  watcher: JobWatcher,
  ownsWatcher: boolean,
): Promise<FastifyInstance> {
  const { pool, config, logger } = deps;
  const app = Fastify({
    loggerInstance: logger.child({ component: 'api' }),
    genReqId: requestId,
    logController: new IxLogController(),
    bodyLimit: config.api.maxBodyBytes,
    connectionTimeout: HTTP_TIMEOUTS.connectionTimeoutMs,
    requestTimeout: HTTP_TIMEOUTS.requestTimeoutMs,
    keepAliveTimeout: HTTP_TIMEOUTS.keepAliveTimeoutMs,
    http: { headersTimeout: HTTP_TIMEOUTS.headersTimeoutMs },
    // Idle keep-alive sockets must not hold a graceful close open.
    forceCloseConnections: 'idle',
    // Requests that arrive while closing are still served (the pool outlives the server); the
    // hook below makes every response from then on close its connection.
    return503OnClosing: false,
  }) as unknown as FastifyInstance;

  // Declared up front, as `caller` is (auth.ts), so every request object keeps one shape.
  app.decorateRequest('logContext', null);

  // Node's close() drops only the connections idle at that moment; one busy then would, once its
  // response went out, idle for the whole keep-alive timeout (72 s) and hold the close open.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onSend', (request, reply, payload, done) => {
    reply.header('x-request-id', request.id);
    if (closing) reply.header('connection', 'close');
    done(null, payload);
  });

  app.setValidatorCompiler(validatorCompiler);
  // Responses are Jobs the store already checked against the Job contract; validating them again
  // on the way out would only cost throughput.
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  // JSON only: without this, fastify would parse text/plain and answer a 400 instead of a 415.
  app.removeContentTypeParser('text/plain');
  // fastify's own JSON parsing (prototype poisoning refused, as by default), then a refusal by
  // field of what JSON.parse accepts but ix would not keep as sent (see jsonTextProblems).
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body: string, done) => {
    parseJson(request, body, (error, parsed) => {
      if (error) return done(error, undefined);
      const problems = jsonTextProblems(body);
      if (problems.length > 0) return done(invalidFields('body', problems), undefined);
      done(null, parsed);
    });
  });
  installErrorHandling(app, config.api.maxBodyBytes);
  await registerOpenApi(app, version());
  registerHealthRoutes(app, pool);
  // Concurrent submits share statements (one commit for many), and wake workers after commit.
  const metrics = deps.metrics ?? metricsFor(pool, config);
  const submissions = SubmitService.fromConfig(
    pool,
    config,
    (error) => logger.warn({ err: error }, 'could not notify workers; they will poll'),
    metrics,
  );
  // Connects in the background: a database that is down must not keep the API from starting.
  if (ownsWatcher) void watcher.start();
  // Submissions and their wake-ups finish before the pool they use can be ended.
  app.addHook('onClose', async () => {
    await Promise.all([submissions.settled(), ownsWatcher ? watcher.close() : undefined, directory.close()]);
  });
  const authenticator = createAuthenticator(config.api.apiKeys, config.api.adminKeys, {
    directory,
    allowOpen: isLoopbackHost(config.api.host),
  });
  const limits = new SubmitLimits({
    pool,
    limitsOf: (clientId) => directory.limits(clientId),
    deadlineMs: config.api.deadlineSeconds * 1000,
  });
  await registerJobRoutes(app, { pool, config, authenticator, submissions, watcher, metrics, limits });
  await registerAdminRoutes(app, { pool, config, authenticator, metrics, watcher });
  registerDashboard(app, authenticator.keyed());
  await app.ready();
  return app;
}

export interface RunningApi {
  /** `http://host:port` actually bound (port 0 picks a free one). */
  address: string;
  /** Stops accepting, lets in-flight requests finish, closes idle sockets. */
  close(): Promise<void>;
}

/** Listens on `config.api.host`/`port`. The caller owns the pool and wires SIGTERM to `close`. */
export async function startApi(deps: ApiDeps): Promise<RunningApi> {
  const app = await buildApi(deps);
  await app.listen({ host: deps.config.api.host, port: deps.config.api.port });
  const bound = app.server.address();
  const address =
    bound && typeof bound === 'object'
      ? `http://${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`
      : String(bound);
  return { address, close: () => app.close() };
}
