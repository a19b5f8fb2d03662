import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { pino } from 'pino';
import { CallbackDeliverer, type CallbackDelivererOptions } from '../../src/callbacks/index.js';
import { loadConfig } from '../../src/config.js';
import type { Logger } from '../../src/log.js';
import type { Db } from '../../src/store/index.js';

/** Deliveries still owed, due or not. */
export async function callbackPendingCount(db: Db): Promise<number> {
  const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM ix_callback_queue');
  return rows[0]?.n ?? 0;
}

export const newSecret = () => `whsec_${randomBytes(32).toString('base64')}`;

/** A clock the test moves by hand; the store reads it instead of now(). */
export class TestClock {
  constructor(public current = new Date('2030-01-01T00:00:00.000Z')) {}
  now = (): Date => this.current;
  advance(seconds: number): void {
    this.current = new Date(this.current.getTime() + seconds * 1000);
  }
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
