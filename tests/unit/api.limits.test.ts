/** The submit rate's token bucket, and the limits a client gets from its entry and the defaults. */
import { describe, expect, it } from 'vitest';
import { effectiveLimits } from '../../src/api/directory.js';
import { TokenBucket } from '../../src/api/limits.js';
import type { ClientRecord } from '../../src/store/index.js';

describe('TokenBucket', () => {
  it('lets a full burst through at once, then refuses, naming the whole seconds to wait', () => {
    const bucket = new TokenBucket(2, 3, 0);
    expect([bucket.take(0), bucket.take(0), bucket.take(0)]).toEqual([0, 0, 0]);
    // Empty: one token comes back in 0.5 s, rounded up to a whole second.
    expect(bucket.take(0)).toBe(1);
  });

  it('refills at its rate, never above its size', () => {
    const bucket = new TokenBucket(2, 3, 0);
    for (let i = 0; i < 3; i++) bucket.take(0);
    expect(bucket.take(499)).toBe(1);
    expect(bucket.take(500)).toBe(0);
    expect(bucket.take(500)).toBe(1);
    // A long idle time fills it to its size only.
    expect(bucket.full(60_000)).toBe(true);
    expect([bucket.take(60_000), bucket.take(60_000), bucket.take(60_000), bucket.take(60_000)]).toEqual([
      0, 0, 0, 1,
    ]);
  });

  it('a slow rate answers the seconds until its next token, at least 1', () => {
    const bucket = new TokenBucket(0.1, 1, 0);
    expect(bucket.take(0)).toBe(0);
    expect(bucket.take(0)).toBe(10);
    expect(bucket.take(7_500)).toBe(3);
    expect(bucket.take(9_999)).toBe(1);
    expect(bucket.take(10_000)).toBe(0);
  });

  it('a clock going back neither adds tokens nor takes them', () => {
    const bucket = new TokenBucket(1, 1, 10_000);
    expect(bucket.take(10_000)).toBe(0);
    expect(bucket.take(5_000)).toBe(1);
    expect(bucket.take(11_000)).toBe(0);
  });

  it('reshape keeps the tokens it has, capped at the new size', () => {
    const bucket = new TokenBucket(1, 10, 0);
    bucket.reshape(1, 2);
    expect([bucket.take(0), bucket.take(0), bucket.take(0)]).toEqual([0, 0, 1]);
    bucket.reshape(100, 2);
    expect(bucket.take(10)).toBe(0);
  });
});

describe('effectiveLimits', () => {
  const defaults = { maxRunning: 5, maxPending: 100, rate: 10, rateBurst: null, refreshSeconds: 30 };
  const record = (over: Partial<ClientRecord>): ClientRecord => ({
    clientId: 'a',
    weight: 4,
    maxRunning: null,
    maxPending: null,
    ratePerSecond: null,
    disabled: false,
    createdAt: new Date(),
    updatedAt: new Date(),
    keys: [],
    ...over,
  });

  it('a client outside the table gets the defaults; the burst is a second of its rate', () => {
    expect(effectiveLimits(undefined, defaults)).toEqual({
      weight: 1,
      maxRunning: 5,
      maxPending: 100,
      rate: 10,
      burst: 10,
    });
  });

  it("a client's own settings win over the defaults; a slow rate still bursts 1", () => {
    expect(effectiveLimits(record({ maxPending: 2, ratePerSecond: 0.2 }), defaults)).toEqual({
      weight: 4,
      maxRunning: 5,
      maxPending: 2,
      rate: 0.2,
      burst: 1,
    });
    expect(effectiveLimits(record({}), { ...defaults, rateBurst: 50 }).burst).toBe(50);
  });

  it('no defaults and no settings: no limit', () => {
    const none = { maxRunning: null, maxPending: null, rate: null, rateBurst: null, refreshSeconds: 30 };
    expect(effectiveLimits(undefined, none)).toMatchObject({
      maxRunning: null,
      maxPending: null,
      rate: null,
    });
  });
});
