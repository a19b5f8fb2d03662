/**
 * Results without polling (issue 16): `npm run bench:wait`.
 * Creates (and afterwards drops) its own database on IX_POSTGRES_URL's server (default
 * bench_wait), starts the built `ix api` (the npm script builds first) in a process of its own,
 * and measures, over HTTP from this process:
 * 1. Notify latency: W long-polls `GET /jobs/{id}?wait=30` on W pending jobs, W ∈ {1, 100, 1000};
 *    then this process completes the jobs as a worker would, through the store, in batches of 50
 *    one after another: claim, complete, and after the completion's commit the notification.
 *    A job's latency runs from its batch's completion statement returning (its commit) to its
 *    long-poll's response having arrived here, so it includes the notification's own round trip.
 * 2. 10,000 idle event streams `GET /jobs/{id}/events` on pending jobs, held 10 s: the API
 *    process's RSS and CPU, and its connections to PostgreSQL by application_name.
 * Prints one JSON line. The npm script raises `ulimit -n` to the hard limit: each side of the
 * 10,000 streams holds one descriptor per socket.
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import {
  createPool,
  jobClaimMany,
  jobCompleteMany,
  jobInsertMany,
  jobNotifyChanged,
  migrateUp,
  type Outcome,
} from '../src/store/index.js';
import { ownCpuMicros, processCpuMicros } from './cpu.js';
import { databaseName, databaseUrl, type IxApi, onServer, startIxApi } from './ix-process.js';

const DEFAULT_URL = 'postgres://postgres@127.0.0.1:5432/bench_wait';
const CLIENT = 'bench';
const KEY = 'bench-key-0123456789abcdef';
/**
 * W waiters, their jobs completed back to back (`burst`: the answers' throughput shows) or one
 * batch every PACE_MS (`paced`: 1,000 jobs/s, about what this machine's API accepts, so the rate
 * jobs can finish at for long); rounds per run (a single waiter gives one latency a round).
 */
const CASES = [
  { waiters: 1, paceMs: 0, rounds: 20, key: 'w1' },
  { waiters: 100, paceMs: 0, rounds: 3, key: 'w100_burst' },
  { waiters: 100, paceMs: 50, rounds: 3, key: 'w100_paced' },
  { waiters: 1000, paceMs: 0, rounds: 2, key: 'w1000_burst' },
  { waiters: 1000, paceMs: 50, rounds: 2, key: 'w1000_paced' },
] as const;
type Case = (typeof CASES)[number];
/** How many outcomes one completion statement records, as a busy worker's completer batches. */
const COMPLETE_BATCH = 50;
const WAIT_S = 30;
const IDLE_STREAMS = Number(process.env.IX_BENCH_IDLE_STREAMS ?? 10_000);
const IDLE_HOLD_S = 10;
/** Streams being opened at once: more overflow the API's listen backlog (511) into SYN retries. */
const OPEN_CONCURRENCY = 200;
const HEARTBEAT_S = process.env.IX_EVENTS_HEARTBEAT_SECONDS;
const WORKER_ID = '00000000-0000-4000-8000-00000000be9c';

/** IX_BENCH_CPU_PROFILE=dir writes a V8 CPU profile of the API process there, for reading with DevTools. */
/**
 * CPU time of this database's backends, by pid, in µs. The server is shared: other databases'
 * backends come and go, so the machine-wide sum of bench/cpu.ts can even run backwards.
 */
async function backendsCpu(db: pg.Pool, name: string): Promise<Map<number, number>> {
  const { rows } = await db.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name IN ('ix api', 'ix listener')`,
    [name],
  );
  const cpu = new Map<number, number>();
  for (const { pid } of rows) {
    const micros = await processCpuMicros(pid);
    if (micros !== null) cpu.set(pid, micros);
  }
  return cpu;
}

/** The CPU the backends alive at both ends spent in between, in µs. */
function backendsSpent(before: Map<number, number>, after: Map<number, number>): number {
  let total = 0;
  for (const [pid, micros] of after) total += micros - (before.get(pid) ?? micros);
  return total;
}

async function rssKiB(pid: number): Promise<number | null> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => null);
  const kib = status && /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
  return kib ? Number(kib) : null;
}

/** The database's client connections by application_name and state, this bench's own excluded. */
async function connections(db: pg.Pool, name: string): Promise<Record<string, number>> {
  const { rows } = await db.query<{ application_name: string; n: number }>(
    `SELECT application_name || ' (' || coalesce(state, '?') || ')' AS application_name, count(*)::int AS n
     FROM pg_stat_activity
     WHERE datname = $1 AND backend_type = 'client backend' AND application_name <> 'ix bench'
     GROUP BY 1 ORDER BY 1`,
    [name],
  );
  return Object.fromEntries(rows.map((row) => [row.application_name, row.n]));
}

/** Until the API's LISTEN connection is up, so notifications (not the shared poll) serve. */
async function untilListening(db: pg.Pool, name: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const { rows } = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity
       WHERE datname = $1 AND application_name = 'ix listener' AND query ILIKE 'LISTEN%'`,
      [name],
    );
    if ((rows[0]?.n ?? 0) > 0) {
      // Its probe notification (src/watch/watcher.ts) arrives within milliseconds of it.
      await sleep(500);
      return;
    }
    await sleep(100);
  }
  throw new Error('bench: the API never opened its LISTEN connection');
}

