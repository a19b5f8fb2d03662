/**
 * Clients as data across processes: two real `ix api` processes, and `ix clients` changing the
 * table. Each change (adding a client, rotating and revoking a key, disabling, a new limit)
 * shows in both running APIs within 3 s, without a restart (test 7); and no key is ever stored
 * or logged in clear, at IX_LOG_LEVEL=debug (test 8).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, cleanEnv, exited, runCli } from '../support/cli.js';
import { useTestDatabase } from '../support/db.js';
import { makeRequest } from '../support/factories.js';

const db = useTestDatabase({ truncate: false });
const STATIC_KEY = 'static-key-of-the-bootstrap-client';
/** How long a change may take to reach another process: notified, it takes milliseconds. */
const PROPAGATION_MS = 3_000;

interface Api {
  child: ChildProcess;
  address: string;
  output(): string;
}

/** `ix api` with its stdout (the JSON log) and stderr kept, once it listens. */
function startApi(): Promise<Api> {
  const child = spawn(process.execPath, [CLI, 'api'], {
    env: cleanEnv({
      IX_PORT: '0',
      IX_POSTGRES_URL: db.url,
      IX_LOG_LEVEL: 'debug',
      IX_API_KEYS: `bootstrap=${STATIC_KEY}`,
      // Only the notification can make a change show within PROPAGATION_MS.
      IX_CLIENTS_REFRESH_SECONDS: '3600',
    }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk;
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`ix api did not listen:\n${output}`)), 30_000);
    child.stderr?.on('data', (chunk: Buffer) => {
      output += chunk;
      const match = /ix listening on (http:\/\/\S+)/.exec(output);
      if (match?.[1]) {
        clearTimeout(timer);
        resolve({ child, address: match[1], output: () => output });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`ix api exited (${code}):\n${output}`));
    });
  });
}

let apis: Api[] = [];
/** Every stderr of `ix clients` (its stdout is the key it prints, once, by design). */
const cliErrors: string[] = [];
const keys: string[] = [];

async function ixClients(...args: string[]): Promise<string> {
  const result = await runCli(['clients', ...args], { IX_POSTGRES_URL: db.url, IX_LOG_LEVEL: 'debug' });
  cliErrors.push(result.stderr);
  if (result.code !== 0)
    throw new Error(`ix clients ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
  return result.stdout;
}

async function newKey(...args: string[]): Promise<string> {
  const key = (await ixClients(...args)).trim();
  expect(key).toMatch(/^ix_[A-Za-z0-9_-]{43}$/);
  keys.push(key);
  return key;
}

/** The status of GET /jobs as `key` (a read of the caller's own jobs). */
async function statusAs(api: Api, key: string): Promise<number> {
  const response = await fetch(`${api.address}/jobs`, { headers: { authorization: `Bearer ${key}` } });
  await response.arrayBuffer();
  return response.status;
}

async function submitAs(api: Api, key: string, clientId: string): Promise<Response> {
  return fetch(`${api.address}/jobs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ request: makeRequest({ ix_client_id: clientId }), callback_url: null }),
  });
}

