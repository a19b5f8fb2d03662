/** The probes: alive, and ready (the database answers at the latest schema version). */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type pg from 'pg';
import { LATEST_VERSION, schemaVersion, withClientWithin } from '../store/index.js';
import { ApiError } from './errors.js';
import { ErrorSchema, errorResponses, HealthSchema, jsonResponse, ReadySchema } from './schemas.js';

/** A probe that cannot answer within this long counts as not ready (load balancers poll often). */
const READY_TIMEOUT_MS = 2_000;

export function registerHealthRoutes(parent: FastifyInstance, pool: pg.Pool): void {
  const app = parent.withTypeProvider<ZodTypeProvider>();
  // The probes take no key (`security: []`): load balancers and orchestrators poll them without one.
  app.get(
    '/healthz',
    {
      schema: {
        operationId: 'checkHealth',
        summary: 'The process is alive',
        security: [],
        response: { 200: jsonResponse('Alive', HealthSchema), ...errorResponses(405) },
      },
    },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/readyz',
    {
      schema: {
        operationId: 'checkReadiness',
        summary: 'The database answers and its schema is at the latest migration',
        security: [],
        response: {
          200: jsonResponse('Ready: the database answers, at the latest schema version', ReadySchema),
          ...errorResponses(405),
          503: jsonResponse(
            'not_ready: the database is unreachable, or its schema is behind (the message names the fix)',
            ErrorSchema,
          ),
        },
      },
    },
    async (request) => {
      let version: number;
      try {
        version = await withClientWithin(pool, READY_TIMEOUT_MS, (db) => schemaVersion(db));
      } catch (error) {
        request.log.warn({ err: error }, 'readiness: database unreachable');
        throw new ApiError(503, 'not_ready', 'the database is unreachable');
      }
      if (version !== LATEST_VERSION) {
        throw new ApiError(
          503,
          'not_ready',
          `the schema is at version ${version}, this ix needs ${LATEST_VERSION}: run ix migrate up`,
        );
      }
      return { status: 'ready' as const, schema_version: version };
    },
  );
}
