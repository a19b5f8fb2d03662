import type { Logger } from 'pino';
import type { JsonValue, RequestIX } from '../contracts/index.js';

export interface PipelineContext {
  /** Aborted when the job times out or the worker shuts down; long work should listen. */
  signal: AbortSignal;
  ix_id: string;
  job_id: string;
  /** 0 on the first run; +1 each time the job was rescued or put back. */
  attempt: number;
  /** Bound to `ix_id` and `job_id`. */
  logger: Logger;
}

export type PipelineResult = { result: JsonValue } | { error: string };

/** What ix runs for each job: users' own code, the `http` forwarder, or `echo`. */
export type Pipeline = (request: RequestIX, ctx: PipelineContext) => Promise<PipelineResult>;
