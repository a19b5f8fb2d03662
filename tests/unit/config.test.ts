import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderSettingsTable, settingsTableIn } from '../../scripts/settings-table.js';
import { listenUrlFor } from '../../src/cli/database.js';
import { ConfigError, loadConfig, parseApiKeys, SETTINGS, type Setting } from '../../src/config.js';
import { captureLogs } from '../support/logs.js';

function expectConfigError(env: Record<string, string>, variable: string, message: RegExp) {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe(variable);
    expect((error as Error).message).toMatch(message);
    return;
  }
  throw new Error(`expected a ConfigError for ${variable}`);
}

describe('loadConfig', () => {
  it('has documented defaults for an empty environment', () => {
    const config = loadConfig({});
    expect(config.postgresUrl).toBeNull();
    expect(config.api).toMatchObject({
      host: '127.0.0.1',
      port: 8080,
      maxBodyBytes: 1_048_576,
      deadlineSeconds: 5,
      maxPendingSubmits: 10_000,
      maxAttemptsCap: 25,
    });
    expect(config.dbStatementTimeoutSeconds).toBe(30);
    expect(config.api.apiKeys.size).toBe(0);
    expect(config.worker).toMatchObject({
      concurrency: 10,
      prefetch: 0,
      pipeline: { kind: 'echo' },
      requestTimeoutSeconds: 300,
      heartbeatTimeoutSeconds: 30,
      maxAttempts: 3,
      retryBaseSeconds: 5,
      retryMaxSeconds: 3_600,
      maxResultBytes: 16_777_216,
      maxHeldBytes: 67_108_864,
    });
    expect(config.callbacks.retryScheduleSeconds).toEqual([0, 5, 300, 1800, 7200, 18000, 36000, 36000]);
    expect(config.callbacks.allowPrivate).toBe(false);
  });

  it('keeps every outcome and every tombstone for a finite time by default; `off` or 0 means forever', () => {
    expect(loadConfig({}).retention).toEqual({
      done: 7 * 86_400,
      error: 30 * 86_400,
      cancelled: 7 * 86_400,
      tombstones: 30 * 86_400,
      pruneIntervalSeconds: 60,
      pruneBatchSize: 1_000,
      pruneDutyPercent: 20,
    });
    const set = loadConfig({
      IX_RETAIN_DONE: '36h',
      IX_RETAIN_ERROR: 'off',
      IX_RETAIN_CANCELLED: '0',
      IX_RETAIN_TOMBSTONES: '90m',
    }).retention;
    expect(set).toMatchObject({ done: 129_600, error: null, cancelled: null, tombstones: 5_400 });
    expectConfigError({ IX_RETAIN_DONE: '7' }, 'IX_RETAIN_DONE', /a period like 30d.*"7"/);
    expectConfigError({ IX_RETAIN_ERROR: '2w' }, 'IX_RETAIN_ERROR', /a period like 30d/);
    expectConfigError(
      { IX_RETAIN_TOMBSTONES: '0s' },
      'IX_RETAIN_TOMBSTONES',
      /between 1s and 36500d, or off/,
    );
    expectConfigError({ IX_PRUNE_BATCH_SIZE: '0' }, 'IX_PRUNE_BATCH_SIZE', /between 1/);
  });

  it('names the variable and the problem for a bad value', () => {
    expectConfigError({ IX_PORT: 'abc' }, 'IX_PORT', /whole number.*"abc"/);
    expectConfigError({ IX_PORT: '70000' }, 'IX_PORT', /between 0 and 65535/);
    expectConfigError({ IX_WORKER_CONCURRENCY: '0' }, 'IX_WORKER_CONCURRENCY', /between 1/);
    expectConfigError({ IX_POSTGRES_URL: 'mysql://x' }, 'IX_POSTGRES_URL', /postgres:\/\//);
    expectConfigError({ IX_PIPELINE: 'magic' }, 'IX_PIPELINE', /echo, http or a path/);
    expectConfigError({ IX_PIPELINE: 'http' }, 'IX_PIPELINE_URL', /required when IX_PIPELINE=http/);
    expectConfigError({ IX_CALLBACK_ALLOW_PRIVATE: 'maybe' }, 'IX_CALLBACK_ALLOW_PRIVATE', /true or false/);
    expectConfigError({ IX_API_URL: 'ix.internal:8080' }, 'IX_API_URL', /http\(s\) URL/);
    expectConfigError(
      { IX_CALLBACK_RETRY_SCHEDULE: '0,5s' },
      'IX_CALLBACK_RETRY_SCHEDULE',
      /comma-separated/,
    );
    expectConfigError({ IX_CALLBACK_SECRET: 'hunter2' }, 'IX_CALLBACK_SECRET', /whsec_/);
    expectConfigError({ IX_LOG_LEVEL: 'loud' }, 'IX_LOG_LEVEL', /one of/);
    expectConfigError({ IX_MAX_BODY_BYTES: '1073741824' }, 'IX_MAX_BODY_BYTES', /and 67108864/);
    expectConfigError({ IX_API_DEADLINE_SECONDS: '0' }, 'IX_API_DEADLINE_SECONDS', /between 1/);
    expectConfigError({ IX_API_MAX_PENDING_SUBMITS: '0' }, 'IX_API_MAX_PENDING_SUBMITS', /between 1/);
    expectConfigError(
      { IX_DB_STATEMENT_TIMEOUT_SECONDS: 'soon' },
      'IX_DB_STATEMENT_TIMEOUT_SECONDS',
      /whole number/,
    );
    expectConfigError(
      { IX_PIPELINE_MAX_RESULT_BYTES: '268435456' },
      'IX_PIPELINE_MAX_RESULT_BYTES',
      /between/,
    );
    expectConfigError({ IX_MAX_ATTEMPTS_CAP: '0' }, 'IX_MAX_ATTEMPTS_CAP', /between 1/);
    expectConfigError({ IX_RETRY_BASE_SECONDS: '0.5' }, 'IX_RETRY_BASE_SECONDS', /whole number/);
    expectConfigError({ IX_RETRY_MAX_SECONDS: '0' }, 'IX_RETRY_MAX_SECONDS', /between 1/);
    expectConfigError({ IX_WORKER_MAX_HELD_BYTES: '10' }, 'IX_WORKER_MAX_HELD_BYTES', /between 1024/);
    expectConfigError(
      { IX_HEARTBEAT_INTERVAL_SECONDS: '20', IX_HEARTBEAT_TIMEOUT_SECONDS: '30' },
      'IX_HEARTBEAT_TIMEOUT_SECONDS',
      /twice IX_HEARTBEAT_INTERVAL_SECONDS/,
    );
  });

  it('reads pipelines, schedules and secrets', () => {
    const secret = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
    const config = loadConfig({
      IX_PIPELINE: './my-pipeline.js',
      IX_CALLBACK_RETRY_SCHEDULE: '0, 5,300',
      IX_CALLBACK_SECRET: `${secret} ${secret}`,
    });
    expect(config.worker.pipeline).toEqual({ kind: 'module', path: './my-pipeline.js' });
    expect(config.callbacks.retryScheduleSeconds).toEqual([0, 5, 300]);
    expect(config.callbacks.secrets).toEqual([secret, secret]);
  });

  it('gives an http pipeline its URL in the same value, so no reader checks for it again', () => {
    const config = loadConfig({ IX_PIPELINE: 'http', IX_PIPELINE_URL: 'http://pipeline.internal/run' });
    expect(config.worker.pipeline).toEqual({ kind: 'http', url: 'http://pipeline.internal/run' });
  });

  it('reads API keys inline or from a file', () => {
    const inline = loadConfig({ IX_API_KEYS: 'acme=0123456789abcdef0,beta=fedcba98765432100' });
    expect([...inline.api.apiKeys]).toEqual([
      ['acme', '0123456789abcdef0'],
      ['beta', 'fedcba98765432100'],
    ]);
    const fromFile = loadConfig(
      { IX_API_KEYS: '@/etc/ix/keys' },
      { readFile: (path) => (path === '/etc/ix/keys' ? '# keys\nacme=0123456789abcdef0\n' : '') },
    );
    expect(fromFile.api.apiKeys.get('acme')).toBe('0123456789abcdef0');
    expect(() => parseApiKeys('acme')).toThrow(/client=key/);
    expect(() => parseApiKeys('acme=short')).toThrow(/shorter than 16/);
    expect(() => parseApiKeys('a=0123456789abcdef0,a=0123456789abcdef1')).toThrow(/twice/);
    expectConfigError({ IX_API_KEYS: '@/nonexistent/keys' }, 'IX_API_KEYS', /cannot read/);
  });

  it('refuses one key listed for two clients, naming both and never the key', () => {
    const key = '0123456789abcdef0-shared';
    expectConfigError(
      { IX_API_KEYS: `acme=${key},beta=fedcba98765432100,gamma=${key}` },
      'IX_API_KEYS',
      /"acme" and "gamma".*same key/,
    );
    expect(() => parseApiKeys(`acme=${key},gamma=${key}`)).toThrow(
      expect.objectContaining({ message: expect.not.stringContaining(key) }),
    );
  });

  it('IX_DB_POOLER=transaction turns prepared statements off unless IX_DB_PREPARED_STATEMENTS says', () => {
    expect(loadConfig({})).toMatchObject({ dbPooler: 'none', dbPreparedStatements: true, listenUrl: null });
    expect(loadConfig({ IX_DB_POOLER: 'transaction' }).dbPreparedStatements).toBe(false);
    expect(
      loadConfig({ IX_DB_POOLER: 'transaction', IX_DB_PREPARED_STATEMENTS: 'true' }).dbPreparedStatements,
    ).toBe(true);
    expect(loadConfig({ IX_DB_PREPARED_STATEMENTS: 'no' }).dbPreparedStatements).toBe(false);
    expectConfigError({ IX_DB_POOLER: 'session' }, 'IX_DB_POOLER', /none, transaction/);
    expectConfigError({ IX_LISTEN_URL: 'http://db' }, 'IX_LISTEN_URL', /postgres:\/\//);
  });

  it("LISTENs on IX_LISTEN_URL, else the pools' URL unless that is a pooler, else nowhere, warning once", () => {
    const url = 'postgres://ix@pgbouncer:6432/ix';
    const direct = 'postgres://ix@db:5432/ix';
    const logs = captureLogs();
    expect(listenUrlFor(loadConfig({}), url, logs.logger)).toBe(url);
    expect(
      listenUrlFor(loadConfig({ IX_DB_POOLER: 'transaction', IX_LISTEN_URL: direct }), url, logs.logger),
    ).toBe(direct);
    expect(logs.entries()).toEqual([]);
    expect(listenUrlFor(loadConfig({ IX_DB_POOLER: 'transaction' }), url, logs.logger)).toBeNull();
    expect(logs.entries()).toEqual([
      expect.objectContaining({ level: 40, msg: expect.stringMatching(/IX_LISTEN_URL/) }),
    ]);
  });
});

const everySetting: Setting<unknown>[] = Object.values(SETTINGS).flatMap((group) => Object.values(group));

/** Every file below `dir` whose name ends in .ts. */
function typeScriptFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((name) => name.endsWith('.ts'))
    .map((name) => join(dir, name));
}

describe('SETTINGS, the one declaration of each variable', () => {
  it('declares each variable once', () => {
    const names = everySetting.map((setting) => setting.name);
    expect(names.filter((name, i) => names.indexOf(name) !== i)).toEqual([]);
  });

  it('documents as each default what, written in the variable, gives that default', () => {
    for (const setting of everySetting) {
      if (setting.defaultText === null) continue;
      const noFiles = () => {
        throw new Error('no file is read for a default');
      };
      expect(setting.parse(setting.defaultText, noFiles), setting.name).toEqual(setting.default);
    }
  });

  it('is what loadConfig reads: every variable of it (but the test suite’s), and no other', () => {
    const read = new Set<string>();
    const watched = new Proxy<Record<string, string | undefined>>(
      {},
      {
        get(_target, name) {
          if (typeof name === 'string') read.add(name);
          return undefined;
        },
      },
    );
    loadConfig(watched);
    const ixSettings = Object.entries(SETTINGS)
      .filter(([group]) => group !== 'tests')
      .flatMap(([, group]) => Object.values(group).map((setting) => setting.name));
    expect([...read].sort()).toEqual(ixSettings.sort());
  });

  it('names every IX_* variable that ix or its test suite mentions', () => {
    const sources = [...typeScriptFiles('src'), ...typeScriptFiles('tests/support')].map((file) =>
      readFileSync(file, 'utf8'),
    );
    // Constants such as IX_ID_PATTERN share the prefix; they are declared in code, variables are not.
    const constants = new Set(
      sources.flatMap((text) =>
        [...text.matchAll(/\b(?:const|let|function|class|type|interface)\s+(IX_[A-Z0-9_]+)/g)].map(
          (m) => m[1],
        ),
      ),
    );
    const mentioned = new Set(sources.flatMap((text) => text.match(/\bIX_[A-Z0-9_]+\b/g) ?? []));
    const declared = new Set(everySetting.map((setting) => setting.name));
    expect([...mentioned].filter((name) => !constants.has(name) && !declared.has(name))).toEqual([]);
  });

  it('is what the README’s configuration table says: each variable, default, range and doc', () => {
    const readme = readFileSync('README.md', 'utf8');
    expect(settingsTableIn(readme), 'the README’s table is stale: npm run docs:settings rewrites it').toBe(
      renderSettingsTable(),
    );
  });
});
