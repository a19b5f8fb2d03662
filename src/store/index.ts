export {
  type CallbackAttemptOutcome,
  type CallbackClaim,
  type CallbackClaimOptions,
  callbackClaimDue,
  callbackPendingCount,
  callbackRecordAttempt,
} from './callbacks.js';
export {
  type CreatePoolOptions,
  createPool,
  DatabaseUnreachableError,
  type Db,
  databaseCreateIfMissing,
  openPool,
  withoutPassword,
  withTransaction,
} from './db.js';
export { type EmbeddedPostgres, EmbeddedPostgresError, startEmbeddedPostgres } from './embedded.js';
export {
  CorruptJobError,
  claimNextPending,
  claimPending,
  completeMany,
  get,
  getByCorrelation,
  type Held,
  IdempotencyConflictError,
  type InsertResult,
  insertPending,
  insertPendingMany,
  markDone,
  markError,
  notifyPending,
  type Outcome,
  PENDING_CHANNEL,
  PendingNotifier,
  releaseJobs,
  type Submission,
  type SweepOptions,
  type SweepResult,
  sweepOrphans,
  updateCallbackStatus,
  workerHeartbeat,
  workerPruneStale,
  workerRemove,
} from './jobs.js';
export { LATEST_VERSION, MigrationError, migrateDown, migrateUp, schemaVersion } from './migrate.js';
export { Submitter, type SubmitterOptions } from './submitter.js';
