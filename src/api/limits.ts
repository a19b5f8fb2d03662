/**
 * The two limits a submit meets before the insert batcher: each client's submit rate, and its
 * max_pending. Both are by the job's client (request.ix_client_id), whoever the caller is.
 * - Rate: a token bucket per client in this process's memory. Per process, not global: a global
 *   bucket would update one row (a lock on a hot row, and its WAL) on every submit, the API's hot
 *   path; N processes behind a balancer let a client reach N × its rate, so set it to the total
 *   ÷ N.
 * - max_pending: the client's queued jobs, counted (up to the limit) at most PENDING_CACHE_MS ago,
 *   plus the submits this process let through since. It can be exceeded by other processes'
 *   submits within that window, and by submits still uncommitted when the count was read. A
 *   client at its limit may still replay a request it already submitted: the refusal is made only
 *   once a look-up finds no job (nor tombstone) under its request id.
 */
import type pg from 'pg';
import {
  clientQueuedCount,
  jobGetByCorrelation,
  tombstoneGetByCorrelation,
  withClientWithin,
} from '../store/index.js';
import type { EffectiveLimits } from './directory.js';
import { ApiError } from './errors.js';

/** How old a client's count of queued jobs may be before it is read again. */
export const PENDING_CACHE_MS = 1_000;

/** Buckets kept before the full ones (as good as new) are dropped. */
const MAX_IDLE_BUCKETS = 10_000;

/** `capacity` tokens at most, `rate` more a second; a submit takes one. */
export class TokenBucket {
  private tokens: number;

  constructor(
    private rate: number,
    private capacity: number,
    private at: number,
  ) {
    this.tokens = capacity;
  }

  /** Takes a new rate or size (a client's settings changed), keeping the tokens it has. */
  reshape(rate: number, capacity: number): void {
    if (rate === this.rate && capacity === this.capacity) return;
    this.rate = rate;
    this.capacity = capacity;
    this.tokens = Math.min(this.tokens, capacity);
  }

  private refill(nowMs: number): void {
    const elapsed = Math.max(0, nowMs - this.at) / 1000;
    this.tokens = Math.min(this.capacity, this.tokens + elapsed * this.rate);
    this.at = Math.max(this.at, nowMs);
  }

  /** Takes a token: 0 when there was one, else the whole seconds (at least 1) until there is. */
  take(nowMs: number): number {
    this.refill(nowMs);
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - this.tokens) / this.rate));
  }

  /** Whether it is full: then dropping it changes nothing. */
  full(nowMs: number): boolean {
    this.refill(nowMs);
    return this.tokens >= this.capacity;
  }
}

export interface SubmitLimitsOptions {
  pool: pg.Pool;
  limitsOf: (clientId: string) => EffectiveLimits;
  /** The look-ups answer within it, as every statement of the API (IX_API_DEADLINE_SECONDS). */
  deadlineMs: number;
  now?: () => number;
}

interface PendingCount {
  count: number;
  readAt: number;
}

export class SubmitLimits {
  private readonly buckets = new Map<string, TokenBucket>();
  private readonly pending = new Map<string, PendingCount>();
  /** One read of a client's count at a time, shared by the submits that need it. */
  private readonly reading = new Map<string, Promise<PendingCount>>();
  private readonly now: () => number;

  constructor(private readonly options: SubmitLimitsOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Throws 429 `rate_limited` or `too_many_pending` for a submit as `clientId` past its limits. */
  async admit(clientId: string, requestId: string): Promise<void> {
    const limits = this.options.limitsOf(clientId);
    if (limits.rate !== null) this.takeToken(clientId, limits.rate, limits.burst);
    if (limits.maxPending !== null) await this.holdPendingPlace(clientId, requestId, limits.maxPending);
  }

  private takeToken(clientId: string, rate: number, burst: number): void {
    const now = this.now();
    let bucket = this.buckets.get(clientId);
    if (!bucket) {
      if (this.buckets.size >= MAX_IDLE_BUCKETS) this.dropFullBuckets(now);
      bucket = new TokenBucket(rate, burst, now);
      this.buckets.set(clientId, bucket);
    } else bucket.reshape(rate, burst);
    const waitSeconds = bucket.take(now);
    if (waitSeconds === 0) return;
    throw new ApiError(
      429,
      'rate_limited',
      `client "${clientId}" is over its submit rate (${rate} a second on this API process); retry after ${waitSeconds} s`,
      undefined,
      { 'retry-after': String(waitSeconds) },
    );
  }

  private dropFullBuckets(now: number): void {
    for (const [clientId, bucket] of this.buckets) if (bucket.full(now)) this.buckets.delete(clientId);
  }

  private async holdPendingPlace(clientId: string, requestId: string, limit: number): Promise<void> {
    const counted = await this.pendingCount(clientId, limit);
    if (counted.count < limit) {
      counted.count += 1;
      return;
    }
    // A replay of a request already submitted is answered by the insert, as without the limit.
    if (await this.submittedBefore(clientId, requestId)) return;
    throw new ApiError(
      429,
      'too_many_pending',
      `client "${clientId}" already has ${limit} jobs waiting to run (its max_pending); submit again once some have started`,
    );
  }

  private async pendingCount(clientId: string, limit: number): Promise<PendingCount> {
    const now = this.now();
    const cached = this.pending.get(clientId);
    if (cached && now - cached.readAt < PENDING_CACHE_MS) return cached;
    let read = this.reading.get(clientId);
    if (!read) {
      read = this.readCount(clientId, limit, now).finally(() => this.reading.delete(clientId));
      this.reading.set(clientId, read);
    }
    return read;
  }

  private async readCount(clientId: string, limit: number, now: number): Promise<PendingCount> {
    const count = await withClientWithin(this.options.pool, this.options.deadlineMs, (db) =>
      clientQueuedCount(db, clientId, limit),
    );
    if (this.pending.size >= MAX_IDLE_BUCKETS) {
      for (const [id, entry] of this.pending)
        if (now - entry.readAt >= PENDING_CACHE_MS) this.pending.delete(id);
    }
    const entry = { count, readAt: now };
    this.pending.set(clientId, entry);
    return entry;
  }

  private async submittedBefore(clientId: string, requestId: string): Promise<boolean> {
    return withClientWithin(this.options.pool, this.options.deadlineMs, async (db) => {
      if (await jobGetByCorrelation(db, clientId, requestId)) return true;
      return (await tombstoneGetByCorrelation(db, clientId, requestId)) !== null;
    });
  }
}
