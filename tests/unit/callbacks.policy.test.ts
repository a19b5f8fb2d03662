import { describe, expect, it } from 'vitest';
import { type AttemptResult, judge, nextDelaySeconds, parseRetryAfter } from '../../src/callbacks/index.js';

const response = (statusCode: number, retryAfterSeconds: number | null = null): AttemptResult => ({
  statusCode,
  retryAfterSeconds,
  error: statusCode < 300 ? null : `HTTP ${statusCode}`,
  retryable: true,
});

describe('judge', () => {
  it('2xx delivers; 408, 429, 5xx and no response retry; 410, other 4xx and 3xx fail at once', () => {
    for (const code of [200, 201, 204, 299]) expect(judge(response(code)).kind).toBe('delivered');
    for (const code of [408, 429, 500, 502, 503, 599]) expect(judge(response(code)).kind).toBe('retry');
    for (const code of [301, 302, 307, 400, 401, 403, 404, 410, 413, 422])
      expect(judge(response(code)).kind).toBe('failed');
    expect(
      judge({ statusCode: null, retryAfterSeconds: null, error: 'ECONNREFUSED', retryable: true }).kind,
    ).toBe('retry');
    expect(judge({ statusCode: null, retryAfterSeconds: null, error: 'refused', retryable: false })).toEqual({
      kind: 'failed',
      error: 'refused',
    });
  });
});

describe('parseRetryAfter', () => {
  const now = new Date('2030-01-01T00:00:00Z');
  it('reads delta-seconds and HTTP-dates, caps at a day and ignores nonsense', () => {
    expect(parseRetryAfter('120', now)).toBe(120);
    expect(parseRetryAfter('Tue, 01 Jan 2030 00:01:30 GMT', now)).toBe(90);
    expect(parseRetryAfter('Mon, 31 Dec 2029 00:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('99999999', now)).toBe(86_400);
    expect(parseRetryAfter('soon', now)).toBeNull();
    expect(parseRetryAfter(undefined, now)).toBeNull();
  });
});

describe('nextDelaySeconds', () => {
  const schedule = [0, 5, 300, 1800];
  it('takes the delay before the next attempt, jittered ±10%, and null once the schedule is used up', () => {
    expect(nextDelaySeconds(schedule, 1, null, () => 0)).toBeCloseTo(4.5);
    expect(nextDelaySeconds(schedule, 1, null, () => 1)).toBeCloseTo(5.5);
    expect(nextDelaySeconds(schedule, 2, null, () => 0.5)).toBeCloseTo(300);
    expect(nextDelaySeconds(schedule, 4, null)).toBeNull();
  });

  it('never jitters a zero delay', () => {
    expect(nextDelaySeconds([0, 0, 0], 1, null, () => 1)).toBe(0);
  });

  it('lets Retry-After lengthen the wait but never shorten it', () => {
    expect(nextDelaySeconds(schedule, 1, 60, () => 0.5)).toBe(60);
    expect(nextDelaySeconds(schedule, 2, 60, () => 0.5)).toBeCloseTo(300);
  });
});
