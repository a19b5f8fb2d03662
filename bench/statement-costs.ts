/**
 * What each of a worker's statements costs PostgreSQL's CPU when jobs come one at a time, as
 * they do when submits trickle in: the backend's own CPU time (/proc) per call, on one connection
 * that plans as a worker's does (generic plans), for a statement that does nothing (`SELECT 1`), a
 * one-row update with its durable commit, the claim on an empty queue, the next-due probe, a
 * claim of one job, the completion of one job, and then the same claim and completion of 100
 * jobs (BATCH), per job, with the client's CPU for those (this process: writing the statement,
 * reading and shaping its rows, as a worker does). Blocks of CALLS calls, ROUNDS times; prints one
 * JSON line of medians.
 * Run: npm run bench:statement-costs
 * Env: CALLS (1000), ROUNDS (3), BATCH (100), PGHOST/PGPORT/PGUSER (127.0.0.1:5432, postgres; the server must be
 *      on this machine), IX_BENCH_DB (bench_statement_costs, recreated).
 */
import {
  type Claimed,
  createPool,
  jobClaimMany,
  jobCompleteMany,
  jobInsertMany,
  jobNextReadyInMs,
  migrateUp,
  workerHeartbeat,
} from '../src/store/index.js';
import { processCpuMicros } from './cpu.js';
import { env, recreateDatabase, serverUrl } from './env.js';
import { makePayload } from './workload.js';

const CALLS = Number(env('CALLS', '1000'));
const ROUNDS = Number(env('ROUNDS', '3'));
const DB = env('IX_BENCH_DB', 'bench_statement_costs');
const WORKER = '00000000-0000-7000-8000-00000000c057';
const BATCH = Number(env('BATCH', '100'));

interface Cost {
  backend: number;
  client: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main() {
  await recreateDatabase(DB);
  const url = `${serverUrl()}/${DB}`;
  const submitter = createPool(url, { max: 1 });
  await migrateUp(submitter);
  const worker = createPool(url, { max: 1, genericPlans: true });
  await workerHeartbeat(worker, WORKER);
  const { rows } = await worker.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  const backend = rows[0]!.pid;
  const backendCpu = async () => {
    const micros = await processCpuMicros(backend);
    if (micros === null) throw new Error('bench: no /proc for the backend; run on the server’s machine');
    return micros;
  };

  let submitted = 0;
  const submit = async (jobs: number) => {
    const submissions = Array.from({ length: jobs }, (_, i) => ({
      request: { ix_client_id: `client-${i % 8}`, request_id: `r-${submitted++}`, input: makePayload(i) },
      callbackUrl: null,
    }));
    await jobInsertMany(submitter, submissions);
  };
  const claim = (limit: number) => jobClaimMany(worker, { limit, workerId: WORKER, startNow: 10 });
  const complete = (claims: readonly Claimed[]) =>
    jobCompleteMany(
      worker,
      claims.map((c) => ({
        jobId: c.job.job_id,
        attempt: c.job.attempts,
        claimEpoch: c.claimEpoch,
        leaseId: c.leaseId,
        limited: c.limited,
        status: 'done' as const,
        response: { ix_id: c.job.ix_id, error: null, result: { ok: true } },
      })),
      { workerId: WORKER, endedLeases: [...new Set(claims.map((c) => c.leaseId))] },
    );

  /**
   * The backend's CPU µs per call of `step`, and this process's (the client: sending the
   * statement, reading and shaping its rows), over CALLS calls; `prepare` runs first, unmeasured.
   */
  const perCall = async (step: (call: number) => Promise<unknown>, prepare?: () => Promise<void>) => {
    await prepare?.();
    const before = await backendCpu();
    const clientBefore = process.cpuUsage();
    for (let call = 0; call < CALLS; call++) await step(call);
    const client = process.cpuUsage(clientBefore);
    return {
      backend: ((await backendCpu()) - before) / CALLS,
      client: (client.user + client.system) / CALLS,
    };
  };
  const perJob = ({ backend, client }: Cost) => ({ backend: backend / BATCH, client: client / BATCH });

  const held: Claimed[] = [];
  const steps: Record<string, () => Promise<Cost>> = {
    select_1: () => perCall(() => worker.query('SELECT 1')),
    one_row_update_committed: () =>
      perCall(() =>
        worker.query('UPDATE ix_workers SET heartbeat_at = now() WHERE worker_id = $1', [WORKER]),
      ),
    claim_empty_queue: () => perCall(() => claim(110)),
    next_due_probe: () => perCall(() => jobNextReadyInMs(worker)),
    claim_1_job: () =>
      perCall(
        async () => held.push(...(await claim(1))),
        () => submit(CALLS),
      ),
    complete_1_job: () => perCall((call) => complete([held[call]!])),
    [`claim_${BATCH}_jobs_per_job`]: async () =>
      perJob(
        await perCall(
          async () => held.push(...(await claim(BATCH))),
          async () => {
            held.length = 0;
            for (let i = 0; i < CALLS; i++) await submit(BATCH);
          },
        ),
      ),
    [`complete_${BATCH}_jobs_per_job`]: async () =>
      perJob(await perCall((call) => complete(held.slice(call * BATCH, (call + 1) * BATCH)))),
  };

  const results = new Map<string, Cost[]>();
  for (let round = 0; round < ROUNDS; round++) {
    held.length = 0;
    // As autovacuum would between rounds: the last round's dead queue entries would otherwise
    // make every probe of the empty queue read past them.
    await submitter.query('VACUUM ix_job_queue, ix_job_leases');
    for (const [name, step] of Object.entries(steps)) {
      const micros = await step();
      results.set(name, [...(results.get(name) ?? []), micros]);
    }
  }
  console.log(
    JSON.stringify({
      bench: 'statement-costs',
      calls: CALLS,
      rounds: ROUNDS,
      backend_cpu_us: Object.fromEntries(
        [...results].map(([name, costs]) => [name, Math.round(median(costs.map((c) => c.backend)))]),
      ),
      // Only the batches': a single call's client CPU is mostly the round trip's own.
      client_cpu_us: Object.fromEntries(
        [...results]
          .filter(([name]) => name.endsWith('_per_job'))
          .map(([name, costs]) => [name, Math.round(median(costs.map((c) => c.client)) * 10) / 10]),
      ),
    }),
  );
  await worker.end();
  await submitter.end();
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
