/**
 * Finds the PostgreSQL the suite runs on: IX_TEST_DATABASE_URL, else IX_POSTGRES_URL, else an
 * embedded PostgreSQL in a temp directory, so `npm test` never skips the integration tests. It
 * prepares a migrated template database; each test file clones its own from it.
 */

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { type EmbeddedPostgres, startEmbeddedPostgres } from '../../src/cli/embedded-postgres.js';
import { readSetting, SETTINGS } from '../../src/config.js';
import { createPool, migrateUp } from '../../src/store/index.js';
import { isAlive, killPostmaster } from './cli.js';
import { withDatabase } from './urls.js';

declare module 'vitest' {
  export interface ProvidedContext {
    serverUrl: string;
    templateDatabase: string;
  }
}

const EMBEDDED_PREFIX = 'ix-test-pg-';
const OWNER_FILE = 'owner.pid';

/**
 * A suite killed before its teardown leaves its embedded PostgreSQL running in its temp
 * directory (seen here: two such servers skewing benchmarks for an hour). Stop and remove those
 * whose owning test run is gone; a concurrent run's server, whose owner lives, is left alone.
 */
function removeOrphanedServers(): void {
  for (const name of readdirSync(tmpdir())) {
    if (!name.startsWith(EMBEDDED_PREFIX)) continue;
    const dir = join(tmpdir(), name);
    const owner = join(dir, OWNER_FILE);
    if (existsSync(owner) && isAlive(Number(readFileSync(owner, 'utf8')))) continue;
    killPostmaster(dir);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The newest modification time under `dir`, in ms (0 for nothing there). */
function newest(dir: string): number {
  if (!existsSync(dir)) return 0;
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) latest = Math.max(latest, statSync(join(entry.parentPath, entry.name)).mtimeMs);
  }
  return latest;
}

/**
 * The end-to-end tests run the built `ix` (dist/): a build older than src/ would test old code
 * without a word. `npm test` builds first; a bare `npx vitest` rebuilds here, and says so.
 */
function buildIfStale(): void {
  // tsc leaves an output whose content did not change untouched: compare with the newest one.
  if (existsSync('dist/cli.js') && newest('dist') >= newest('src')) return;
  console.log('[ix tests] dist/ is older than src/: building it first (npm run build)');
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], {
    stdio: 'inherit',
  });
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  buildIfStale();
  let embedded: EmbeddedPostgres | null = null;
  let embeddedDir: string | null = null;
  let serverUrl =
    readSetting(SETTINGS.tests.databaseUrl, process.env) ??
    readSetting(SETTINGS.database.postgresUrl, process.env);
  if (serverUrl === null) {
    removeOrphanedServers();
    embeddedDir = mkdtempSync(join(tmpdir(), EMBEDDED_PREFIX));
    writeFileSync(join(embeddedDir, OWNER_FILE), String(process.pid));
    embedded = await startEmbeddedPostgres({ dataDir: embeddedDir });
    serverUrl = embedded.url;
    console.log(`[ix tests] no IX_TEST_DATABASE_URL: running on an embedded PostgreSQL (${embeddedDir})`);
  }

  // Per run, so two suites on one server (two checkouts, CI beside a session) never collide.
  const templateDatabase = `ix_test_template_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${templateDatabase} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${templateDatabase}`);
  const templatePool = createPool(withDatabase(serverUrl, templateDatabase), { max: 1 });
  await migrateUp(templatePool);
  await templatePool.end();
  await admin.end();

  project.provide('serverUrl', serverUrl);
  project.provide('templateDatabase', templateDatabase);

  return async () => {
    const cleanup = new pg.Client({ connectionString: serverUrl });
    await cleanup.connect();
    await cleanup.query(`DROP DATABASE IF EXISTS ${templateDatabase} WITH (FORCE)`);
    await cleanup.end();
    if (embedded) await embedded.stop();
    if (embeddedDir) rmSync(embeddedDir, { recursive: true, force: true });
  };
}
