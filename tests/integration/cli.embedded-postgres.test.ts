/**
 * The embedded PostgreSQL's data directory holds its password and is handed to the `postgres`
 * user when ix runs as root, so ix must not follow anything someone else planted there. The
 * refusals happen before initdb, so these need no running PostgreSQL; the one start at the end
 * shows a private directory still works.
 */
import {
  chmodSync,
  chownSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EmbeddedPostgresError, startEmbeddedPostgres } from '../../src/cli/embedded-postgres.js';
import { killPostmaster } from '../support/cli.js';

const made: string[] = [];

/** A fresh directory under /tmp, which the `postgres` user can reach when the tests run as root. */
function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

afterEach(() => {
  // Before the fix these starts went on to initdb and a running server: leave none behind.
  for (const dir of made.splice(0)) {
    killPostmaster(dir);
    rmSync(dir, { recursive: true, force: true });
  }
});

async function refusal(dataDir: string): Promise<EmbeddedPostgresError> {
  const error = await startEmbeddedPostgres({ dataDir }).then(
    async (server) => {
      await server.stop();
      throw new Error(`started in ${dataDir}, expected a refusal`);
    },
    (rejection: unknown) => rejection,
  );
  expect(error).toBeInstanceOf(EmbeddedPostgresError);
  return error as EmbeddedPostgresError;
}

/** A file of the test's own, outside the data directory, as a planted link's target. */
function victimFile(): { path: string; unchanged: () => void } {
  const path = join(tempDir('ix-embedded-victim-'), 'precious');
  writeFileSync(path, 'precious contents\n', { mode: 0o644 });
  const before = statSync(path);
  return {
    path,
    unchanged: () => {
      const after = statSync(path);
      expect(readFileSync(path, 'utf8')).toBe('precious contents\n');
      expect({ uid: after.uid, gid: after.gid, mode: after.mode }).toEqual({
        uid: before.uid,
        gid: before.gid,
        mode: before.mode,
      });
    },
  };
}

const isRoot = process.getuid?.() === 0;

describe('the embedded PostgreSQL data directory', () => {
  it.each([
    ['a fresh data directory, where ix would write it', () => {}],
    [
      'an initialised one, where ix would read it',
      (dataDir: string) => {
        mkdirSync(join(dataDir, 'pg'));
        writeFileSync(join(dataDir, 'pg', 'PG_VERSION'), '18\n');
      },
    ],
  ])('refuses a symlink planted as the password file of %s; the target is untouched', async (_, prepare) => {
    const dataDir = tempDir('ix-embedded-');
    prepare(dataDir);
    const victim = victimFile();
    symlinkSync(victim.path, join(dataDir, 'password'));
    const error = await refusal(dataDir);
    expect(error.message).toContain(join(dataDir, 'password'));
    expect(error.message).toMatch(/symbolic link/);
    victim.unchanged();
  });

  it.each([
    ['0770', 0o770],
    ['0707', 0o707],
    ['0777', 0o777],
    ['1777', 0o1777],
  ])('refuses a data directory with mode %s, naming it', async (_, mode) => {
    const dataDir = tempDir('ix-embedded-');
    chmodSync(dataDir, mode);
    const error = await refusal(dataDir);
    expect(error.message).toContain(dataDir);
    expect(error.message).toMatch(/group- or world-writable.*chmod 700/);
    expect(statSync(dataDir).mode & 0o7777).toBe(mode);
  });

  it.runIf(isRoot)('refuses a data directory owned by another user, naming it and the owner', async () => {
    const dataDir = tempDir('ix-embedded-');
    chownSync(dataDir, 65534, 65534);
    const error = await refusal(dataDir);
    expect(error.message).toContain(dataDir);
    expect(error.message).toMatch(/owned by uid 65534/);
    expect(statSync(dataDir).uid).toBe(65534);
  });

  it('refuses a data directory that is itself a symlink, naming where it points', async () => {
    const target = tempDir('ix-embedded-target-');
    const dataDir = join(tempDir('ix-embedded-parent-'), 'data');
    chmodSync(join(dataDir, '..'), 0o755);
    symlinkSync(target, dataDir);
    const error = await refusal(dataDir);
    expect(error.message).toContain(dataDir);
    expect(error.message).toMatch(/symbolic link/);
    expect(statSync(target).uid).toBe(process.getuid?.());
  });

  it('starts in a private directory, replacing a password left by a failed initialisation', async () => {
    const dataDir = tempDir('ix-embedded-');
    chmodSync(dataDir, 0o755);
    writeFileSync(join(dataDir, 'password'), 'left over by an initdb that failed\n', { mode: 0o644 });
    const server = await startEmbeddedPostgres({ dataDir });
    try {
      const password = lstatSync(join(dataDir, 'password'));
      expect(password.isFile()).toBe(true);
      expect(password.mode & 0o777).toBe(0o600);
      expect(readFileSync(join(dataDir, 'password'), 'utf8')).not.toMatch(/left over/);
      expect(server.url).toMatch(/^postgres:\/\/postgres:/);
    } finally {
      await server.stop();
    }
  });
});
