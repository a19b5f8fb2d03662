/**
 * What an insert sends and what it gives back: a batch of submissions as INSERT_SQL's one
 * parameter takes it, and each new job as it reads back, written from what was sent.
 */
import type { Job, JsonValue, RequestIX } from '../../contracts/index.js';
import { runAfterOf } from './hydrate.js';
import type { Submission } from './insert.js';

/**
 * A batch as $1 of INSERT_SQL takes it: one array a column, in submission order. The optional
 * columns are left out (undefined) when every value in them is the column's default (null).
 */
interface BatchColumns {
  job_id: string[];
  ix_id: string[];
  client_id: string[];
  request_id: string[];
  input: JsonValue[];
  callback_url: (string | null)[] | undefined;
  run_after: (string | null)[] | undefined;
  delay_seconds: (number | null)[] | undefined;
  max_attempts: (number | null)[] | undefined;
  priority: (number | null)[] | undefined;
}

/** A submission's input: a missing one is JSON null. */
export function inputOf(request: RequestIX): JsonValue {
  return request.input === undefined ? null : request.input;
}

/** `values`, or undefined when every one is null (the column's default). */
function optional<T>(values: (T | null)[]): (T | null)[] | undefined {
  return values.some((value) => value !== null) ? values : undefined;
}

/** The batch as INSERT_SQL takes it, with the ids the server assigns each submission. */
export function batchColumns(
  submissions: readonly Submission[],
  jobIds: string[],
  ixIds: string[],
): BatchColumns {
  return {
    job_id: jobIds,
    ix_id: ixIds,
    client_id: submissions.map((s) => s.request.ix_client_id),
    request_id: submissions.map((s) => s.request.request_id),
    input: submissions.map((s) => inputOf(s.request)),
    callback_url: optional(submissions.map((s) => s.callbackUrl)),
    run_after: optional(submissions.map((s) => s.runAfter ?? null)),
    delay_seconds: optional(submissions.map((s) => s.delaySeconds ?? null)),
    max_attempts: optional(submissions.map((s) => s.maxAttempts ?? null)),
    priority: optional(submissions.map((s) => s.priority || null)),
  };
}

/**
 * A job just inserted, as `hydrate` reads it back: the submission, the ids it was given, the
 * column defaults, and what PostgreSQL decided. Written out rather than spread into a row for
 * `hydrate`: the spread and the checks of values ix itself generated took ~25 µs a job, most of a
 * bulk submit's CPU in Node (CPU profile of 1,000-job inserts).
 */
export function pendingJob(
  { request, callbackUrl, maxAttempts, priority }: Submission,
  jobId: string,
  ixId: string,
  createdAt: string,
  storedRunAfter: string | null,
): Job {
  return {
    job_id: jobId,
    ix_id: ixId,
    client_id: request.ix_client_id,
    request_id: request.request_id,
    status: 'pending',
    request: {
      ix_client_id: request.ix_client_id,
      request_id: request.request_id,
      ix_id: ixId,
      input: inputOf(request),
    },
    response: null,
    callback_url: callbackUrl,
    callback_status: null,
    callback_attempts: null,
    attempts: 0,
    max_attempts: maxAttempts ?? null,
    priority: priority ?? 0,
    run_after: runAfterOf({ run_after: storedRunAfter, status: 'pending' }),
    last_error: null,
    progress: null,
    attempt_history: [],
    created_at: createdAt,
    started_at: null,
    finished_at: null,
  };
}
