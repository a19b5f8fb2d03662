/** The overview's last-hour figures are read at most once per 10 s, and never answered older than 30 s. */
import { describe, expect, it } from 'vitest';
import { RecentCache } from '../../src/api/admin.js';
import type { RecentFigures } from '../../src/store/index.js';

function figures(n: number): RecentFigures {
  return {
    as_of: new Date(n).toISOString(),
    last_hour: {
      submitted: n,
      done: 0,
      error: 0,
      cancelled: 0,
      failure_rate: null,
      queue_wait_p50_ms: null,
      queue_wait_p95_ms: null,
      by_minute: [],
    },
    clients: [],
  };
}

describe('RecentCache', () => {
  it('reads once for every request within 10 s, then answers the old figures while reading anew', async () => {
    let now = 0;
    let reads = 0;
    const cache = new RecentCache(
      async () => figures(++reads),
      () => now,
    );
    expect((await cache.get()).last_hour.submitted).toBe(1);
    now = 9_999;
    expect((await cache.get()).last_hour.submitted).toBe(1);
    expect(reads).toBe(1);
    now = 10_000;
    // Stale but young enough: answered at once, a fresh read started.
    expect((await cache.get()).last_hour.submitted).toBe(1);
    await new Promise((resolve) => setImmediate(resolve));
    expect(reads).toBe(2);
    expect((await cache.get()).last_hour.submitted).toBe(2);
  });

  it('waits for a fresh read once the figures are 30 s old, and reads once for concurrent requests', async () => {
    let now = 0;
    let reads = 0;
    const cache = new RecentCache(
      async () => figures(++reads),
      () => now,
    );
    await cache.get();
    now = 30_000;
    const [a, b] = await Promise.all([cache.get(), cache.get()]);
    expect([a.last_hour.submitted, b.last_hour.submitted]).toEqual([2, 2]);
    expect(reads).toBe(2);
  });

  it('keeps its figures when a background read fails, and reads again next time', async () => {
    let now = 0;
    let fail = false;
    let reads = 0;
    const cache = new RecentCache(
      async () => {
        reads += 1;
        if (fail) throw new Error('database down');
        return figures(reads);
      },
      () => now,
    );
    await cache.get();
    fail = true;
    now = 15_000;
    expect((await cache.get()).last_hour.submitted).toBe(1);
    await new Promise((resolve) => setImmediate(resolve));
    fail = false;
    expect((await cache.get()).last_hour.submitted).toBe(1);
    await new Promise((resolve) => setImmediate(resolve));
    expect((await cache.get()).last_hour.submitted).toBe(3);
  });
});
