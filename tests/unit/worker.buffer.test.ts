import { describe, expect, it } from 'vitest';
import type { Claimed } from '../../src/store/index.js';
import { ClaimBuffer } from '../../src/worker/buffer.js';
import { type Claim, newClaim } from '../../src/worker/claim.js';

/** A claim as the store would hand it over; `rescues` > 0 makes one that runs alone. */
function claim(name: string, rescues = 0): Claim {
  const claimed: Claimed = {
    job: {
      job_id: name,
      ix_id: '0123456789abcdef',
      client_id: 'acme',
      request_id: name,
      request: { ix_client_id: 'acme', request_id: name, ix_id: '0123456789abcdef', input: null },
      attempts: rescues,
      priority: 0,
      callback_url: null,
      created_at: '2026-12-01T00:00:00.000Z',
    },
    started: false,
    claimEpoch: 0,
    rescues,
    inputBytes: 0,
    waitedSeconds: 0,
    limited: false,
    leaseId: '1',
  };
  return newClaim(claimed);
}

const names = (claims: readonly (Claim | null)[]) => claims.map((c) => c?.job.job_id ?? null);

describe('ClaimBuffer', () => {
  it('starts the oldest first, only into free slots', () => {
    const buffer = new ClaimBuffer();
    for (const name of ['a', 'b', 'c']) buffer.add(claim(name));
    expect(names([buffer.next(0, 2), buffer.next(1, 2), buffer.next(2, 2)])).toEqual(['a', 'b', null]);
    expect(buffer.length).toBe(1);
    expect(names([buffer.next(1, 2)])).toEqual(['c']);
  });

  it('starts a claim that runs alone only once nothing runs, and nothing after it until it has ended', () => {
    const buffer = new ClaimBuffer();
    const rescued = claim('rescued', 1);
    buffer.add(rescued);
    buffer.add(claim('after'));
    expect(buffer.next(1, 10)).toBeNull();
    expect(buffer.next(0, 10)).toBe(rescued);
    expect(buffer.next(0, 10)).toBeNull();
    buffer.ended(claim('another'));
    expect(buffer.next(0, 10)).toBeNull();
    buffer.ended(rescued);
    expect(names([buffer.next(0, 10)])).toEqual(['after']);
  });

  it('lets a claim go, and hands every waiting one over', () => {
    const buffer = new ClaimBuffer();
    const [a, b, c] = [claim('a'), claim('b'), claim('c')];
    for (const each of [a, b, c]) buffer.add(each);
    expect(buffer.remove(b)).toBe(true);
    expect(buffer.remove(b)).toBe(false);
    expect(names(buffer.takeAll())).toEqual(['a', 'c']);
    expect(buffer.length).toBe(0);
    expect(buffer.next(0, 10)).toBeNull();
  });
});
