/** `input` is any JSON value, null included: it is stored and read back as JSON null. */
import { describe, expect, it } from 'vitest';
import { insertPending, insertPendingMany } from '../../src/store/index.js';
import { useTestDatabase } from '../support/db.js';
import { makeRequest } from '../support/factories.js';

const db = useTestDatabase();

describe('a null input', () => {
  it('is stored as JSON null by insertPending and insertPendingMany', async () => {
    const { job } = await insertPending(db.pool, makeRequest({ input: null }), null);
    expect(job.request.input).toBeNull();
    const [many] = await insertPendingMany(db.pool, [
      { request: makeRequest({ input: null }), callbackUrl: null },
    ]);
    expect(many?.job.request.input).toBeNull();
    const { rows } = await db.pool.query(`SELECT jsonb_typeof(input) AS type FROM ix_jobs`);
    expect(rows).toEqual([{ type: 'null' }, { type: 'null' }]);
  });
});
