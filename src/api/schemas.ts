/** The API's own envelopes around the contracts of src/contracts (which stay the wire format). */
import { z } from 'zod';
import {
  ClientIdSchema,
  JobSchema,
  JobStatusSchema,
  RequestIdSchema,
  SubmitBodySchema,
  TombstoneSchema,
} from '../contracts/index.js';
import { AdminJobSchema, JobPageSchema, OverviewSchema } from '../contracts/operators.js';
import { IX_ID_PREFIX_PATTERN } from '../store/index.js';

export const JobParamsSchema = z.object({ job_id: z.uuid() });

/** `?wait=`: hold the answer until the job has finished, for at most this many seconds. */
const wait = z.coerce.number().min(0).optional().meta({
  description:
    'Seconds to wait for the job to finish before answering (cut to IX_MAX_WAIT_SECONDS); the answer is the job as it stands then, finished or not',
});

export const WaitQuerySchema = z.object({ wait });

export const CorrelationQuerySchema = z.object({
  client_id: ClientIdSchema,
  request_id: RequestIdSchema,
});

export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.string().meta({ description: 'Stable, machine-readable: invalid_request, not_found, …' }),
      message: z.string(),
      details: z
        .array(z.object({ in: z.string(), path: z.string(), message: z.string() }))
        .optional()
        .meta({ description: 'Each invalid field by its JSONPath' }),
      job_id: z.uuid().optional().meta({
        description:
          'idempotency_conflict: the job already submitted under this ix_client_id and request_id, with a different request; job_finished: the job that could not be cancelled; gone: the pruned job',
      }),
      job: JobSchema.optional().meta({
        description:
          'job_finished: the job as it stands, ended done or error before it could be cancelled; job_not_failed: the job, which had not ended in error',
      }),
      tombstone: TombstoneSchema.optional().meta({
        description: 'gone: what is left of the pruned job, and when its request_id may be used again',
      }),
    }),
  })
  .meta({ id: 'Error' });

export const HealthSchema = z.object({ status: z.literal('ok') });
export const ReadySchema = z.object({ status: z.literal('ready'), schema_version: z.number().int() });

/** A documented response: what it means (its OpenAPI description) and its JSON body. */
export function jsonResponse<Schema extends z.ZodType>(description: string, schema: Schema) {
  return { description, content: { 'application/json': { schema } } };
}

/** What each error status means, by its error.code; the body is always the one Error shape. */
const ERROR_MEANINGS = {
  400: 'invalid_request (invalid_json for a body that is not JSON): error.details names each invalid field by its JSONPath',
  401: 'unauthorized: the API key is missing or unknown (send Authorization: Bearer <key>)',
  403: 'forbidden: the API key belongs to another client than the one named (request.ix_client_id, client_id); on operator endpoints, a client key (they take a key of IX_ADMIN_KEYS)',
  404: 'not_found: no such job, or another client’s',
  405: 'method_not_allowed: sent with a method this path does not take; the Allow header lists those it does',
  409: 'idempotency_conflict (submit): this ix_client_id and request_id already hold a job submitted with another request; error.job_id and the Location header name it. job_finished (cancel): the job had already ended done or error; error.job is the job as it stands. job_not_failed (retry): the job had not ended in error; error.job is the job as it stands',
  410: 'gone: the job existed and ended, and was pruned after its retention: its result is gone. error.tombstone says how it ended and when its ix_client_id and request_id may be submitted again; until then a submit of them runs nothing',
  413: 'payload_too_large: the body is over IX_MAX_BODY_BYTES',
  415: 'unsupported_media_type: send the body as Content-Type: application/json',
  429: 'rate_limited (submit): over the client’s submit rate on this API process; retry after the Retry-After header’s seconds. too_many_pending (submit): the client already has max_pending jobs waiting to run; an identical replay of a submitted request is still answered',
  503: 'unavailable: the database is down, overloaded or slower than IX_API_DEADLINE_SECONDS; retry after the Retry-After header’s seconds (submits are idempotent)',
} as const;

type ErrorStatus = keyof typeof ERROR_MEANINGS;

/** The documented error responses of an operation, one per status it can answer. */
export function errorResponses(...statuses: ErrorStatus[]) {
  return Object.fromEntries(
    statuses.map((status) => [status, jsonResponse(ERROR_MEANINGS[status], ErrorSchema)]),
  );
}

/** A page's size: at most 100 summaries, 50 unless asked. */
const limit = z.coerce.number().int().min(1).max(100).default(50);

/** `GET /jobs`: a page of the caller's jobs, or with `request_id` the one job under it. */
export const JobsQuerySchema = z.object({
  client_id: ClientIdSchema.optional().meta({
    description: 'Whose jobs: required with request_id; a client key may name only its own client',
  }),
  request_id: RequestIdSchema.optional().meta({
    description: 'With client_id: answer the one job submitted under this request id, not a page',
  }),
  status: JobStatusSchema.optional(),
  cursor: z.uuid().optional().meta({ description: 'next_cursor of the previous page' }),
  limit,
  wait,
});

export const AdminJobsQuerySchema = z.object({
  status: JobStatusSchema.optional(),
  client_id: ClientIdSchema.optional(),
  request_id: RequestIdSchema.optional().meta({
    description: 'The job submitted under this request_id (of client_id, or of any client)',
  }),
  ix_id: z
    .string()
    .regex(IX_ID_PREFIX_PATTERN, 'expected 1 to 16 lowercase hex characters')
    .optional()
    .meta({ description: 'Jobs whose ix_id starts with this' }),
  from: z.iso.datetime({ offset: true }).optional().meta({ description: 'Submitted at or after this' }),
  to: z.iso.datetime({ offset: true }).optional().meta({ description: 'Submitted before this' }),
  cursor: z.uuid().optional().meta({ description: 'next_cursor of the previous page' }),
  limit,
});

export { AdminJobSchema, JobPageSchema, JobSchema, OverviewSchema, SubmitBodySchema };
