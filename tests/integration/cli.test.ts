/**
 * The built `ix` command's contract with its user: exit codes, one-line configuration errors,
 * help and version, and submit/get against a real database.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { SETTINGS } from '../../src/config.js';
import type { Job } from '../../src/contracts/index.js';
import { jobGet, jobNotifyChanged } from '../../src/store/index.js';
import { CLI, cleanEnv, exited, runCli, startIx } from '../support/cli.js';
import { useTestDatabase } from '../support/db.js';
import { makeRequest, success } from '../support/factories.js';
import { claimPending, finishedJobs, finishJob, insertPending, retriedThenDone } from '../support/jobs.js';
import { eventually, makeWorker } from '../support/worker.js';

const db = useTestDatabase();
const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };

function oneLine(stderr: string): string {
  const lines = stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  return lines[0] as string;
}

describe('configuration errors stop ix with one line naming the variable, exit 2', () => {
  it.each([
    ['IX_PORT', { IX_PORT: 'abc' }, /^ix: IX_PORT: expected a whole number, got "abc"$/],
    ['IX_PIPELINE', { IX_PIPELINE: 'magic' }, /^ix: IX_PIPELINE: expected echo, http or a path/],
    [
      'IX_POSTGRES_URL',
      { IX_POSTGRES_URL: 'postgres://postgres:hunter2@127.0.0.1:1/x' },
      /^ix: IX_POSTGRES_URL: cannot connect to postgres:\/\/postgres@127\.0\.0\.1:1\/x \(ECONNREFUSED\)$/,
    ],
  ])('%s', async (_variable, env, message) => {
    const { code, stdout, stderr } = await runCli(['start'], env);
    expect(code).toBe(2);
    expect(oneLine(stderr)).toMatch(message);
    expect(stderr).not.toContain('hunter2');
    expect(stdout).toBe('');
  });

  it('an open API on a public address, before any database is started', async () => {
    const { code, stderr } = await runCli(['start'], { IX_HOST: '0.0.0.0', IX_DATA_DIR: '/nonexistent/ix' });
    expect(code).toBe(2);
    expect(oneLine(stderr)).toMatch(/^ix: IX_API_KEYS: is required when the API listens on a non-loopback/);
  });

  it('a missing module pipeline', async () => {
    const { code, stderr } = await runCli(['worker'], {
      IX_POSTGRES_URL: db.url,
      IX_PIPELINE: './no-such-pipeline.js',
    });
    expect(code).toBe(2);
    expect(oneLine(stderr)).toMatch(/^ix: IX_PIPELINE: cannot load \.\/no-such-pipeline\.js/);
  });

  it.each([['api'], ['worker'], ['submit'], ['get', '00000000-0000-4000-8000-000000000000']])(
    'ix %s without IX_POSTGRES_URL',
    async (...args) => {
      const { code, stderr } = await runCli(args);
      expect(code).toBe(2);
      expect(oneLine(stderr)).toBe(`ix: IX_POSTGRES_URL: is required for ix ${args[0]}`);
    },
  );
});

describe('help and version', () => {
  it('--version prints the version of package.json', async () => {
    expect(await runCli(['--version'])).toEqual({ code: 0, stdout: `${version}\n`, stderr: '' });
  });

  it('--help lists every command', async () => {
    const { code, stdout } = await runCli(['--help']);
    expect(code).toBe(0);
    for (const command of ['start', 'api', 'worker', 'migrate', 'submit', 'get'])
      expect(stdout).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
  });

  it('--help points to the settings, and ix help settings lists each with its default and doc', async () => {
    expect((await runCli(['--help'])).stdout).toMatch(/^ {2}help settings\b/m);
    const { code, stdout } = await runCli(['help', 'settings']);
    expect(code).toBe(0);
    const lines = stdout.split('\n');
    for (const setting of Object.values(SETTINGS).flatMap((group) => Object.values(group))) {
      const at = lines.findIndex((line) => line.startsWith(`  ${setting.name} `));
      expect(at, `${setting.name} is listed`).toBeGreaterThanOrEqual(0);
      expect(lines[at]).toContain(`default: ${setting.defaultText ?? 'unset'}`);
      expect(lines[at + 1]?.trim()).toBe(setting.doc);
    }
    expect(lines).toContain('  IX_DB_POOL_SIZE (default: 10; 2 to 1000)');
  });

  it.each([['start'], ['api'], ['worker'], ['migrate'], ['submit'], ['get']])(
    'ix %s --help explains the command and starts nothing',
    async (command) => {
      const { code, stdout } = await runCli([command, '--help']);
      expect(code).toBe(0);
      expect(stdout).toMatch(new RegExp(`^Usage: ix ${command}\\b`));
    },
  );

  it('no command or an unknown one is a usage error', async () => {
    expect((await runCli([])).code).toBe(2);
    const unknown = await runCli(['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^ix: unknown command "frobnicate"/);
  });

  it('an unknown option is a usage error, not a crash', async () => {
    const { code, stderr } = await runCli(['start', '--bogus']);
    expect(code).toBe(2);
    expect(stderr).toMatch(/^ix: Unknown option '--bogus'/);
  });
});

describe('ix submit and ix get', () => {
  const env = () => ({ IX_POSTGRES_URL: db.url });

  it('submits a RequestIX from stdin, prints the job, and ix get prints it back', async () => {
    const request = { ix_client_id: 'cli', request_id: 'stdin-1', input: { pages: 2 } };
    const submitted = await runCli(['submit'], env(), JSON.stringify(request));
    expect(submitted.code).toBe(0);
    const job = JSON.parse(submitted.stdout) as Job;
    expect(job).toMatchObject({ client_id: 'cli', request_id: 'stdin-1', status: 'pending', attempts: 0 });
    expect(job.request.input).toEqual({ pages: 2 });

    const fetched = await runCli(['get', job.job_id], env());
    expect(fetched.code).toBe(0);
    expect(JSON.parse(fetched.stdout)).toEqual(job);
  });

  it('ix get prints the attempt history, every run with its outcome', async () => {
    const job = await retriedThenDone(db.pool, randomUUID());
    const fetched = await runCli(['get', job.job_id], env());
    expect(fetched.code).toBe(0);
    const printed = JSON.parse(fetched.stdout) as Job;
    expect(printed.attempt_history.map((run) => [run.attempt, run.outcome, run.error])).toEqual([
      [1, 'retry', 'HTTP 503: busy'],
      [2, 'done', null],
    ]);
    expect(printed).toEqual(job);
  });

  it('submits the {request, callback_url} envelope, and a replay prints the same job', async () => {
    const body = JSON.stringify({
      request: { ix_client_id: 'cli', request_id: 'env-1', input: null },
      callback_url: 'https://example.com/hook',
    });
    const first = await runCli(['submit', '-'], env(), body);
    expect(first.code).toBe(0);
    const job = JSON.parse(first.stdout) as Job;
    expect(job.callback_url).toBe('https://example.com/hook');

    const replay = await runCli(['submit'], env(), body);
    expect(replay.code).toBe(0);
    expect(JSON.parse(replay.stdout)).toEqual(job);
    expect(replay.stderr).toContain(`already submitted as job ${job.job_id}`);
  });

  it('a request id already used for a different request exits 1 naming the job, and writes nothing', async () => {
    const request = { ix_client_id: 'cli', request_id: 'conflict-1', input: { pages: 1 } };
    const first = await runCli(['submit'], env(), JSON.stringify(request));
    const job = JSON.parse(first.stdout) as Job;
    const conflict = await runCli(['submit'], env(), JSON.stringify({ ...request, input: { pages: 2 } }));
    expect(conflict.code).toBe(1);
    expect(conflict.stdout).toBe('');
    expect(oneLine(conflict.stderr)).toMatch(
      new RegExp(
        `^ix: request_id "conflict-1" of client "cli" was already submitted, as job ${job.job_id}, with a different input or callback_url`,
      ),
    );
    const { rows } = await db.pool.query('SELECT input FROM ix_jobs');
    expect(rows).toEqual([{ input: { pages: 1 } }]);
  });

  it('lists every invalid field with its path, exit 2, and writes nothing', async () => {
    const { code, stdout, stderr } = await runCli(
      ['submit'],
      env(),
      JSON.stringify({ ix_client_id: '', request_id: 'x', extra: true }),
    );
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toMatch(/^ix: invalid request:/);
    expect(stderr).toMatch(/^ {2}\$\.ix_client_id: /m);
    expect(stderr).toMatch(/^ {2}\$\.input: /m);
    expect(stderr).toMatch(/extra/);
    const { rows } = await db.pool.query('SELECT count(*)::int AS n FROM ix_jobs');
    expect(rows[0].n).toBe(0);
  });

  it('refuses what it could not keep as written, naming each field by its path, exit 2', async () => {
    const { code, stdout, stderr } = await runCli(
      ['submit'],
      env(),
      '{"ix_client_id": "cli", "request_id": "exact-1", "input": {"big": 1e400, "id": 12345678901234567890123, "text": "\\ud800"}}',
    );
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toMatch(/^ix: invalid request:/);
    expect(stderr).toMatch(/^ {2}\$\.input\.big: .*send it as a string$/m);
    expect(stderr).toMatch(/^ {2}\$\.input\.id: .*send it as a string$/m);
    expect(stderr).toMatch(/^ {2}\$\.input\.text: .*lone surrogate \\ud800/m);
    const { rows } = await db.pool.query('SELECT count(*)::int AS n FROM ix_jobs');
    expect(rows[0].n).toBe(0);
  });

  it('rejects text that is not JSON, exit 2', async () => {
    const { code, stderr } = await runCli(['submit'], env(), '{not json');
    expect(code).toBe(2);
    expect(stderr).toMatch(/^ix: invalid request:\n {2}not JSON: /);
  });

  it('reads the request from a FILE, and says so when it cannot', async () => {
    const missing = await runCli(['submit', '/nonexistent/request.json'], env());
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^ix: cannot read \/nonexistent\/request\.json/);
  });

  it('ix get of an unknown job exits 1 "not found"; of a non-UUID, 2', async () => {
    const unknown = await runCli(['get', '00000000-0000-4000-8000-000000000000'], env());
    expect(unknown).toEqual({
      code: 1,
      stdout: '',
      stderr: 'ix: no job 00000000-0000-4000-8000-000000000000 (not found)\n',
    });
    const invalid = await runCli(['get', 'nope'], env());
    expect(invalid.code).toBe(2);
    expect(invalid.stderr).toMatch(/^ix: "nope" is not a job id/);
  });
});

describe('ix prune', () => {
  const env = () => ({ IX_POSTGRES_URL: db.url, IX_RETAIN_DONE: '1s', IX_RETAIN_ERROR: 'off' });

  it('--dry-run prints what a pass would remove; a pass removes it, and the job answers gone', async () => {
    const [done, error] = await finishedJobs(db.pool, null, ['done', 'error']);
    // The retention of one second must have passed for the job, on the database's clock.
    await eventually(async () => {
      const { rows } = await db.pool.query<{ past: boolean }>(
        `SELECT finished_at < now() - interval '1 second' AS past FROM ix_jobs WHERE job_id = $1`,
        [done!.job_id],
      );
      return rows[0]?.past === true;
    }, 'a second since the job finished');
    const dry = await runCli(['prune', '--dry-run'], env());
    expect(dry.code).toBe(0);
    expect(dry.stderr).toContain('retention: done 1s, error forever, cancelled 7d, tombstones 30d');
    expect(dry.stdout).toMatch(/^would remove 1 expired jobs \(done 1, error 0, cancelled 0\)/);
    expect(await jobGet(db.pool, done!.job_id)).not.toBeNull();

    const pruned = await runCli(['prune'], env());
    expect(pruned.code).toBe(0);
    expect(pruned.stdout).toMatch(/^removed 1 expired jobs \(done 1, error 0, cancelled 0\)/);
    expect(pruned.stdout).toContain('removed 0 expired tombstones');
    expect(await jobGet(db.pool, done!.job_id)).toBeNull();
    expect(await jobGet(db.pool, error!.job_id)).not.toBeNull();

    const gone = await runCli(['get', done!.job_id], env());
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/^ix: job .* ended done and was pruned at .*: its result is gone/);
    const cancelGone = await runCli(['cancel', done!.job_id], env());
    expect(cancelGone.code).toBe(1);
    expect(cancelGone.stderr).toMatch(/^ix: job .* ended done and was pruned at .*: its result is gone/);
    const resubmit = await runCli(['submit'], env(), JSON.stringify(done!.request));
    expect(resubmit.code).toBe(1);
    expect(resubmit.stderr).toContain('its result is gone');
  });
});

describe('ix cancel', () => {
  const env = () => ({ IX_POSTGRES_URL: db.url });
  const submitted = async (requestId: string) => {
    const request = { ix_client_id: 'cli', request_id: requestId, input: 1 };
    return JSON.parse((await runCli(['submit'], env(), JSON.stringify(request))).stdout) as Job;
  };

  it('cancels a pending job and prints it; again: the same, exit 0; unknown: exit 1; non-UUID: 2', async () => {
    const job = await submitted('cancel-1');
    const cancelled = await runCli(['cancel', job.job_id], env());
    expect(cancelled.code).toBe(0);
    const printed = JSON.parse(cancelled.stdout) as Job;
    expect(printed).toMatchObject({
      job_id: job.job_id,
      status: 'cancelled',
      response: { error: 'cancelled' },
    });
    const again = await runCli(['cancel', job.job_id], env());
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toEqual(printed);
    const unknown = await runCli(['cancel', '00000000-0000-4000-8000-000000000000'], env());
    expect(unknown).toMatchObject({
      code: 1,
      stderr: 'ix: no job 00000000-0000-4000-8000-000000000000 (not found)\n',
    });
    expect((await runCli(['cancel', 'nope'], env())).code).toBe(2);
  });

  it('over HTTP: cancels with the client key; a job that had ended is printed, exit 1', async () => {
    const KEY = 'cli-cancel-key-0123456789';
    const api = await startIx({ IX_POSTGRES_URL: db.url, IX_API_KEYS: `cli=${KEY}` }, 'api');
    try {
      const job = await submitted('cancel-http-1');
      const cancelled = await runCli(['cancel', '--url', api.address, job.job_id], { IX_API_KEY: KEY });
      expect(cancelled.code).toBe(0);
      expect(JSON.parse(cancelled.stdout)).toMatchObject({ job_id: job.job_id, status: 'cancelled' });

      const done = await submitted('cancel-http-2');
      await db.pool.query('DELETE FROM ix_job_queue WHERE job_id = $1', [done.job_id]);
      await db.pool.query(
        `UPDATE ix_jobs SET status = 'done', started_at = now(), finished_at = now(),
           response = jsonb_build_object('ix_id', ix_id, 'error', NULL, 'result', 1) WHERE job_id = $1`,
        [done.job_id],
      );
      const late = await runCli(['cancel', '--url', api.address, done.job_id], { IX_API_KEY: KEY });
      expect(late.code).toBe(1);
      expect(JSON.parse(late.stdout)).toMatchObject({ job_id: done.job_id, status: 'done' });
      expect(oneLine(late.stderr)).toMatch(new RegExp(`^ix: job ${done.job_id} has already ended done`));
    } finally {
      expect(await api.stop('SIGTERM')).toBe(0);
    }
  });
});

describe('ix submit --wait and ix get --follow', () => {
  const env = () => ({ IX_POSTGRES_URL: db.url });

  it('submit --wait prints the finished job; one not finished in time is printed as it stands, exit 1', async () => {
    const worker = makeWorker(db, async (request) => {
      if (request.input === 'slow') await new Promise((resolve) => setTimeout(resolve, 5_000));
      return { result: request.input };
    });
    await worker.start();
    try {
      const fast = { ix_client_id: 'cli', request_id: 'wait-fast', input: 'fast' };
      const done = await runCli(['submit', '--wait', '10'], env(), JSON.stringify(fast));
      expect(done.code).toBe(0);
      expect(JSON.parse(done.stdout)).toMatchObject({ status: 'done', response: { result: 'fast' } });

      const slow = { ix_client_id: 'cli', request_id: 'wait-slow', input: 'slow' };
      const late = await runCli(['submit', '--wait', '1'], env(), JSON.stringify(slow));
      expect(late.code).toBe(1);
      expect(JSON.parse(late.stdout)).toMatchObject({ status: 'running' });
      expect(oneLine(late.stderr)).toMatch(/^ix: job [0-9a-f-]+ is still running after 1 s$/);

      // Over HTTP: the same, through the API's long-poll.
      const api = await startIx({ IX_POSTGRES_URL: db.url }, 'api');
      try {
        const viaApi = { ix_client_id: 'cli', request_id: 'wait-http', input: 'http' };
        const answered = await runCli(['submit', '--url', api.address, '--wait'], {}, JSON.stringify(viaApi));
        expect(answered.code).toBe(0);
        expect(JSON.parse(answered.stdout)).toMatchObject({ status: 'done', response: { result: 'http' } });
      } finally {
        await api.stop();
      }
    } finally {
      await worker.stop();
    }
  }, 30_000);

  it('get --follow prints each change as a JSON line until the job has finished', async () => {
    const { job } = await insertPending(db.pool, makeRequest({ ix_client_id: 'cli' }), null);
    const following = spawn(process.execPath, [CLI, 'get', '--follow', job.job_id], { env: cleanEnv(env()) });
    let stdout = '';
    following.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk;
    });
    const printed = () => stdout.split('\n').filter((line) => line !== '').length;
    // Each change once the one before it is printed, as a worker would make them.
    await eventually(async () => printed() === 1, 'the pending state printed', 10_000);
    await claimPending(db.pool, 1);
    await jobNotifyChanged(db.pool, [job.job_id]);
    await eventually(async () => printed() === 2, 'the running state printed', 10_000);
    await finishJob(db.pool, job.job_id, 0, success(job.ix_id));
    await jobNotifyChanged(db.pool, [job.job_id]);
    expect(await exited(following)).toBe(0);
    const lines = stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { id: string; type: string; job: Job });
    expect(lines.map((line) => [line.type, line.job.status])).toEqual([
      ['pending', 'pending'],
      ['running', 'running'],
      ['done', 'done'],
    ]);
  }, 30_000);
});

describe('ix submit and ix get --url: over HTTP, through ix api', () => {
  const KEY = 'cli-http-key-0123456789';

  it('submits, replays and gets with the client key; every failure exits as on the database', async () => {
    const api = await startIx({ IX_POSTGRES_URL: db.url, IX_API_KEYS: `cli=${KEY}` }, 'api');
    try {
      const env = { IX_API_KEY: KEY };
      const request = JSON.stringify({ ix_client_id: 'cli', request_id: 'http-1', input: { pages: 3 } });
      const first = await runCli(['submit', '--url', api.address], env, request);
      expect(first.code).toBe(0);
      const job = JSON.parse(first.stdout) as Job;
      expect(job).toMatchObject({ client_id: 'cli', request_id: 'http-1', status: 'pending' });

      const replay = await runCli(['submit', '--url', api.address], env, request);
      expect(JSON.parse(replay.stdout)).toEqual(job);
      expect(replay.stderr).toContain(`already submitted as job ${job.job_id}`);

      const conflict = await runCli(
        ['submit', '--url', api.address],
        env,
        JSON.stringify({ ix_client_id: 'cli', request_id: 'http-1', input: { pages: 4 } }),
      );
      expect(conflict.code).toBe(1);
      expect(conflict.stdout).toBe('');
      expect(oneLine(conflict.stderr)).toMatch(
        new RegExp(
          `^ix: 409 idempotency_conflict: request_id "http-1" of client "cli" was already submitted, as job ${job.job_id},`,
        ),
      );

      // IX_API_URL stands in for --url.
      const fetched = await runCli(['get', job.job_id], { ...env, IX_API_URL: api.address });
      expect(fetched.code).toBe(0);
      expect(JSON.parse(fetched.stdout)).toEqual(job);

      const unknown = await runCli(
        ['get', '--url', api.address, '00000000-0000-4000-8000-000000000000'],
        env,
      );
      expect(unknown.code).toBe(1);
      expect(unknown.stderr).toMatch(/^ix: 404 not_found: no job 00000000-0000-4000-8000-000000000000/);

      const wrongKey = await runCli(
        ['submit', '--url', api.address],
        { IX_API_KEY: 'not-the-key-at-all' },
        request,
      );
      expect(wrongKey.code).toBe(2);
      expect(oneLine(wrongKey.stderr)).toBe('ix: IX_API_KEY: 401 unauthorized: unknown API key');

      const badCallback = await runCli(
        ['submit', '--url', api.address],
        env,
        JSON.stringify({
          request: { ix_client_id: 'cli', request_id: 'http-2', input: 1 },
          callback_url: 'ftp://x',
        }),
      );
      expect(badCallback.code).toBe(2);
      expect(badCallback.stderr).toMatch(/^ix: invalid request:\n {2}400 invalid_request: /);
      expect(badCallback.stderr).toMatch(/^ {2}\$\.callback_url: /m);
    } finally {
      expect(await api.stop('SIGTERM')).toBe(0);
    }
    const { rows } = await db.pool.query('SELECT count(*)::int AS n FROM ix_jobs');
    expect(rows[0].n).toBe(1);
  });

  it('an unreachable API exits 1 naming it; a malformed --url is a usage error', async () => {
    const request = JSON.stringify({ ix_client_id: 'cli', request_id: 'x', input: 1 });
    // A port that was free a moment ago: nothing listens there.
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    const url = `http://127.0.0.1:${port}`;
    const down = await runCli(['submit', '--url', url], {}, request);
    expect(down.code).toBe(1);
    expect(oneLine(down.stderr)).toBe(`ix: cannot reach the ix API at ${url} (ECONNREFUSED)`);
    const malformed = await runCli(['get', '--url', 'ftp://nowhere', '00000000-0000-4000-8000-000000000000']);
    expect(malformed.code).toBe(2);
    expect(malformed.stderr).toMatch(/^ix: --url: must be an http\(s\) URL/);
  });
});

describe('ix api and ix worker apart, as in production', () => {
  it('a job submitted to ix api is run by ix worker; both stop with exit 0 on SIGTERM', async () => {
    const api = await startIx({ IX_POSTGRES_URL: db.url }, 'api');
    const worker = spawn(process.execPath, [CLI, 'worker', '--concurrency', '2'], {
      env: cleanEnv({ IX_POSTGRES_URL: db.url }),
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    try {
      expect(api.stderr()).toContain(`database: ${db.url.replace(/:[^:@/]+@/, '@')}`);
      expect((await fetch(`${api.address}/readyz`)).status).toBe(200);
      const response = await fetch(`${api.address}/jobs`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ request: { ix_client_id: 'prod', request_id: 'apart-1', input: [1, 2] } }),
      });
      expect(response.status).toBe(201);
      const { job_id: jobId } = (await response.json()) as Job;
      let job: Job | undefined;
      await eventually(async () => {
        job = (await (await fetch(`${api.address}/jobs/${jobId}`)).json()) as Job;
        return job.status === 'done';
      }, 'the worker process ran the job');
      expect(job?.response?.result).toEqual([1, 2]);
    } finally {
      worker.kill('SIGTERM');
      expect(await exited(worker)).toBe(0);
      expect(await api.stop('SIGTERM')).toBe(0);
    }
  });
});
