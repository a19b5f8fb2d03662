/**
 * The wire format of ix, in one place: every request body is parsed through these schemas, and
 * every row read back from PostgreSQL is checked against them (snake_case on the wire).
 */
import { z } from 'zod';

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/**
 * Any JSON value. The body parser and JSONB only ever produce JSON, so this checks presence only
 * instead of walking every node of a large input on each hydration.
 */
const jsonValue = (what: string) =>
  z
    .custom<JsonValue>((value) => value !== undefined, { message: `${what} is required (any JSON value)` })
    .meta({ description: `${what}: any JSON value` });

export const IX_ID_PATTERN = /^[0-9a-f]{16}$/;

/** The lengths ix accepts, in characters: named once, checked on submit, in config and on read. */
export const LIMITS = {
  clientId: 128,
  requestId: 256,
  callbackUrl: 2_048,
  /** How far ahead `delay_seconds` may schedule a job: ten years. */
  delaySeconds: 315_360_000,
  progressStage: 100,
  progressMessage: 1_000,
  /** The most urgent `priority` (the column's CHECK in migration 13 says the same). */
  priority: 9,
} as const;

export const ClientIdSchema = z.string().min(1).max(LIMITS.clientId);
export const RequestIdSchema = z.string().min(1).max(LIMITS.requestId);

export const RequestIXSchema = z
  .strictObject({
    ix_client_id: ClientIdSchema,
    request_id: RequestIdSchema,
    ix_id: z
      .string()
      .max(64)
      .nullish()
      .meta({ description: 'Ignored on submit: the server always assigns its own.' }),
    input: jsonValue('input'),
  })
  .meta({ id: 'RequestIX' });
export type RequestIX = z.infer<typeof RequestIXSchema>;

export const ResponseIXSchema = z
  .strictObject({
    ix_id: z.string().regex(IX_ID_PATTERN),
    error: z.string().nullable().meta({ description: 'null means success' }),
    result: jsonValue('result').nullable(),
  })
  .meta({ id: 'ResponseIX' });
export type ResponseIX = z.infer<typeof ResponseIXSchema>;

export const JOB_STATUSES = ['pending', 'running', 'done', 'error', 'cancelled'] as const;
export const JobStatusSchema = z.enum(JOB_STATUSES);
/** The statuses a job never leaves. */
export const FINAL_STATUSES = ['done', 'error', 'cancelled'] as const satisfies readonly JobStatus[];
export type FinalStatus = (typeof FINAL_STATUSES)[number];
export type JobStatus = z.infer<typeof JobStatusSchema>;

export const CALLBACK_STATUSES = ['delivered', 'failed'] as const;
export const CallbackStatusSchema = z.enum(CALLBACK_STATUSES);
export type CallbackStatus = z.infer<typeof CallbackStatusSchema>;

/** An RFC 3339 time, with its offset: every time in the wire format. */
export const timestamp = z.iso.datetime({ offset: true });

/** One callback delivery attempt: an HTTP status, or the error that prevented or followed one. */
export const CallbackAttemptSchema = z
  .strictObject({
    attempt: z.number().int().min(1),
    at: timestamp,
    status_code: z.number().int().nullable(),
    error: z.string().nullable().meta({ description: 'null means delivered' }),
  })
  .meta({ id: 'CallbackAttempt' });
export type CallbackAttempt = z.infer<typeof CallbackAttemptSchema>;

export const RUN_OUTCOMES = [
  'running',
  'done',
  'error',
  'cancelled',
  'retry',
  'worker_lost',
  'interrupted',
] as const;
export const RunOutcomeSchema = z.enum(RUN_OUTCOMES).meta({
  description:
    'How the run ended. running: not yet; done, error, cancelled: it ended the job so; retry: it failed retryably and the job runs again at retry_at; worker_lost: its worker died or stalled and the job was rescued (charged an attempt); interrupted: its worker stopped gracefully and handed the job back (not charged: the next run has the same attempt number)',
});
export type RunOutcome = z.infer<typeof RunOutcomeSchema>;

/** One run of a job's pipeline. */
export const RunSchema = z
  .strictObject({
    attempt: z.number().int().min(1).meta({ description: 'The attempt this run was charged as, from 1' }),
    worker_id: z.uuid().nullable().meta({ description: 'The worker that ran it; null if unknown' }),
    started_at: timestamp,
    finished_at: timestamp.nullable().meta({ description: 'null while it runs' }),
    duration_ms: z.number().int().min(0).nullable().meta({ description: 'null while it runs' }),
    outcome: RunOutcomeSchema,
    error: z.string().nullable().meta({ description: 'Why it failed; null for a run that did not' }),
    retry_at: timestamp
      .nullable()
      .meta({ description: 'With outcome retry: the next run was due no earlier than this' }),
  })
  .meta({ id: 'Run' });
export type Run = z.infer<typeof RunSchema>;

/** What a pipeline reports of a run while it works (`ctx.progress`). */
export const ProgressReportSchema = z.strictObject({
  percent: z.number().min(0).max(100).nullish().meta({ description: 'How far along, 0 to 100' }),
  stage: z.string().max(LIMITS.progressStage).nullish().meta({ description: 'Which step it is on' }),
  message: z.string().max(LIMITS.progressMessage).nullish(),
});
export type ProgressReport = z.infer<typeof ProgressReportSchema>;

