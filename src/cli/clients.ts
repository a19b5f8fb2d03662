/**
 * `ix clients …`: clients as data (the ix_clients table). Every change is told to the running
 * API processes, which apply it within a moment. A new key is printed once, alone on stdout, and
 * only its digest is stored; nothing here logs.
 */
import { parseArgs } from 'node:util';
import type pg from 'pg';
import { type Config, ConfigError, loadConfig } from '../config.js';
import { LIMITS } from '../contracts/index.js';
import {
  type ClientRecord,
  type ClientSettings,
  clientAdd,
  clientKeyAdd,
  clientKeyGenerate,
  clientKeyRevoke,
  clientSetDisabled,
  clientsRead,
  clientUpdate,
  databaseCreateIfMissing,
  KEY_ID_LENGTH,
  keyDigest,
  keyIdOf,
  migrateUp,
  openPool,
} from '../store/index.js';
import { openConfiguredPool, poolOptions } from './database.js';
import { runningEmbeddedPostgres, startEmbeddedPostgres } from './embedded-postgres.js';
import { EMBEDDED_DATABASE } from './serve.js';
import { UsageError } from './usage.js';

export type ClientsCommand =
  | { action: 'add'; clientId: string; settings: Partial<ClientSettings> }
  | { action: 'list'; json: boolean }
  | { action: 'set'; clientId: string; settings: Partial<ClientSettings> }
  | { action: 'key add'; clientId: string }
  | { action: 'key revoke'; clientId: string; keyId: string; force: boolean }
  | { action: 'disable' | 'enable'; clientId: string };

const usage = (message: string) => new UsageError(message, 'clients');

const SETTING_OPTIONS = {
  weight: { type: 'string' },
  'max-running': { type: 'string' },
  'max-pending': { type: 'string' },
  rate: { type: 'string' },
} as const;

/** A whole number in [min, max], or (where a default exists) `default`: null. */
function wholeOption(
  option: string,
  text: string,
  min: number,
  max: number,
  orDefault: boolean,
): number | null {
  if (orDefault && text === 'default') return null;
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < min || value > max)
    throw usage(
      `--${option} takes a whole number from ${min} to ${max}${orDefault ? ' or "default"' : ''}, got "${text}"`,
    );
  return value;
}

function settingsOf(values: Partial<Record<keyof typeof SETTING_OPTIONS, string>>): Partial<ClientSettings> {
  const settings: Partial<ClientSettings> = {};
  if (values.weight !== undefined)
    settings.weight = wholeOption('weight', values.weight, 1, 1_000, false) ?? 1;
  if (values['max-running'] !== undefined)
    settings.maxRunning = wholeOption('max-running', values['max-running'], 1, 1_000_000, true);
  if (values['max-pending'] !== undefined)
    settings.maxPending = wholeOption('max-pending', values['max-pending'], 1, 1_000_000_000, true);
  if (values.rate !== undefined) {
    const text = values.rate;
    const rate = Number(text);
    if (text === 'default') settings.ratePerSecond = null;
    else if (!/^\d+(\.\d+)?$/.test(text) || !(rate > 0) || rate > 1_000_000)
      throw usage(
        `--rate takes a number of submits a second above 0 (at most 1000000) or "default", got "${text}"`,
      );
    else settings.ratePerSecond = rate;
  }
  return settings;
}

function clientIdOf(positionals: string[], at: number, command: string): string {
  const clientId = positionals[at];
  if (clientId === undefined) throw usage(`${command} takes a client id`);
  if (clientId.length > LIMITS.clientId || clientId.trim() !== clientId || clientId === '')
    throw usage(
      `"${clientId.slice(0, 40)}" is not a client id (1 to ${LIMITS.clientId} characters, no surrounding spaces)`,
    );
  return clientId;
}

function noMore(positionals: string[], count: number, command: string): void {
  if (positionals.length > count) throw usage(`${command}: unexpected "${positionals[count]}"`);
}

/** The command `args` (after `ix clients`) ask for; a UsageError for anything else. */
export function parseClientsArgs(args: string[]): ClientsCommand {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { ...SETTING_OPTIONS, force: { type: 'boolean' }, json: { type: 'boolean' } },
  });
  const [action, ...rest] = positionals;
  const settings = settingsOf(values);
  const hasSettings = Object.keys(settings).length > 0;
  const refuse = (option: string, command: string) => {
    throw usage(`${command} takes no --${option}`);
  };
  if (action !== 'add' && action !== 'set' && hasSettings)
    refuse(
      Object.keys(values).find((k) => k in SETTING_OPTIONS) ?? 'weight',
      `clients ${action ?? ''}`.trim(),
    );
  if (values.force && !(action === 'key' && rest[0] === 'revoke'))
    refuse('force', `clients ${action ?? ''}`.trim());
  if (values.json && action !== 'list') refuse('json', `clients ${action ?? ''}`.trim());
  switch (action) {
    case 'add': {
      const clientId = clientIdOf(rest, 0, 'clients add');
      noMore(rest, 1, 'clients add');
      return { action, clientId, settings };
    }
    case 'list':
      noMore(rest, 0, 'clients list');
      return { action, json: values.json ?? false };
    case 'set': {
      const clientId = clientIdOf(rest, 0, 'clients set');
      noMore(rest, 1, 'clients set');
      if (!hasSettings)
        throw usage('clients set takes at least one of --weight, --max-running, --max-pending, --rate');
      return { action, clientId, settings };
    }
    case 'disable':
    case 'enable': {
      const clientId = clientIdOf(rest, 0, `clients ${action}`);
      noMore(rest, 1, `clients ${action}`);
      return { action, clientId };
    }
    case 'key': {
      const [verb, ...more] = rest;
      if (verb === 'add') {
        const clientId = clientIdOf(more, 0, 'clients key add');
        noMore(more, 1, 'clients key add');
        return { action: 'key add', clientId };
      }
      if (verb === 'revoke') {
        const clientId = clientIdOf(more, 0, 'clients key revoke');
        const keyId = more[1];
        if (keyId === undefined || !new RegExp(`^[0-9a-fA-F]{${KEY_ID_LENGTH}}$`).test(keyId))
          throw usage(
            `clients key revoke takes a client id and a key id (${KEY_ID_LENGTH} hex digits, from ix clients list)`,
          );
        noMore(more, 2, 'clients key revoke');
        return { action: 'key revoke', clientId, keyId: keyId.toLowerCase(), force: values.force ?? false };
      }
      throw usage('clients key expects "add" or "revoke"');
    }
    default:
      throw usage(
        action === undefined
          ? 'clients expects add, list, set, key, disable or enable'
          : `unknown clients command "${action}"`,
      );
  }
}

