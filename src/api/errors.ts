/**
 * The one HTTP error mapper: every failure leaves as `{"error": {"code", "message", "details"?}}`.
 * Client mistakes become a 4xx naming what to fix; anything else is logged with its stack and
 * leaves as `500 internal` with nothing of its cause.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { type Job, type Tombstone, toJsonPath } from '../contracts/index.js';
import {
  IdempotencyConflictError,
  isDatabaseUnavailable,
  JobFinishedError,
  JobGoneError,
  JobNotFailedError,
} from '../store/index.js';
import { InvalidSubmissionError, SubmitQueueFullError } from '../submit/index.js';

export type ErrorCode =
  | 'invalid_json'
  | 'invalid_request'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'idempotency_conflict'
  | 'job_finished'
  | 'gone'
  | 'job_not_failed'
  | 'method_not_allowed'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'rate_limited'
  | 'too_many_pending'
  | 'not_ready'
  | 'unavailable'
  | 'internal';

export interface ErrorDetail {
  /** Where the field is: `body`, `querystring` or `params`. */
  in: string;
  /** JSONPath of the field, e.g. `$.request.ix_client_id`. */
  path: string;
  message: string;
}

export interface ErrorBody {
  /**
   * `job_id`: the job the error is about, when there is one (idempotency_conflict, gone); `job`:
   * the job as it stands, when its state is why (job_finished, job_not_failed); `tombstone`: what
   * is left of a pruned job (gone).
   */
  error: {
    code: ErrorCode;
    message: string;
    details?: ErrorDetail[];
    job_id?: string;
    job?: Job;
    tombstone?: Tombstone;
  };
}

/** A failure the API means to report as is; thrown from handlers and hooks. */
export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: ErrorCode,
    message: string,
    readonly details?: ErrorDetail[],
    readonly headers: Record<string, string> = {},
    readonly jobId?: string,
    readonly job?: Job,
    readonly tombstone?: Tombstone,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  toBody(): ErrorBody {
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(this.details ? { details: this.details } : {}),
        ...(this.jobId ? { job_id: this.jobId } : {}),
        ...(this.job ? { job: this.job } : {}),
        ...(this.tombstone ? { tombstone: this.tombstone } : {}),
      },
    };
  }
}

/** A 400 naming each field by its JSONPath; one field's message leads with its reason. */
export function invalidFields(where: string, fields: readonly { path: string; message: string }[]): ApiError {
  const details = fields.map(({ path, message }) => ({ in: where, path, message }));
  const [only, ...others] = details;
  const message =
    only && others.length === 0
      ? `${only.path.replace(/^\$\.?/, '') || 'body'}: ${only.message}`
      : summarize(details);
  return new ApiError(400, 'invalid_request', message, details);
}

export function invalidField(where: string, path: string, message: string): ApiError {
  return invalidFields(where, [{ path, message }]);
}

function validationDetails(error: FastifyError & { validationContext?: string }): ErrorDetail[] {
  if (!hasZodFastifySchemaValidationErrors(error)) return [];
  const where = error.validationContext ?? 'body';
  const details: ErrorDetail[] = [];
  for (const issue of error.validation) {
    const segments = issue.instancePath.split('/').filter((s) => s !== '');
    // zod reports unknown keys on their parent; name each key itself so the client sees which.
    const keys = (issue.params as { keys?: unknown }).keys;
    if (issue.keyword === 'unrecognized_keys' && Array.isArray(keys)) {
      for (const key of keys) {
        details.push({ in: where, path: toJsonPath([...segments, String(key)]), message: 'unknown field' });
      }
      continue;
    }
    details.push({ in: where, path: toJsonPath(segments), message: issue.message ?? 'invalid' });
  }
  return details;
}

function summarize(details: readonly ErrorDetail[]): string {
  const fields = [...new Set(details.map((d) => d.path))].slice(0, 5).join(', ');
  return details.length === 0 ? 'the request is invalid' : `invalid fields: ${fields}`;
}

/** Fastify's own client errors, by code; anything else with a 4xx status keeps its message. */
const FRAMEWORK_ERRORS: Record<string, { status: number; code: ErrorCode; message: string }> = {
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, code: 'invalid_json', message: 'the body is not valid JSON' },
  FST_ERR_CTP_EMPTY_JSON_BODY: {
    status: 400,
    code: 'invalid_json',
    message: 'the body is empty but Content-Type is application/json',
  },
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, code: 'payload_too_large', message: '' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: {
    status: 415,
    code: 'unsupported_media_type',
    message: 'send the body as Content-Type: application/json',
  },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: {
    status: 400,
    code: 'invalid_request',
    message: 'Content-Length does not match the body',
  },
  FST_ERR_BAD_URL: { status: 400, code: 'invalid_request', message: 'the URL is malformed' },
};

// An outage's end cannot be foreseen, and a retry is cheap: submits are idempotent, and while
// the database is down each one is answered at once.
const RETRY_AFTER_SECONDS = '1';

function unavailable(message: string): ApiError {
  return new ApiError(503, 'unavailable', message, undefined, { 'retry-after': RETRY_AFTER_SECONDS });
}

