import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import type pg from 'pg';
import { pino } from 'pino';
import { CallbackDeliverer, type CallbackDelivererOptions } from '../../src/callbacks/index.js';
import { loadConfig } from '../../src/config.js';
import type { Logger } from '../../src/log.js';

export const newSecret = () => `whsec_${randomBytes(32).toString('base64')}`;

/** A clock the test moves by hand; the store reads it instead of now(). */
export class TestClock {
  constructor(public current = new Date('2030-01-01T00:00:00.000Z')) {}
  now = (): Date => this.current;
  advance(seconds: number): void {
    this.current = new Date(this.current.getTime() + seconds * 1000);
  }
}

/** A logger whose JSON lines the test can read back. */
export function captureLogger(): { logger: Logger; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      chunks.push(String(chunk));
      done();
    },
  });
  const logger = pino({ level: 'debug' }, stream);
  return {
    logger,
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

export interface DelivererSetup {
  pool: pg.Pool;
  env?: Record<string, string>;
  clock?: TestClock;
  logger?: Logger;
  options?: Partial<CallbackDelivererOptions>;
}

export function makeDeliverer({
  pool,
  env = {},
  clock,
  logger,
  options = {},
}: DelivererSetup): CallbackDeliverer {
  const config = loadConfig({ IX_CALLBACK_ALLOW_PRIVATE: 'true', IX_LOG_LEVEL: 'silent', ...env });
  return new CallbackDeliverer({
    pool,
    config,
    logger: logger ?? pino({ level: 'silent' }),
    ...(clock ? { now: clock.now } : {}),
    random: () => 0.5,
    ...options,
  });
}