async function insertJobs(db: pg.Pool, prefix: string, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i += 1000) {
    const submissions = Array.from({ length: Math.min(1000, count - i) }, (_, j) => ({
      request: { ix_client_id: CLIENT, request_id: `${prefix}-${i + j}`, input: { pages: [1, 2, 3] } },
      callbackUrl: null,
    }));
    for (const result of await jobInsertMany(db, submissions)) {
      // A fresh database: no key was used before, let alone pruned.
      if (!result.job) throw new Error(`bench: ${prefix} was refused: ${result.conflict.message}`);
      ids.push(result.job.job_id);
    }
  }
  return ids;
}

const HEADERS = { authorization: `Bearer ${KEY}` };

interface LongPoll {
  /** Once the request is written out: its connection was accepted. */
  sent: Promise<void>;
  /** The time its whole response had arrived, and the job's status in it. */
  answer: Promise<{ at: number; status: string }>;
}

function longPoll(agent: http.Agent, address: string, jobId: string): LongPoll {
  let request: http.ClientRequest | undefined;
  const answer = new Promise<{ at: number; status: string }>((resolve, reject) => {
    request = http.get(`${address}/jobs/${jobId}?wait=${WAIT_S}`, { agent, headers: HEADERS }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => {
        const at = performance.now();
        if (res.statusCode !== 200) reject(new Error(`bench: long-poll answered ${res.statusCode}: ${body}`));
        else resolve({ at, status: (JSON.parse(body) as { status: string }).status });
      });
    });
    request.on('error', reject);
  });
  const sent = new Promise<void>((resolve, reject) => {
    request!.once('finish', () => resolve());
    request!.once('error', reject);
  });
  return { sent, answer };
}

function percentile(sorted: readonly number[], p: number): number {
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return Math.round((sorted[Math.max(0, index)] ?? Number.NaN) * 100) / 100;
}

interface Round {
  /** Per job, from its batch's commit to its answer's arrival. */
  latenciesMs: number[];
  /** Per batch, to its first answer: the notification's path without the answers queued behind. */
  firstOfBatchMs: number[];
  /** From the first batch's commit to the last answer. */
  spanMs: number;
  /** CPU spent over the span (from the first completion statement on), in µs. */
  apiCpuMicros: number | null;
  postgresCpuMicros: number;
  benchCpuMicros: number;
}

