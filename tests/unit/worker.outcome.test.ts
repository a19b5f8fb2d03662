import { describe, expect, it } from 'vitest';
import type { JsonValue, ResponseIX } from '../../src/contracts/index.js';
import { storable } from '../../src/worker/outcome.js';

const ix_id = '0123456789abcdef';

describe('storable: a response as the completion stores it', () => {
  it('writes the JSON that JSON.stringify writes of its error and result: the row holds the ix_id', () => {
    const responses: ResponseIX[] = [
      { ix_id, error: null, result: { ok: true, i: 7, list: [1, 'two', null], nested: { 'quo"te': 'é\n' } } },
      { ix_id, error: null, result: null },
      { ix_id, error: null, result: 'text' },
      { ix_id, error: 'said "no"\twith \u2028 and é', result: null },
    ];
    for (const response of responses) {
      const { json, response: stored } = storable(response, 1_048_576);
      expect(stored).toBe(response);
      expect(json).toBe(JSON.stringify({ error: response.error, result: response.result }));
    }
  });

  it('stores a result JSON cannot hold as null, as JSON does in an array; one it cannot write ends in an error', () => {
    const withFunction = { ix_id, error: null, result: (() => 1) as unknown as JsonValue };
    expect(JSON.parse(storable(withFunction, 1_000).json)).toEqual({ error: null, result: null });
    const withBigInt = { ix_id, error: null, result: { n: 10n } as unknown as JsonValue };
    const unstorable = storable(withBigInt, 1_000);
    expect(unstorable.response.error).toMatch(/^pipeline result could not be stored: not JSON/);
    expect(JSON.parse(unstorable.json)).toEqual({ error: unstorable.response.error, result: null });
    const oversize = storable({ ix_id, error: null, result: 'x'.repeat(2_000) }, 1_000);
    expect(oversize.response.error).toMatch(/over IX_PIPELINE_MAX_RESULT_BYTES \(1000\)/);
  });
});
