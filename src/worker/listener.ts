import pg from 'pg';
import type { Logger } from 'pino';

/**
 * One dedicated connection LISTENing on a channel. It reconnects by itself (PostgreSQL restart,
 * pg_terminate_backend, network) with backoff, and calls `onWake` after every (re)connect too,
 * since notifications sent while it was away are lost.
 */
export class Listener {
  private client: pg.Client | null = null;
  private closed = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private backoffMs = 100;

  constructor(
    private readonly connectionString: string,
    private readonly channel: string,
    private readonly onWake: () => void,
    private readonly logger: Logger,
  ) {}

  async start(): Promise<void> {
    await this.connect();
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.connectionString,
      application_name: 'ix listener',
      keepAlive: true,
    });
    client.on('notification', () => this.onWake());
    client.on('error', (error) => this.lost(client, error));
    client.on('end', () => this.lost(client, null));
    try {
      await client.connect();
      await client.query(`LISTEN ${pg.escapeIdentifier(this.channel)}`);
    } catch (error) {
      this.lost(client, error as Error);
      return;
    }
    if (this.closed) {
      await client.end().catch(() => {});
      return;
    }
    this.client = client;
    this.backoffMs = 100;
    this.onWake();
  }

  private lost(client: pg.Client, error: Error | null): void {
    if (this.closed || (this.client !== null && this.client !== client)) return;
    this.client = null;
    client.removeAllListeners('end');
    client.end().catch(() => {});
    if (this.retryTimer) return;
    this.logger.warn(
      { err: error ?? undefined, retryInMs: this.backoffMs },
      'listen connection lost; reconnecting',
    );
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.connect();
    }, this.backoffMs);
    this.backoffMs = Math.min(this.backoffMs * 2, 5_000);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    const client = this.client;
    this.client = null;
    if (client) {
      client.removeAllListeners('end');
      await client.end().catch(() => {});
    }
  }
}