/** One round: W waiters, then their jobs completed in batches. */
async function notifyRound(
  db: pg.Pool,
  name: string,
  api: IxApi,
  { waiters, paceMs }: Case,
  round: string,
): Promise<Round> {
  const ids = await insertJobs(db, round, waiters);
  const agent = new http.Agent({ keepAlive: false, maxSockets: Number.POSITIVE_INFINITY });
  try {
    const polls = ids.map((id) => longPoll(agent, api.address, id));
    const answers = polls.map((poll) => poll.answer);
    // All written out first: a burst of connections beyond the API's listen backlog (511) has
    // some retried a second later, and those would arrive after their job had finished.
    await Promise.all(polls.map((poll) => poll.sent));
    // Nothing in ix tells when a long-poll is registered with the watcher: each was read and
    // watched well within this, on this machine (1,000 requests take ~0.3 s to be answered).
    await sleep(waiters === 1 ? 200 : 1000);
    const claimed = await jobClaimMany(db, { limit: waiters, workerId: WORKER_ID, startNow: waiters });
    if (claimed.length !== waiters) throw new Error(`bench: claimed ${claimed.length} of ${waiters}`);
    const apiBefore = await processCpuMicros(api.pid);
    const backendsBefore = await backendsCpu(db, name);
    const benchBefore = ownCpuMicros();
    const committedAt = new Map<string, number>();
    const started = performance.now();
    for (let i = 0; i < claimed.length; i += COMPLETE_BATCH) {
      if (paceMs > 0) await sleep(started + (i / COMPLETE_BATCH) * paceMs - performance.now());
      const batch = claimed.slice(i, i + COMPLETE_BATCH);
      const outcomes: Outcome[] = batch.map((c) => ({
        jobId: c.job.job_id,
        attempt: c.job.attempts,
        claimEpoch: c.claimEpoch,
        status: 'done',
        response: { ix_id: c.job.ix_id, error: null, result: { pages: 3 } },
      }));
      await jobCompleteMany(db, outcomes, { workerId: WORKER_ID });
      const at = performance.now();
      for (const c of batch) committedAt.set(c.job.job_id, at);
      await jobNotifyChanged(
        db,
        batch.map((c) => c.job.job_id),
      );
    }
    const arrived = await Promise.all(answers);
    const benchCpuMicros = ownCpuMicros() - benchBefore;
    const apiAfter = await processCpuMicros(api.pid);
    const postgresCpuMicros = backendsSpent(backendsBefore, await backendsCpu(db, name));
    const first = Math.min(...committedAt.values());
    const firstOfBatchMs: number[] = [];
    for (let i = 0; i < claimed.length; i += COMPLETE_BATCH) {
      const batch = claimed.slice(i, i + COMPLETE_BATCH).map((c) => c.job.job_id);
      const arrivals = batch.map((id) => arrived[ids.indexOf(id)]!.at);
      firstOfBatchMs.push(Math.min(...arrivals) - committedAt.get(batch[0]!)!);
    }
    return {
      firstOfBatchMs,
      latenciesMs: ids.map((id, i) => {
        const answer = arrived[i]!;
        if (answer.status !== 'done') throw new Error(`bench: job ${id} answered ${answer.status}`);
        return answer.at - committedAt.get(id)!;
      }),
      spanMs: Math.max(...arrived.map((answer) => answer.at)) - first,
      apiCpuMicros: apiBefore === null || apiAfter === null ? null : apiAfter - apiBefore,
      postgresCpuMicros,
      benchCpuMicros,
    };
  } finally {
    agent.destroy();
  }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)] ?? Number.NaN;
}

async function notifyLatency(db: pg.Pool, name: string, api: IxApi) {
  const rounds = new Map<Case, Round[]>(CASES.map((c) => [c, []]));
  const maxRounds = Math.max(...CASES.map((c) => c.rounds));
  // Interleaved, so a noisy moment on the shared machine does not fall on one case alone.
  for (let round = 0; round < maxRounds; round++) {
    for (const c of CASES) {
      if (round >= c.rounds) continue;
      rounds.get(c)!.push(await notifyRound(db, name, api, c, `notify-${c.key}-${round}`));
    }
  }
  return Object.fromEntries(
    [...rounds].map(([{ waiters: w, key }, results]) => {
      const sorted = results.flatMap((r) => r.latenciesMs).sort((a, b) => a - b);
      const apiCpu = results.map((r) => r.apiCpuMicros);
      return [
        key,
        {
          rounds: results.length,
          samples: sorted.length,
          p50_ms: percentile(sorted, 50),
          p99_ms: percentile(sorted, 99),
          max_ms: percentile(sorted, 100),
          first_of_batch_p50_ms: percentile(
            results.flatMap((r) => r.firstOfBatchMs).sort((a, b) => a - b),
            50,
          ),
          // Medians over the rounds: what one round of W answers costs.
          span_ms: Math.round(median(results.map((r) => r.spanMs))),
          api_cpu_us_per_answer: apiCpu.includes(null)
            ? null
            : Math.round(median(apiCpu.map((us) => us ?? 0)) / w),
          postgres_cpu_us_per_answer: Math.round(median(results.map((r) => r.postgresCpuMicros)) / w),
          bench_cpu_us_per_answer: Math.round(median(results.map((r) => r.benchCpuMicros)) / w),
        },
      ];
    }),
  );
}

