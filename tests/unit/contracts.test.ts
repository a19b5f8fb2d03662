import { describe, expect, it } from 'vitest';
import { JobSchema, RequestIXSchema, ResponseIXSchema } from '../../src/contracts/index.js';
import { newIxId, newJobId } from '../../src/store/ids.js';
import { isoTimestamp } from '../../src/store/jobs/hydrate.js';

describe('RequestIX', () => {
  it('accepts any JSON input and an optional ix_id', () => {
    for (const input of [null, 0, 'text', [1, { a: null }], { nested: { deep: [true] } }]) {
      expect(RequestIXSchema.parse({ ix_client_id: 'c', request_id: 'r', input })).toEqual({
        ix_client_id: 'c',
        request_id: 'r',
        input,
      });
    }
  });

  it('rejects unknown top-level keys by name, missing fields and overlong ids', () => {
    const unknown = RequestIXSchema.safeParse({
      ix_client_id: 'c',
      request_id: 'r',
      input: 1,
      colour: 'red',
    });
    expect(unknown.error?.issues[0]?.message).toMatch(/colour/);
    const missing = RequestIXSchema.safeParse({ request_id: 'r', input: 1 });
    expect(missing.error?.issues.map((i) => i.path.join('.'))).toEqual(['ix_client_id']);
    const noInput = RequestIXSchema.safeParse({ ix_client_id: 'c', request_id: 'r' });
    expect(noInput.error?.issues[0]?.message).toMatch(/input is required/);
    expect(
      RequestIXSchema.safeParse({ ix_client_id: 'c'.repeat(129), request_id: 'r', input: 1 }).success,
    ).toBe(false);
    expect(
      RequestIXSchema.safeParse({ ix_client_id: 'c', request_id: 'r'.repeat(257), input: 1 }).success,
    ).toBe(false);
    expect(RequestIXSchema.safeParse({ ix_client_id: '', request_id: 'r', input: 1 }).success).toBe(false);
  });
});

describe('ResponseIX and Job', () => {
  it('ResponseIX needs an ix_id of 16 lowercase hex and a string or null error', () => {
    expect(ResponseIXSchema.safeParse({ ix_id: newIxId(), error: null, result: { a: 1 } }).success).toBe(
      true,
    );
    expect(ResponseIXSchema.safeParse({ ix_id: 'ABCDEF0123456789', error: null, result: null }).success).toBe(
      false,
    );
    expect(ResponseIXSchema.safeParse({ ix_id: newIxId(), error: 5, result: null }).success).toBe(false);
  });

  it('Job accepts a well-formed job and rejects an unknown status', () => {
    const ixId = newIxId();
    const job = {
      job_id: newJobId(),
      ix_id: ixId,
      client_id: 'c',
      request_id: 'r',
      status: 'pending',
      request: { ix_client_id: 'c', request_id: 'r', ix_id: ixId, input: {} },
      response: null,
      callback_url: null,
      callback_status: null,
      attempts: 0,
      max_attempts: null,
      priority: 0,
      run_after: null,
      last_error: null,
      progress: null,
      attempt_history: [],
      created_at: new Date().toISOString(),
      started_at: null,
      finished_at: null,
    };
    expect(JobSchema.parse(job)).toEqual(job);
    expect(JobSchema.safeParse({ ...job, status: 'lost' }).success).toBe(false);
  });
});

describe('ids', () => {
  it('job ids are RFC 9562 version 7 UUIDs that sort by creation time', () => {
    const earlier = newJobId(1_700_000_000_000);
    const later = newJobId(1_700_000_000_001);
    expect(earlier).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(earlier < later).toBe(true);
  });

  it('ix ids are 16 lowercase hex, those of one 4 ms step share their first 8, and a later step sorts after', () => {
    expect(newIxId()).toMatch(/^[0-9a-f]{16}$/);
    const step = 1_700_000_000_000;
    const drawn = Array.from({ length: 1000 }, (_, i) => newIxId(step + (i % 4)));
    expect(new Set(drawn.map((id) => id.slice(0, 8))).size).toBe(1);
    expect(new Set(drawn).size).toBe(1000);
    expect(drawn.every((id) => id < newIxId(step + 4))).toBe(true);
    const later = Array.from({ length: 100 }, (_, i) => newIxId(step + 4 * (i + 1)));
    expect(later).toEqual([...later].sort());
  });
});

describe('isoTimestamp', () => {
  it('prints PostgreSQL timestamps exactly as Date.toISOString() would', () => {
    const cases: [string, string][] = [
      ['2026-11-30 00:16:38.422345+00', '2026-11-30T00:16:38.422Z'],
      ['2026-11-30 00:16:38.4+00', '2026-11-30T00:16:38.400Z'],
      ['2026-11-30 00:16:38+00', '2026-11-30T00:16:38.000Z'],
      ['2026-11-30 01:16:38.5+01', '2026-11-30T00:16:38.500Z'],
      ['2026-11-30 05:46:38.123+05:30', '2026-11-30T00:16:38.123Z'],
    ];
    for (const [text, iso] of cases) expect(isoTimestamp(text)).toBe(iso);
    const now = new Date();
    expect(isoTimestamp(now)).toBe(now.toISOString());
  });
});
