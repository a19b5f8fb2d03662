/**
 * The store: all of ix's SQL. Every function takes the caller's pool, client or transaction
 * (`Db`); the caller commits.
 * - jobs/insert.ts    submitting jobs, idempotent on (client_id, request_id)
 * - jobs/claim.ts     claiming pending jobs for a worker (its shared steps: jobs/claim-steps.ts)
 * - jobs/start.ts     starting claimed jobs
 * - jobs/complete.ts  recording outcomes, fenced on the claim that ran the job
 * - jobs/cancel.ts    cancelling jobs: pending ones at once, running ones through their worker
 * - jobs/sweep.ts     handing jobs back: the sweep of dead or stuck workers, a worker's release
 * - jobs/read.ts      looking jobs up
 * - jobs/prune.ts     retention: expired jobs pruned to tombstones, expired tombstones removed
 * - jobs/tombstones.ts  what is left of a pruned job, holding its key
 * - jobs/hydrate.ts   job rows: the columns read, their check against the Job contract
 * - admin.ts          what operators read and do: job search, the overview, a retry
 * - notify.ts         waking workers when jobs become pending, telling watchers of changes
 * - watchers.ts       the processes with someone waiting on a job
 * - workers.ts        the worker registry and its heartbeats
 * - callbacks.ts      the callback delivery queue and each job's attempt log
 * - clients.ts        clients as data: their settings, limits and key digests (ix clients)
 * - db.ts             pools and transactions
 * - availability.ts   when PostgreSQL cannot serve: statements bounded in time, failures classified
 * - migrate.ts, migrations/  the schema and its versions
 */

export {
  IX_ID_PREFIX_PATTERN,
  type JobSearch,
  type JobSearchPage,
  jobSearch,
  type LiveCounts,
  liveCounts,
  overviewRead,
  type RecentFigures,
  recentFigures,
} from './admin.js';
export {
  DatabaseUnavailableError,
  isDatabaseUnavailable,
  isTransientDatabaseError,
  withClientWithin,
} from './availability.js';
export {
  type CallbackAttemptOutcome,
  type CallbackClaim,
  type CallbackClaimOptions,
  callbackClaimDue,
  callbackRecordAttempt,
} from './callbacks.js';
export {
  CLIENT_KEY_PREFIX,
  CLIENTS_CHANNEL,
  ClientExistsError,
  ClientKeyError,
  type ClientKeyInfo,
  ClientNotFoundError,
  type ClientRecord,
  type ClientSettings,
  type ClientsSnapshot,
  clientAdd,
  clientGet,
  clientKeyAdd,
  clientKeyGenerate,
  clientKeyRevoke,
  clientQueuedCount,
  clientSetDisabled,
  clientsRead,
  clientUpdate,
  KEY_ID_LENGTH,
  keyDigest,
  keyIdOf,
} from './clients.js';
export {
  type CreatePoolOptions,
  checkServerSettings,
  closePool,
  createPool,
  DatabaseUnreachableError,
  type Db,
  databaseCreateIfMissing,
  openPool,
  withoutPassword,
  withTransaction,
} from './db.js';
export {
  CANCELLED_ERROR,
  JobFinishedError,
  jobCancel,
  jobCancelEnding,
  unlessFinished,
} from './jobs/cancel.js';
export {
  type Claimed,
  type ClaimedJob,
  type ClaimOptions,
  jobClaimMany,
  jobNextReadyInMs,
} from './jobs/claim.js';
export { jobCompleteMany, type Outcome, outcomeKey, storedResponseJson } from './jobs/complete.js';
export { CorruptJobError } from './jobs/hydrate.js';
export {
  type Admitted,
  IdempotencyConflictError,
  type InsertResult,
  jobInsertMany,
  type Pruned,
  type Submission,
} from './jobs/insert.js';
export { JobNotFailedError, jobGetWithActions, jobRetry } from './jobs/operator-retry.js';
export { jobProgressMany, type ProgressUpdate } from './jobs/progress.js';
export {
  jobPruneExpired,
  type PruneOptions,
  type PruneResult,
  type RetentionPolicy,
} from './jobs/prune.js';
export { jobGet, jobGetByCorrelation, jobGetMany } from './jobs/read.js';
export { jobStartMany } from './jobs/start.js';
export {
  type Held,
  jobReleaseMany,
  jobSweepOrphans,
  type SweepOptions,
  type SweepResult,
} from './jobs/sweep.js';
export { JobGoneError, tombstoneGet, tombstoneGetByCorrelation } from './jobs/tombstones.js';
export { type ChannelHandlers, Listener } from './listener.js';
export { LATEST_VERSION, MigrationError, migrateDown, migrateUp, schemaVersion } from './migrate.js';
export {
  CANCEL_CHANNEL,
  CHANGED_CHANNEL,
  jobNotifyChanged,
  jobNotifyPending,
  Notifier,
  notifyChangedProbe,
  PENDING_CHANNEL,
} from './notify.js';
export { watcherRegister, watcherRemove } from './watchers.js';
export { type Beat, workerHeartbeat, workerPruneStale, workerRemove } from './workers.js';
