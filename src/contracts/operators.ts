/**
 * What operators and a client's own listing read: job summaries, pages of them, the actions of
 * operators on a job, and the overview.
 */
import { z } from 'zod';
import { ClientIdSchema, JobSchema, timestamp } from './index.js';

/** A job as a list shows it: no input, no result. */
export const JobSummarySchema = JobSchema.pick({
  job_id: true,
  ix_id: true,
  client_id: true,
  request_id: true,
  status: true,
  attempts: true,
  callback_status: true,
  created_at: true,
  started_at: true,
  finished_at: true,
})
  .extend({
    error: z
      .string()
      .nullable()
      .meta({ description: 'The error that ended the job, or of its last retried run; null if none' }),
  })
  .meta({ id: 'JobSummary' });
export type JobSummary = z.infer<typeof JobSummarySchema>;

export const JobPageSchema = z
  .strictObject({
    jobs: z.array(JobSummarySchema).meta({ description: 'Newest first' }),
    next_cursor: z
      .uuid()
      .nullable()
      .meta({ description: 'Pass as `cursor` for the next page; null on the last page' }),
  })
  .meta({ id: 'JobPage' });
export type JobPage = z.infer<typeof JobPageSchema>;

export const OPERATOR_ACTIONS = ['retry'] as const;

/** Something an operator did to a job. */
export const OperatorActionSchema = z
  .strictObject({
    action: z.enum(OPERATOR_ACTIONS),
    by: z.string().meta({ description: 'The operator: the name of its key in IX_ADMIN_KEYS, or "open"' }),
    at: timestamp,
  })
  .meta({ id: 'OperatorAction' });
export type OperatorAction = z.infer<typeof OperatorActionSchema>;

export const AdminJobSchema = z
  .strictObject({
    job: JobSchema,
    operator_actions: z.array(OperatorActionSchema).meta({ description: 'Oldest first' }),
  })
  .meta({ id: 'AdminJob' });
export type AdminJob = z.infer<typeof AdminJobSchema>;

const count = z.number().int().min(0);

export const OverviewSchema = z
  .strictObject({
    generated_at: timestamp,
    jobs: z.strictObject({
      pending: count.meta({ description: 'Queued, or claimed by a worker that has not started them' }),
      running: count,
      oldest_pending_seconds: z
        .number()
        .nullable()
        .meta({ description: 'How long the job that became ready first has waited; null: none waits' }),
    }),
    last_hour_as_of: timestamp.meta({
      description: 'When last_hour and clients were read: they are reused for up to 10 seconds',
    }),
    last_hour: z
      .strictObject({
        submitted: count,
        done: count,
        error: count,
        cancelled: count,
        failure_rate: z.number().nullable().meta({ description: 'error ÷ (done + error); null: none ended' }),
        queue_wait_p50_ms: z.number().nullable(),
        queue_wait_p95_ms: z.number().nullable(),
        by_minute: z.array(
          z.strictObject({ minute: timestamp, done: count, error: count, cancelled: count }),
        ),
      })
      .meta({
        description:
          'Jobs submitted in the last hour: how they ended, by the minute they finished, and how long their first run waited to start',
      }),
    workers: z.array(
      z.strictObject({
        worker_id: z.uuid(),
        hostname: z.string(),
        pid: z.number().int(),
        started_at: timestamp,
        heartbeat_age_seconds: z.number(),
        held: count.meta({ description: 'Jobs it has claimed, started or not' }),
      }),
    ),
    callbacks: z.strictObject({
      due: count.meta({ description: 'Deliveries due now' }),
      failing: count.meta({ description: 'Deliveries still to make after at least one failed attempt' }),
    }),
    clients: z
      .array(
        z.strictObject({
          client_id: ClientIdSchema,
          pending: count,
          running: count,
          submitted_last_hour: count,
          error_last_hour: count,
        }),
      )
      .meta({
        description: 'The 50 clients with the most pending jobs, then the most submitted in the last hour',
      }),
  })
  .meta({ id: 'Overview' });
export type Overview = z.infer<typeof OverviewSchema>;