export function toApiError(error: FastifyError, maxBodyBytes: number): ApiError | null {
  if (error instanceof ApiError) return error;
  // First wins: the client learns which job holds the key instead of a silent 200 with it.
  if (error instanceof IdempotencyConflictError) {
    const location = { location: `/jobs/${error.jobId}` };
    return new ApiError(409, 'idempotency_conflict', error.message, undefined, location, error.jobId);
  }
  if (error instanceof JobFinishedError) {
    const { job } = error;
    return new ApiError(409, 'job_finished', error.message, undefined, {}, job.job_id, job);
  }
  // The job existed and ended, and was pruned: its result is gone, and its key is still taken.
  if (error instanceof JobGoneError) {
    const { tombstone } = error;
    return new ApiError(410, 'gone', error.message, undefined, {}, tombstone.job_id, undefined, tombstone);
  }
  if (error instanceof JobNotFailedError) {
    const { job } = error;
    return new ApiError(409, 'job_not_failed', error.message, undefined, {}, job.job_id, job);
  }
  if (error instanceof InvalidSubmissionError) return invalidField('body', error.path, error.problem);
  if (error instanceof SubmitQueueFullError) {
    return unavailable(
      `ix is overloaded: ${error.limit} submissions already wait for the database (IX_API_MAX_PENDING_SUBMITS); retry shortly`,
    );
  }
  if (isDatabaseUnavailable(error)) {
    return unavailable('the database is unavailable or did not answer in time; retry shortly');
  }
  if (error.validation) {
    const details = validationDetails(error);
    return new ApiError(400, 'invalid_request', summarize(details), details);
  }
  // JSON allows strings PostgreSQL cannot store (\u0000): the client's mistake, not ours.
  if (error.code === '22P05' || error.code === '22021') {
    return new ApiError(
      400,
      'invalid_request',
      'the request holds text PostgreSQL cannot store (such as \\u0000 in a string); remove it',
    );
  }
  const known = error.code ? FRAMEWORK_ERRORS[error.code] : undefined;
  if (known) {
    const message = known.message || `the body is larger than ${maxBodyBytes} bytes (IX_MAX_BODY_BYTES)`;
    return new ApiError(known.status, known.code, message);
  }
  // Any other error fastify marks as the client's (e.g. a malformed header) keeps its status.
  if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) {
    return new ApiError(error.statusCode, 'invalid_request', error.message);
  }
  return null;
}

const INTERNAL: ErrorBody = { error: { code: 'internal', message: 'internal server error' } };

/**
 * Installs the error handler and the not-found handler. A path that exists under another method
 * answers 405 with `Allow`; the routes are learned from `onRoute`, so nothing is listed twice.
 */
export function installErrorHandling(app: FastifyInstance, maxBodyBytes: number): void {
  const routes: { pattern: RegExp; method: string; literal: boolean }[] = [];
  app.addHook('onRoute', (route) => {
    const source = route.url
      .split('/')
      .map((part) =>
        part === '*' ? '.*' : part.startsWith(':') ? '[^/]+' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'),
      )
      .join('/');
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    const literal = !/[:*]/.test(route.url);
    for (const method of methods) routes.push({ pattern: new RegExp(`^${source}$`), method, literal });
  });

  app.setErrorHandler((error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const mapped = toApiError(error, maxBodyBytes);
    if (mapped) {
      // The fields before the spread, not after it (a refusal can come by the thousand, a 429 say):
      // see addLogContext.
      const context = { status: mapped.statusCode, code: mapped.code, ...request.logContext };
      // An outage is not the client's doing: its cause is logged, for whoever is on call.
      if (mapped !== error && mapped.statusCode >= 500)
        request.log.warn({ err: error, ...context }, mapped.message);
      else request.log.info(context, mapped.message);
      return reply.code(mapped.statusCode).headers(mapped.headers).send(mapped.toBody());
    }
    request.log.error({ ...request.logContext, err: error }, 'internal error');
    return reply.code(500).send(INTERNAL);
  });

  app.setNotFoundHandler((request: FastifyRequest, reply: FastifyReply) => {
    const path = request.url.split('?')[0] ?? '/';
    // A path spelled out by a route is that route's (POST /jobs/cancel), even where a parameter
    // would match it too (GET /jobs/{job_id}): the router prefers it the same way.
    const matching = routes.filter((r) => r.pattern.test(path));
    const literal = matching.filter((r) => r.literal);
    const allowed = [...new Set((literal.length > 0 ? literal : matching).map((r) => r.method))];
    if (allowed.length > 0) {
      const error = new ApiError(
        405,
        'method_not_allowed',
        `${request.method} is not allowed on ${path}; use ${allowed.join(', ')}`,
        undefined,
        { allow: allowed.join(', ') },
      );
      return reply.code(405).headers(error.headers).send(error.toBody());
    }
    const error = new ApiError(404, 'not_found', `no route ${request.method} ${path}`);
    return reply.code(404).send(error.toBody());
  });
}
