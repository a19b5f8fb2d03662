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

export function addLogContext(request: FastifyRequest, context: LogContext): void {
  if (request.logContext) Object.assign(request.logContext, context);
  else request.logContext = { ...context };
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
    const context = request.logContext ?? {};
    if (error) {
      reply.log.error(
        { ...context, res: reply, err: error, responseTime: reply.elapsedTime },
        'request errored',
      );
    } else {
      reply.log.info({ ...context, res: reply, responseTime: reply.elapsedTime }, 'request completed');
    }
  }
}
