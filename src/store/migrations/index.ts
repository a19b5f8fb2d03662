import { jobs } from './0001_jobs.js';
import { callbacks } from './0002_callbacks.js';
import { hotUpdates } from './0003_hot_updates.js';
import { claims } from './0004_claims.js';
import { requestDigest } from './0005_request_digest.js';
import { rescues } from './0006_rescues.js';
import { retries } from './0007_retries.js';
import { cancellation } from './0008_cancellation.js';
import { attemptHistory } from './0009_attempt_history.js';
import { retention } from './0010_retention.js';
import { progress } from './0011_progress.js';
import { operators } from './0012_operators.js';
import { clients } from './0013_clients.js';
import { batchLeases } from './0014_batch_leases.js';
import { storedResponses } from './0015_stored_responses.js';
import { requestDigestOnDemand } from './0016_request_digest_on_demand.js';
import { watchers } from './0017_watchers.js';
import type { Migration } from './types.js';

export type { Migration } from './types.js';

/** In version order; a new migration is appended here. */
export const MIGRATIONS: readonly Migration[] = [
  jobs,
  callbacks,
  hotUpdates,
  claims,
  requestDigest,
  rescues,
  retries,
  cancellation,
  attemptHistory,
  retention,
  progress,
  operators,
  clients,
  batchLeases,
  storedResponses,
  requestDigestOnDemand,
  watchers,
];