const limitText = (value: number | null) => (value === null ? 'default' : String(value));

/** One line per client: its settings, then the ids of its keys. */
export function describeClients(clients: readonly ClientRecord[]): string {
  if (clients.length === 0) return 'no clients (ix clients add ID adds one)';
  const header = ['CLIENT', 'WEIGHT', 'MAX_RUNNING', 'MAX_PENDING', 'RATE', 'STATE', 'KEYS'];
  const rows = clients.map((c) => [
    c.clientId,
    String(c.weight),
    limitText(c.maxRunning),
    limitText(c.maxPending),
    limitText(c.ratePerSecond),
    c.disabled ? 'disabled' : 'enabled',
    c.keys.map((k) => k.keyId).join(',') || '-',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  return [header, ...rows]
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** The database of the command: IX_POSTGRES_URL, else the embedded PostgreSQL of `ix start`. */
async function withDatabase<T>(config: Config, work: (pool: pg.Pool) => Promise<T>): Promise<T> {
  const options = poolOptions(config, 'ix clients', { max: 1 });
  if (config.postgresUrl) {
    const pool = await openConfiguredPool(config.postgresUrl, options);
    try {
      return await work(pool);
    } finally {
      await pool.end();
    }
  }
  const running = runningEmbeddedPostgres(config.dataDir);
  if (running) {
    const pool = await openPool(running(EMBEDDED_DATABASE), options);
    try {
      return await work(pool);
    } finally {
      await pool.end();
    }
  }
  // No ix start is running: start its PostgreSQL for this command alone, as ix start would.
  const server = await startEmbeddedPostgres({ dataDir: config.dataDir });
  try {
    const admin = await openPool(server.url, options);
    try {
      await databaseCreateIfMissing(admin, EMBEDDED_DATABASE);
    } finally {
      await admin.end();
    }
    const pool = await openPool(server.urlFor(EMBEDDED_DATABASE), options);
    try {
      await migrateUp(pool);
      return await work(pool);
    } finally {
      await pool.end();
    }
  } finally {
    await server.stop();
  }
}

function printKey(key: string): void {
  process.stdout.write(`${key}\n`);
}

export async function clients(args: string[]): Promise<void> {
  const command = parseClientsArgs(args);
  const config = loadConfig();
  if (command.action === 'add' && config.api.apiKeys.has(command.clientId))
    throw new ConfigError(
      'IX_API_KEYS',
      `client "${command.clientId}" is defined there already; an API would refuse to start with it in both IX_API_KEYS and the ix_clients table`,
    );
  await withDatabase(config, async (pool) => {
    switch (command.action) {
      case 'add': {
        const key = clientKeyGenerate();
        const digest = keyDigest(key);
        await clientAdd(pool, command.clientId, command.settings, digest);
        printKey(key);
        console.error(
          `ix: added client "${command.clientId}" with key ${keyIdOf(digest)}; the key is shown this once, above`,
        );
        return;
      }
      case 'list': {
        const { clients: all } = await clientsRead(pool);
        console.log(command.json ? JSON.stringify(all, null, 2) : describeClients(all));
        return;
      }
      case 'set':
        console.log(describeClients([await clientUpdate(pool, command.clientId, command.settings)]));
        return;
      case 'key add': {
        const key = clientKeyGenerate();
        const keyId = await clientKeyAdd(pool, command.clientId, keyDigest(key));
        printKey(key);
        console.error(
          `ix: added key ${keyId} to client "${command.clientId}"; the key is shown this once, above. Revoke the old one once no caller uses it: ix clients key revoke ${command.clientId} KEY_ID`,
        );
        return;
      }
      case 'key revoke':
        await clientKeyRevoke(pool, command.clientId, command.keyId, command.force);
        console.error(`ix: revoked key ${command.keyId} of client "${command.clientId}"`);
        return;
      case 'disable':
      case 'enable':
        await clientSetDisabled(pool, command.clientId, command.action === 'disable');
        console.error(`ix: client "${command.clientId}" ${command.action}d`);
        return;
    }
  });
}
