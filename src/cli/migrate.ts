import { parseArgs } from 'node:util';
import { loadConfig } from '../config.js';
import { migrateDown, migrateUp, schemaVersion } from '../store/index.js';
import { openConfiguredPool, poolOptions, requirePostgresUrl } from './database.js';
import { UsageError } from './usage.js';

function parseVersion(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value))
    throw new UsageError(`--to expects a migration version number, got "${value}"`, 'migrate');
  return Number(value);
}

export async function migrate(args: string[]): Promise<void> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    options: { to: { type: 'string' } },
  });
  const direction = positionals[0];
  if (direction !== 'up' && direction !== 'down')
    throw new UsageError('migrate expects "up" or "down"', 'migrate');
  const to = parseVersion(values.to);
  const config = loadConfig();
  const url = requirePostgresUrl(config, 'migrate');
  const pool = await openConfiguredPool(url, poolOptions(config, 'ix migrate', { max: 1 }));
  try {
    const applied = direction === 'up' ? await migrateUp(pool, to) : await migrateDown(pool, to);
    const verb = direction === 'up' ? 'applied' : 'reverted';
    console.log(
      applied.length === 0
        ? `nothing to do; schema at version ${await schemaVersion(pool)}`
        : `${verb} ${applied.join(', ')}; schema at version ${await schemaVersion(pool)}`,
    );
  } finally {
    await pool.end();
  }
}
