import { randomBytes } from 'node:crypto';

/** 16 lowercase hex characters from a CSPRNG: the job's handle in logs and responses. */
export function newIxId(): string {
  return randomBytes(8).toString('hex');
}

/**
 * A UUIDv7 (RFC 9562): time-ordered, so new primary-key entries land on the right-most b-tree
 * page instead of a random one, which keeps inserts from touching (and logging) pages all
 * over the index.
 */
export function newJobId(now = Date.now()): string {
  const bytes = randomBytes(16);
  bytes.writeUIntBE(now, 0, 6);
  bytes[6] = 0x70 | (bytes[6]! & 0x0f);
  bytes[8] = 0x80 | (bytes[8]! & 0x3f);
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
