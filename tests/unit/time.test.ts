import { execFile } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { Pace, settlesWithin, sleep, withTimeout } from '../../src/time.js';

class TimedOut extends Error {}
const never = () => new Promise<never>(() => {});

describe('withTimeout', () => {
  it('times out a hanging promise among many of the same duration, not before its time', async () => {
    const ms = 60;
    const started = performance.now();
    const quick = Array.from({ length: 50 }, (_, i) =>
      withTimeout(
        sleep(i % 5).then(() => i),
        ms,
        () => new TimedOut(),
      ),
    );
    const hanging = withTimeout(never(), ms, () => new TimedOut());
    const hangingSettled = hanging.then(
      () => performance.now(),
      (error: unknown) => {
        expect(error).toBeInstanceOf(TimedOut);
        return performance.now();
      },
    );
    expect(await Promise.all(quick)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    const elapsed = (await hangingSettled) - started;
    expect(elapsed).toBeGreaterThanOrEqual(ms);
    expect(elapsed).toBeLessThan(ms + 1_000);
  });

  it('times out the later of two hanging promises once the first has settled', async () => {
    let settleFirst: (value: string) => void = () => {};
    const first = withTimeout(
      new Promise<string>((resolve) => {
        settleFirst = resolve;
      }),
      80,
      () => new TimedOut(),
    );
    await sleep(20);
    const started = performance.now();
    const second = withTimeout(never(), 80, () => new TimedOut('second'));
    settleFirst('first');
    expect(await first).toBe('first');
    await expect(second).rejects.toThrow('second');
    // Due 80 ms after it was set, though the timer was armed for the first, 20 ms earlier.
    expect(performance.now() - started).toBeGreaterThanOrEqual(80);
  });

  it('passes a rejection through, and keeps each duration to its own time', async () => {
    await expect(
      withTimeout(Promise.reject(new Error('failed')), 1_000, () => new TimedOut()),
    ).rejects.toThrow('failed');
    const order: string[] = [];
    const long = withTimeout(never(), 90, () => new TimedOut()).catch(() => order.push('90 ms'));
    const short = withTimeout(never(), 30, () => new TimedOut()).catch(() => order.push('30 ms'));
    await Promise.all([long, short]);
    expect(order).toEqual(['30 ms', '90 ms']);
    expect(await settlesWithin(never(), 10)).toBe(false);
    // As setTimeout takes it: at once.
    expect(await settlesWithin(never(), Number.NaN)).toBe(false);
    expect(await settlesWithin(Promise.reject(new Error('settled')), 10)).toBe(true);
  });

  it('does not keep the process alive once its promises have settled', async () => {
    const script = [
      "const { withTimeout } = await import('./src/time.ts');",
      "await withTimeout(Promise.resolve(1), 60_000, () => new Error('late'));",
      "await withTimeout(new Promise((r) => setTimeout(r, 5)), 60_000, () => new Error('late'));",
    ].join('\n');
    const started = performance.now();
    await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: process.cwd(),
      timeout: 30_000,
    });
    expect(performance.now() - started).toBeLessThan(20_000);
  });
});

describe('Pace', () => {
  it('lets the first start at once, then makes the next wait the interval from the last start', () => {
    let intervalMs = 20;
    const pace = new Pace(() => intervalMs);
    expect(pace.waitMs(1_000)).toBe(0);
    pace.paced(1_000);
    expect(pace.waitMs(1_005)).toBe(15);
    expect(pace.waitMs(1_020)).toBe(0);
    // Read at every call: more live workers, a longer wait.
    intervalMs = 80;
    expect(pace.waitMs(1_020)).toBe(60);
    pace.unpaced();
    expect(pace.waitMs(1_020)).toBe(0);
  });
});
