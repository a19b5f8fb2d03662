/**
 * Request logs: fastify's per-request lines carry `request_id`; the completion line also
 * carries `client_id`, `job_id` and `ix_id` once known. They are collected on the request and
 * added to that one line rather than bound through pino child loggers: two extra children per
 * request cost a quarter of the API's own CPU per submit, even with the level set so that
 * nothing is written (docs/design.md, "Costs measured on the hot path").
 */
import { type FastifyReply, type FastifyRequest, LogController } from 'fastify';

export type LogContext = Record<string, string>;

const ABOVE_INFO: ReadonlySet<string> = new Set(['warn', 'error', 'fatal', 'silent']);

declare module 'fastify' {
  interface FastifyRequest {
    /** Ids learned while handling the request, for its log lines; never keys or bodies. */
    logContext: LogContext | null;
  }
}

/**
 * Copied into a plain object rather than spread into one: Node 20's V8 gives an object made by
 * spread a hidden class of its own, and each key added to it later another, on every request
 * (~1.3 µs a submit against ~0.25 in a loop; docs/design.md, "Costs measured on the hot path").
 */
export function addLogContext(request: FastifyRequest, context: LogContext): void {
  request.logContext ??= {};
  Object.assign(request.logContext, context);
}

export class IxLogController extends LogController {
  constructor() {
    super({ requestIdLogLabel: 'request_id' });
  }

  override requestCompleted(
    error: Error | null | undefined,
    request: FastifyRequest,
    reply: FastifyReply,
  ): void {
    if (this.isLogDisabled(request)) return;
    // Most requests end well: at a level above info, building their line would be wasted work.
    if (!error && ABOVE_INFO.has(reply.log.level)) return;
    // The fields before the spread, not after it: see addLogContext.
    const context = request.logContext;
    if (error) {
      reply.log.error(
        { res: reply, err: error, responseTime: reply.elapsedTime, ...context },
        'request errored',
      );
    } else {
      reply.log.info({ res: reply, responseTime: reply.elapsedTime, ...context }, 'request completed');
    }
  }
}
