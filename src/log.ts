import { type Logger, pino } from 'pino';
import type { Config } from './config.js';

export type { Logger } from 'pino';

/**
 * Structured JSON logs on stdout. Lines about a job carry `ix_id` and `job_id` (child loggers);
 * API keys and request bodies are never logged.
 */
export function createLogger(level: Config['logLevel'], bindings: Record<string, unknown> = {}): Logger {
  return pino({
    level,
    base: { pid: process.pid, ...bindings },
    redact: {
      paths: ['req.headers.authorization', 'headers.authorization', '*.apiKey'],
      censor: '[redacted]',
    },
  });
}