/** A running job's latest progress, as stored (at most about once a second per job). */
export const ProgressSchema = z
  .strictObject({
    percent: z.number().min(0).max(100).nullable(),
    stage: z.string().nullable(),
    message: z.string().nullable(),
    updated_at: timestamp,
  })
  .meta({ id: 'Progress' });
export type Progress = z.infer<typeof ProgressSchema>;

export const JobSchema = z
  .strictObject({
    job_id: z.uuid(),
    ix_id: z.string().regex(IX_ID_PATTERN),
    client_id: ClientIdSchema,
    request_id: RequestIdSchema,
    status: JobStatusSchema,
    request: RequestIXSchema.extend({ ix_id: z.string().regex(IX_ID_PATTERN) }),
    response: ResponseIXSchema.nullable(),
    callback_url: z.string().nullable(),
    callback_status: CallbackStatusSchema.nullable(),
    callback_attempts: z
      .array(CallbackAttemptSchema)
      .nullish()
      .meta({ description: 'Each callback attempt, oldest first; null before the first' }),
    attempts: z.number().int().min(0).meta({
      description:
        'Runs charged so far: each retried failure and each rescue from a worker that died while running it',
    }),
    max_attempts: z.number().int().min(1).nullable().meta({
      description: 'The budget of runs asked for at submit; null: the server’s IX_MAX_ATTEMPTS',
    }),
    priority: z.number().int().min(0).max(LIMITS.priority).meta({
      description: 'How urgent among its own client’s jobs, 0 (default) to 9: higher runs first',
    }),
    run_after: timestamp.nullable().meta({
      description:
        'A pending job’s next run is not before this (scheduled, or a retry’s backoff); null: due now',
    }),
    last_error: z.string().nullable().meta({
      description: 'The error of the last run that was retried; null if none was',
    }),
    progress: ProgressSchema.nullable().meta({
      description: 'What the pipeline last reported of the run in flight (or the last run); null if nothing',
    }),
    attempt_history: z.array(RunSchema).meta({
      description:
        'Every run of the job, oldest first: each retried failure, rescue and interrupted run, and the run in flight or the one that ended the job',
    }),
    created_at: timestamp,
    started_at: timestamp
      .nullable()
      .meta({ description: 'When the run in flight, or the one that ended the job, started' }),
    finished_at: timestamp.nullable(),
  })
  .meta({ id: 'Job' });
export type Job = z.infer<typeof JobSchema>;

/**
 * What is left of a job pruned after its retention: enough to say it existed, how it ended, and
 * to keep its `(client_id, request_id)` taken until `key_free_after`.
 */
export const TombstoneSchema = z
  .strictObject({
    job_id: z.uuid(),
    ix_id: z.string().regex(IX_ID_PATTERN),
    client_id: ClientIdSchema,
    request_id: RequestIdSchema,
    status: z.enum(FINAL_STATUSES).meta({ description: 'How the job ended' }),
    finished_at: timestamp,
    pruned_at: timestamp.meta({ description: 'When its request, response and callback log were deleted' }),
    key_free_after: timestamp.nullable().meta({
      description:
        'From then on this client_id and request_id may be submitted as a new job; null: never (tombstones kept forever)',
    }),
  })
  .meta({ id: 'Tombstone' });
export type Tombstone = z.infer<typeof TombstoneSchema>;

export { type JsonTextProblem, jsonTextProblems, MAX_JSON_DEPTH, toJsonPath } from './json-text.js';

/** The body of `POST /jobs` (and what `ix submit` reads): a request and where to call back. */
export const SubmitBodySchema = z
  .strictObject({
    request: RequestIXSchema,
    // Absent reads as null, by a transform rather than .default(null): the OpenAPI document would
    // carry the default, and openapi-typescript would make generated clients always send the field.
    callback_url: z
      .string()
      .max(LIMITS.callbackUrl)
      .nullish()
      .transform((url) => url ?? null)
      .meta({
        description:
          'Absolute http(s) URL that receives the signed outcome; null or absent for none. Literal non-public IPs are refused unless IX_CALLBACK_ALLOW_PRIVATE.',
      }),
    run_after: timestamp
      .nullish()
      .transform((at) => at ?? null)
      .meta({ description: 'Run the job no earlier than this (RFC 3339); not with delay_seconds.' }),
    delay_seconds: z
      .number()
      .min(0)
      .max(LIMITS.delaySeconds)
      .nullish()
      .transform((seconds) => seconds ?? null)
      .meta({ description: 'Run the job no earlier than this many seconds from now; not with run_after.' }),
    max_attempts: z
      .number()
      .int()
      .min(1)
      .nullish()
      .transform((n) => n ?? null)
      .meta({
        description:
          'How many runs the job may take (retries and rescues included), at most IX_MAX_ATTEMPTS_CAP; null or absent: IX_MAX_ATTEMPTS.',
      }),
    priority: z
      .number()
      .int()
      .min(0)
      .max(LIMITS.priority)
      .nullish()
      .transform((p) => p ?? 0)
      .meta({
        description:
          'How urgent among your own jobs, 0 to 9, higher first; null or absent: 0. It orders your jobs only, never another client’s: between clients the claim takes turns.',
      }),
  })
  .meta({ id: 'SubmitJob' });
export type SubmitBody = z.infer<typeof SubmitBodySchema>;
