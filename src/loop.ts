/**
 * The one lifecycle of ix's background services (the claim loop, the heartbeat, the sweeper, the
 * listener, callback delivery): a loop of passes. Each service's pass is its `runOnce()`, which
 * tests call directly; the loop only schedules it.
 * - `start()` begins the first pass at once; calling it again does nothing.
 * - After a pass that says more work may be waiting, the next starts at once; otherwise the loop
 *   waits `idleMs` (or as long as the pass said, if it gave a number of ms), or until `wake()`. A wake during a pass skips the wait after it, since the
 *   pass may have looked too early to see what the wake was for.
 * - A pass that throws is logged, and the next waits a backoff (100 ms doubling to 5 s) instead.
 * - `stop()` ends the loop after the pass in flight and resolves once it has; calling it again
 *   waits the same way.
 */
import type { Logger } from 'pino';
import { Backoff } from './time.js';

export interface LoopOptions {
  /** Says what failed, in the log line of a pass that threw. */
  name: string;
  logger: Logger;
  /** One pass: true when more work may be waiting right away; a number: wait this many ms. */
  pass: () => Promise<boolean | number>;
  /** The wait after a pass that found nothing more to do. */
  idleMs: number;
}

export class Loop {
  private running: Promise<void> | null = null;
  private stopping = false;
  private woken = false;
  private wakeUp: (() => void) | null = null;

  constructor(private readonly options: LoopOptions) {}

  start(): void {
    if (this.running || this.stopping) return;
    this.running = this.loop();
  }

  wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.wake();
    await this.running;
  }

  private async loop(): Promise<void> {
    const backoff = new Backoff();
    while (!this.stopping) {
      this.woken = false;
      let waitMs: number;
      try {
        const more = await this.options.pass();
        waitMs = typeof more === 'number' ? more : more ? 0 : this.options.idleMs;
        backoff.reset();
      } catch (error) {
        waitMs = backoff.next();
        this.options.logger.error({ err: error, retryInMs: waitMs }, `${this.options.name} failed; retrying`);
      }
      if (waitMs > 0 && !this.woken && !this.stopping) await this.sleep(waitMs);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakeUp = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakeUp = done;
    });
  }
}
