/** `input` is any JSON value, null included: it is stored and read back as JSON null. */
import { describe, expect, it } from 'vitest';
import { jobInsertMany } from '../../src/store/index.js';
import { useTestDatabase } from '../support/db.js';
import { makeRequest } from '../support/factories.js';
import { admitted } from '../support/jobs.js';

const db = useTestDatabase();

describe('a null input', () => {
  it('is stored as JSON null by jobInsertMany', async () => {
    const [inserted] = admitted(
      await jobInsertMany(db.pool, [{ request: makeRequest({ input: null }), callbackUrl: null }]),
    );
    expect(inserted?.job.request.input).toBeNull();
    const { rows } = await db.pool.query(`SELECT jsonb_typeof(input) AS type FROM ix_jobs`);
    expect(rows).toEqual([{ type: 'null' }]);
  });
});
