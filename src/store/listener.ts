import pg from 'pg';
import type { Logger } from 'pino';
import { Loop } from '../loop.js';

/** A connection attempt that has not succeeded by then fails, and the next one is made. */
const CONNECT_TIMEOUT_MS = 10_000;

/** What a listener does with a notification on each of its channels (its payload as sent). */
export type ChannelHandlers = Readonly<Record<string, (payload: string) => void>>;

/**
 * One dedicated connection LISTENing on channels. Each pass of its loop connects, listens and
 * holds the connection until it is lost (PostgreSQL restart, pg_terminate_backend, network); the
 * loop then connects again, backing off while connecting fails. It calls `onReconnect` after every
 * (re)connect too, since notifications sent while it was away are lost.
 *
 * Without a connection string (behind a transaction pooler with no IX_LISTEN_URL: a LISTEN there
 * would hold a server connection's session that the pooler hands to others, and its
 * notifications would not reach this client) it never connects, never calls `onReconnect`, and
 * its owner's poll does the work.
 */
export class Listener {
  private readonly loop: Loop;
  private client: pg.Client | null = null;
  private closed = false;
  private firstAttempt: (() => void) | null = null;
  private markClosed: () => void = () => {};
  private readonly closing = new Promise<void>((resolve) => {
    this.markClosed = resolve;
  });

  constructor(
    private readonly connectionString: string | null,
    private readonly handlers: ChannelHandlers,
    private readonly onReconnect: () => void,
    private readonly logger: Logger,
    /** Called when a connection that was listening is lost, before reconnecting. */
    private readonly onLost: () => void = () => {},
  ) {
    this.loop = new Loop({
      name: 'listen connection',
      logger,
      // After a connection held and then lost: reconnect almost at once.
      idleMs: 100,
      pass: async () => {
        await this.listenUntilLost();
        return false;
      },
    });
  }

  /** Starts listening; resolves once the first connection attempt is over, whatever its result. */
  async start(): Promise<void> {
    if (this.connectionString === null) return;
    const connected = new Promise<void>((resolve) => {
      this.firstAttempt = resolve;
    });
    this.loop.start();
    await connected;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.markClosed();
    if (this.connectionString === null) return;
    const stopped = this.loop.stop();
    await this.client?.end().catch(() => {});
    await stopped;
  }

  /** Throws when connecting fails; resolves when a connection that was listening is lost. */
  private async listenUntilLost(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.connectionString ?? undefined,
      application_name: 'ix listener',
      keepAlive: true,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    });
    const lost = new Promise<Error | null>((resolve) => {
      client.on('error', (error) => resolve(error));
      client.on('end', () => resolve(null));
    });
    client.on('notification', ({ channel, payload }) => this.handlers[channel]?.(payload ?? ''));
    const connecting = (async () => {
      await client.connect();
      for (const channel of Object.keys(this.handlers))
        await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
    })();
    try {
      // A server that never answers must not hold close() open: it does not wait for connecting.
      await Promise.race([connecting, this.closing]);
    } catch (error) {
      await client.end().catch(() => {});
      throw error;
    } finally {
      this.firstAttempt?.();
      this.firstAttempt = null;
    }
    if (this.closed) {
      // Closed while connecting: end the connection whenever the attempt settles.
      connecting.then(
        () => client.end().catch(() => {}),
        () => {},
      );
      return;
    }
    this.client = client;
    this.onReconnect();
    const error = await lost;
    this.client = null;
    await client.end().catch(() => {});
    if (this.closed) return;
    this.onLost();
    if (error) this.logger.warn({ err: error }, 'listen connection lost; reconnecting');
  }
}
