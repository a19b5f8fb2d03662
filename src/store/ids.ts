import { randomFillSync } from 'node:crypto';

/**
 * CSPRNG bytes drawn 4 KiB at a time: a `randomBytes` call per id (two per submitted job) costs
 * the API measurably, most of it per-call overhead (docs/design.md, "Costs measured on the hot
 * path").
 * Bytes are handed out once each and the pool is refilled when spent, as Node's randomUUID does.
 */
const POOL_BYTES = 4096;
const pool = Buffer.alloc(POOL_BYTES);
let offset = POOL_BYTES;

/** Where `bytes` fresh random bytes start in `pool`. */
function take(bytes: number): number {
  if (offset + bytes > POOL_BYTES) {
    randomFillSync(pool);
    offset = 0;
  }
  offset += bytes;
  return offset - bytes;
}

/** An ix_id's time is counted in steps of this many milliseconds. */
const IX_ID_TICK_MS = 4;

/**
 * 16 lowercase hex characters, the job's handle in logs and responses: the 4 ms it was drawn in
 * (8 characters, counting 4 ms steps modulo 2^32, about 199 days) and 32 bits from a CSPRNG. New
 * ix_ids so fall at the right end of the unique index on ix_id, as new job ids do in the primary
 * key's: drawn by the second, a second's ids landed at random among one another, and the index's
 * pages split half full (23 of a job's ~1,220 bytes of WAL in `bench:worker`). Two ids collide as
 * often as they did with the second and 40 random bits (4 ms ÷ 2^32 ≈ 1 s ÷ 2^40); the insert
 * draws again when they do.
 */
export function newIxId(now = Date.now()): string {
  const start = take(4);
  const tick = Math.floor(now / IX_ID_TICK_MS) % 0x100000000;
  return tick.toString(16).padStart(8, '0') + pool.toString('hex', start, start + 4);
}

/**
 * A UUIDv7 (RFC 9562): time-ordered, so new primary-key entries land on the right-most b-tree
 * page instead of a random one, which keeps inserts from touching (and logging) pages all
 * over the index.
 */
export function newJobId(now = Date.now()): string {
  const start = take(16);
  const bytes = Buffer.from(pool.subarray(start, start + 16));
  bytes.writeUIntBE(now, 0, 6);
  bytes[6] = 0x70 | (bytes[6]! & 0x0f);
  bytes[8] = 0x80 | (bytes[8]! & 0x3f);
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * The least UUIDv7 of the millisecond `ms`: every job id drawn at `ms` or later sorts at or after
 * it, so a range of submission times is a range of the primary key.
 */
export function jobIdAt(ms: number): string {
  const hex = Math.max(0, Math.floor(ms)).toString(16).padStart(12, '0');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-7000-8000-000000000000`;
}