/** Opens an event stream; resolves once its first event (the job as it stands) has arrived. */
function openStream(agent: http.Agent, address: string, jobId: string): Promise<http.ClientRequest> {
  return new Promise((resolve, reject) => {
    const request = http.get(`${address}/jobs/${jobId}/events`, { agent, headers: HEADERS }, (res) => {
      if (res.statusCode !== 200) {
        reject(new Error(`bench: event stream answered ${res.statusCode}`));
        return;
      }
      res.once('data', () => resolve(request));
      res.on('error', () => {});
    });
    request.on('error', reject);
  });
}

async function idleStreams(db: pg.Pool, name: string, { address, pid }: IxApi) {
  const ids = await insertJobs(db, 'idle', IDLE_STREAMS);
  const rssBefore = await rssKiB(pid);
  const connectionsBefore = await connections(db, name);
  const agent = new http.Agent({ keepAlive: false, maxSockets: Number.POSITIVE_INFINITY });
  const streams: http.ClientRequest[] = [];
  const openStarted = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: OPEN_CONCURRENCY }, async () => {
      while (next < ids.length) {
        const id = ids[next++]!;
        streams.push(await openStream(agent, address, id));
      }
    }),
  );
  const openS = (performance.now() - openStarted) / 1000;
  // Let the last watches' reads and the garbage of opening settle before the idle hold.
  await sleep(2000);
  const cpuBefore = await processCpuMicros(pid);
  const backendsBefore = await backendsCpu(db, name);
  const rssSamples: number[] = [];
  let connectionsHolding: Record<string, number> = {};
  for (let s = 0; s < IDLE_HOLD_S; s++) {
    await sleep(1000);
    const rss = await rssKiB(pid);
    if (rss !== null) rssSamples.push(rss);
    if (s === Math.floor(IDLE_HOLD_S / 2)) connectionsHolding = await connections(db, name);
  }
  const cpuAfter = await processCpuMicros(pid);
  const backendsAfter = await backendsCpu(db, name);
  const open = streams.filter((request) => !request.destroyed && request.socket?.destroyed === false).length;
  for (const request of streams) request.destroy();
  agent.destroy();
  await sleep(1000);
  return {
    streams: IDLE_STREAMS,
    still_open_after_hold: open,
    open_s: Math.round(openS * 10) / 10,
    hold_s: IDLE_HOLD_S,
    rss_before_mib: rssBefore === null ? null : Math.round(rssBefore / 1024),
    rss_holding_mib: rssSamples.length === 0 ? null : Math.round(Math.max(...rssSamples) / 1024),
    rss_after_close_mib: await rssKiB(pid).then((kib) => (kib === null ? null : Math.round(kib / 1024))),
    api_cpu_us_during_hold: cpuBefore === null || cpuAfter === null ? null : cpuAfter - cpuBefore,
    postgres_cpu_us_during_hold: backendsSpent(backendsBefore, backendsAfter),
    api_connections_before: connectionsBefore,
    api_connections_holding: connectionsHolding,
  };
}

async function main(): Promise<void> {
  const loadAtStart = loadavg()[0];
  const database = databaseUrl(DEFAULT_URL);
  const name = databaseName(database);
  await onServer(database, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await onServer(database, `CREATE DATABASE ${name}`);
  const pool = createPool(database.toString(), { max: 2, applicationName: 'ix bench' });
  let child: ChildProcess | undefined;
  try {
    await migrateUp(pool);
    const api = await startIxApi(database, {
      IX_API_KEYS: `${CLIENT}=${KEY}`,
      // Set, to tell the idle streams' heartbeats apart from the watcher's safety poll.
      ...(HEARTBEAT_S === undefined ? {} : { IX_EVENTS_HEARTBEAT_SECONDS: HEARTBEAT_S }),
    });
    child = api.child;
    await untilListening(pool, name);
    const notify = await notifyLatency(pool, name, api);
    const idle = IDLE_STREAMS > 0 ? await idleStreams(pool, name, api) : null;
    console.log(
      JSON.stringify({
        bench: 'api.wait',
        at: new Date().toISOString(),
        // The machine is shared: its 1-minute load average at the start and the end of the run.
        load_average: [loadAtStart, loadavg()[0]],
        complete_batch: COMPLETE_BATCH,
        events_heartbeat_s: HEARTBEAT_S === undefined ? 'default (15)' : Number(HEARTBEAT_S),
        notify_latency: notify,
        idle,
      }),
    );
  } finally {
    if (child && child.exitCode === null) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
    await pool.end();
    await onServer(database, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  }
}

await main();
