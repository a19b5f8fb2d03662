/**
 * Answers that wait for a job: long-polls (`?wait=`) and the job's event stream. Every waiter
 * is fed by the process's one JobWatcher (src/watch/): no waiter queries on its own.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Job } from '../contracts/index.js';
import { followJob, isFinished, type JobWatcher, waitForEnd } from '../watch/index.js';
import { HTTP_TIMEOUTS } from './timeouts.js';

/** Drops the connection after `ms` without traffic (the server's own idle timeout, moved). */
function idleTimeout(res: FastifyReply['raw'], ms: number): void {
  res.setTimeout(ms, () => res.destroy());
}

/** Aborted when the client goes away before its answer was sent: its waiter is freed at once. */
function whileConnected(reply: FastifyReply): AbortSignal {
  const gone = new AbortController();
  reply.raw.on('close', () => {
    if (!reply.raw.writableFinished) gone.abort();
  });
  return gone.signal;
}

/**
 * The job once finished, or as it stands after `waitSeconds` (cut to `maxWaitSeconds`); at once
 * when it has finished already or no wait was asked. `reread` reads it as it stands, for the
 * answer after a wait that ran out.
 */
export async function waitedJob(
  watcher: JobWatcher,
  reply: FastifyReply,
  job: Job,
  waitSeconds: number | undefined,
  maxWaitSeconds: number,
  reread: () => Promise<Job | null>,
): Promise<Job> {
  const waitMs = Math.min(waitSeconds ?? 0, maxWaitSeconds) * 1000;
  if (waitMs === 0 || isFinished(job)) return job;
  // The socket's idle timeout would drop a long wait's connection: silence is expected here.
  idleTimeout(reply.raw, waitMs + HTTP_TIMEOUTS.connectionTimeoutMs);
  const waited = await waitForEnd(watcher, job, waitMs, whileConnected(reply));
  idleTimeout(reply.raw, HTTP_TIMEOUTS.connectionTimeoutMs);
  if (isFinished(waited)) return waited;
  return (await reread()) ?? waited;
}

/**
 * Streams the job's events (src/watch/events.ts) as server-sent events: the job as it stands
 * first (unless `Last-Event-ID` names it already), then each change, ending after the final one;
 * a comment every `heartbeatSeconds` keeps proxies from closing an idle stream.
 */
export function streamJobEvents(
  watcher: JobWatcher,
  request: FastifyRequest,
  reply: FastifyReply,
  job: Job,
  heartbeatSeconds: number,
): void {
  const lastEventId = request.headers['last-event-id'];
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
    'x-request-id': request.id,
  });
  // Two heartbeats may go missing before an idle stream counts as dead.
  idleTimeout(res, 3 * heartbeatSeconds * 1000);
  const heartbeat = setInterval(() => res.write(': heartbeat\n\n'), heartbeatSeconds * 1000);
  const gone = new AbortController();
  res.on('close', () => gone.abort());
  void (async () => {
    try {
      const events = followJob(watcher, job, {
        lastEventId: typeof lastEventId === 'string' ? lastEventId : null,
        signal: gone.signal,
      });
      for await (const event of events)
        res.write(`id: ${event.id}\nevent: ${event.type}\ndata: ${JSON.stringify(event.job)}\n\n`);
    } finally {
      clearInterval(heartbeat);
      res.end();
    }
  })();
}