/** Polls every API until `check` holds in each, within PROPAGATION_MS of the change. */
async function inEveryApi(what: string, check: (api: Api) => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + PROPAGATION_MS;
  for (const api of apis) {
    while (!(await check(api))) {
      if (Date.now() > deadline)
        throw new Error(`${api.address} did not see within ${PROPAGATION_MS} ms: ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
}

const keyIdOf = (key: string) => createHash('sha256').update(key, 'utf8').digest('hex').slice(0, 12);

beforeAll(async () => {
  apis = await Promise.all([startApi(), startApi()]);
});
afterAll(async () => {
  await Promise.all(
    apis.map((api) => {
      api.child.kill('SIGTERM');
      return exited(api.child);
    }),
  );
});

describe('changes reach every running API without a restart (test 7)', () => {
  let first = '';
  let second = '';

  it('a client added', async () => {
    expect(await statusAs(apis[0] as Api, STATIC_KEY)).toBe(200);
    first = await newKey('add', 'acme');
    await inEveryApi('the new client', async (api) => (await statusAs(api, first)) === 200);
  });

  it('a key rotated: the new one works at once, the old one until revoked', async () => {
    second = await newKey('key', 'add', 'acme');
    await inEveryApi('the second key', async (api) => (await statusAs(api, second)) === 200);
    for (const api of apis) expect(await statusAs(api, first)).toBe(200);
    await ixClients('key', 'revoke', 'acme', keyIdOf(first));
    await inEveryApi('the revoked key refused', async (api) => (await statusAs(api, first)) === 401);
    for (const api of apis) expect(await statusAs(api, second)).toBe(200);
  });

  it('a client disabled, then enabled', async () => {
    await ixClients('disable', 'acme');
    await inEveryApi('disabled', async (api) => (await statusAs(api, second)) === 401);
    const refused = await fetch(`${apis[1]?.address}/jobs`, {
      headers: { authorization: `Bearer ${second}` },
    });
    expect(await refused.json()).toEqual({
      error: { code: 'unauthorized', message: 'client acme is disabled' },
    });
    await ixClients('enable', 'acme');
    await inEveryApi('enabled', async (api) => (await statusAs(api, second)) === 200);
  });

  it('a limit set: max_pending 1 answers 429 in each API', async () => {
    await ixClients('set', 'acme', '--max-pending', '1');
    const [a, b] = apis as [Api, Api];
    expect((await submitAs(a, second, 'acme')).status).toBe(201);
    await inEveryApi('max_pending', async (api) => (await submitAs(api, second, 'acme')).status === 429);
    await ixClients('set', 'acme', '--max-pending', 'default');
    await inEveryApi(
      'max_pending lifted',
      async (api) => (await submitAs(api, second, 'acme')).status === 201,
    );
    expect((await submitAs(b, STATIC_KEY, 'bootstrap')).status).toBe(201);
  });
});

describe('no key in clear (test 8)', () => {
  it('appears in no table of the database', async () => {
    expect(keys.length).toBe(2);
    const { rows: tables } = await db.pool.query<{ tablename: string }>(
      `SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'ix\\_%'`,
    );
    expect(tables.map((t) => t.tablename)).toContain('ix_client_keys');
    let dump = '';
    for (const { tablename } of tables) {
      // Every column of every row, as JSON: text and jsonb as they are, bytea in hex.
      const { rows } = await db.pool.query<{ row: string }>(
        `SELECT row_to_json(t)::text AS row FROM ${tablename} AS t`,
      );
      dump += rows.map((r) => r.row).join('\n');
    }
    expect(dump).toContain(keyIdOf(keys[1] as string));
    for (const key of keys) {
      expect(dump).not.toContain(key);
      expect(dump).not.toContain(key.slice(3));
      expect(dump).not.toContain(Buffer.from(key, 'utf8').toString('hex'));
    }
  });

  it('appears in no log line of the APIs, nor in what ix clients wrote besides the key it printed', async () => {
    const logs = apis.map((api) => api.output()).join('\n');
    // The logs are there to be searched: debug lines of requests by those keys.
    expect(logs).toMatch(/"level":20/);
    expect(logs).toContain('"client_id":"acme"');
    for (const key of keys) {
      expect(logs).not.toContain(key);
      expect(logs).not.toContain(key.slice(3));
      expect(cliErrors.join('\n')).not.toContain(key.slice(3));
    }
    expect(logs).not.toContain(STATIC_KEY);
  });
});

describe('ix clients refusals: messages and exit codes', () => {
  const run = (...args: string[]) => runCli(['clients', ...args], { IX_POSTGRES_URL: db.url });

  it('a taken id, an unknown client or key: exit 1; an id of IX_API_KEYS, bad usage: exit 2', async () => {
    expect(await run('add', 'acme')).toMatchObject({
      code: 1,
      stdout: '',
      stderr: 'ix: client "acme" already exists\n',
    });
    expect(await run('set', 'nobody', '--weight', '2')).toMatchObject({
      code: 1,
      stderr: 'ix: no client "nobody"\n',
    });
    expect(await run('key', 'revoke', 'acme', '000000000000')).toMatchObject({
      code: 1,
      stderr: 'ix: client "acme" has no key 000000000000 (see ix clients list)\n',
    });
    const both = await runCli(['clients', 'add', 'bootstrap'], {
      IX_POSTGRES_URL: db.url,
      IX_API_KEYS: `bootstrap=${STATIC_KEY}`,
    });
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/^ix: IX_API_KEYS: client "bootstrap" is defined there already/);
    const usage = await run('add', 'x', '--weight', '0');
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(
      /^ix: --weight takes a whole number from 1 to 1000, got "0"\n\nUsage: ix clients add/,
    );
  });

  it('the last key is revoked only with --force; the list shows what is left', async () => {
    const key = (await run('add', 'lonely')).stdout.trim();
    const keyId = keyIdOf(key);
    const refused = await run('key', 'revoke', 'lonely', keyId);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(
      /is the last key of client "lonely"; add another first, or revoke it with --force/,
    );
    expect((await run('key', 'revoke', 'lonely', keyId, '--force')).code).toBe(0);
    const listed = await run('list');
    expect(listed.stdout).toMatch(/^lonely +1 +default +default +default +enabled +-$/m);
    const json = JSON.parse((await run('list', '--json')).stdout) as { clientId: string; keys: unknown[] }[];
    expect(json.find((c) => c.clientId === 'lonely')?.keys).toEqual([]);
  });
});
