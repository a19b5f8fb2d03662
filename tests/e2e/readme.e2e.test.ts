/**
 * The README's quick start and pipeline example, executed: its curl commands run (through `sh`,
 * exactly as written but for the port) against a started `ix start`, and what they print must
 * have the documented shape; its example pipeline is loaded and run. A fresh clone with `npm ci`
 * per run would be too slow for every `npm test`; this keeps the text from rotting instead.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { loadPipeline } from '../../src/worker/index.js';
import { type RunningIx, startIx } from '../support/cli.js';
import { useTestDatabase } from '../support/db.js';
import { eventually, silentLogger } from '../support/worker.js';

const run = promisify(execFile);
const README = readFileSync('README.md', 'utf8');
const DOCUMENTED_ADDRESS = 'http://127.0.0.1:8080';

interface Block {
  lang: string;
  body: string;
}

function section(title: string): string {
  const start = README.indexOf(`\n## ${title}\n`);
  expect(start, `README has a "## ${title}" section`).toBeGreaterThanOrEqual(0);
  const end = README.indexOf('\n## ', start + 1);
  return README.slice(start, end === -1 ? undefined : end);
}

function blocks(text: string): Block[] {
  return [...text.matchAll(/```(\w*)\n([\s\S]*?)```/g)].map((m) => ({
    lang: m[1] ?? '',
    body: (m[2] ?? '').trim(),
  }));
}

/** What differs between runs (ids, times) is replaced by what it is, so shapes compare equal. */
function shape(value: unknown, key = ''): unknown {
  const varying = ['job_id', 'ix_id', 'worker_id', 'created_at', 'started_at', 'finished_at', 'duration_ms'];
  if (varying.includes(key) && value !== null) return `<${key}>`;
  if (Array.isArray(value)) return value.map((v) => shape(v));
  if (value !== null && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, shape(v, k)]));
  return value;
}

const quickStart = blocks(section('Quick start'));
/** Each documented curl and the JSON shown right after it. */
const curls = quickStart.flatMap((block, i) => {
  const next = quickStart[i + 1];
  return block.lang === 'sh' && block.body.startsWith('curl') && next?.lang === 'json'
    ? [{ command: block.body, documented: JSON.parse(next.body) as Record<string, unknown> }]
    : [];
});

describe('README quick start', () => {
  const db = useTestDatabase();
  let ix: RunningIx;

  beforeAll(async () => {
    ix = await startIx({ IX_POSTGRES_URL: db.url });
  });
  afterAll(async () => {
    expect(await ix?.stop('SIGTERM')).toBe(0);
  });

  it('runs ix with `npm ci && npm start` and tests with `npm test`, which build dist/cli.js first', () => {
    const commands = quickStart.filter((b) => b.lang === 'sh').map((b) => b.body);
    expect(commands[0]).toBe('npm ci && npm start');
    expect(commands).toContain('npm test');
    const { scripts } = JSON.parse(readFileSync('package.json', 'utf8')) as {
      scripts: Record<string, string>;
    };
    expect(scripts.start).toMatch(/npm run build.*&& node dist\/cli\.js start$/);
    expect(scripts.test).toMatch(/^npm run build && vitest run$/);
  });

  it('documents a submit and a read-back, each with its output', () => {
    expect(curls).toHaveLength(2);
    expect(curls[0]?.documented.status).toBe('pending');
    expect(curls[1]?.documented.status).toBe('done');
  });

  it('the curl commands print what the README shows', async () => {
    const curl = async (command: string) => {
      const { stdout } = await run('sh', ['-c', command.replaceAll(DOCUMENTED_ADDRESS, ix.address)]);
      return JSON.parse(stdout) as Record<string, unknown>;
    };
    const [submit, readBack] = curls;
    if (!submit || !readBack) throw new Error('the README lost its curl commands');
    const submitted = await curl(submit.command);
    expect(shape(submitted)).toEqual(shape(submit.documented));

    let read: Record<string, unknown> = {};
    await eventually(async () => {
      read = await curl(readBack.command);
      return read.status === 'done';
    }, 'the documented job is done');
    expect(read.job_id).toBe(submitted.job_id);
    expect(shape(read)).toEqual(shape(readBack.documented));
  });
});

describe('README pipeline example', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ix-readme-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('loads as IX_PIPELINE and does what its comment says', async () => {
    const example = blocks(section('Pipelines')).find((b) => b.body.startsWith('// my-pipeline.js'));
    if (!example) throw new Error('the README lost its pipeline example');
    const file = join(dir, 'my-pipeline.js');
    writeFileSync(file, example.body);
    const pipeline = await loadPipeline({
      ...loadConfig({}).worker,
      pipeline: { kind: 'module', path: file },
    });
    const ctx = {
      signal: new AbortController().signal,
      ix_id: '0123456789abcdef',
      job_id: '00000000-0000-4000-8000-000000000000',
      attempt: 0,
      logger: silentLogger,
      progress: () => {},
    };
    const request = { ix_client_id: 'demo', request_id: 'r', input: { text: 'hello, ix and friends' } };
    expect(await pipeline(request, ctx)).toEqual({ result: { words: 4 } });
    expect(await pipeline({ ...request, input: 7 }, ctx)).toEqual({ error: 'input.text must be a string' });
  });
});
