/** A callback receiver on loopback for delivery tests: records each request, answers as told. */
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach } from 'vitest';

export interface Received {
  headers: IncomingHttpHeaders;
  body: string;
}

/** Answers one request; `hang` leaves it unanswered (a receiver that never replies). */
export type Responder = (
  request: Received,
  n: number,
) => { status: number; headers?: Record<string, string> } | 'hang';

export interface Receiver {
  readonly requests: Received[];
  /** Requests per webhook-id. */
  counts(): Map<string, number>;
  url(path?: string): string;
  port: number;
  respond: Responder;
  close(): Promise<void>;
}

function listen(server: Server, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve((server.address() as AddressInfo).port));
  });
}

export async function startReceiver(
  host = '127.0.0.1',
  respond: Responder = () => ({ status: 204 }),
): Promise<Receiver> {
  const requests: Received[] = [];
  const hanging: ServerResponse[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const received = { headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      requests.push(received);
      const answer = receiver.respond(received, requests.length);
      if (answer === 'hang') {
        hanging.push(res);
        return;
      }
      res.writeHead(answer.status, answer.headers).end('ok');
    });
  });
  const port = await listen(server, host);
  const receiver: Receiver = {
    requests,
    counts() {
      const counts = new Map<string, number>();
      for (const r of requests) {
        const id = String(r.headers['webhook-id']);
        counts.set(id, (counts.get(id) ?? 0) + 1);
      }
      return counts;
    },
    url(path = '/hook') {
      return `http://${host.includes(':') ? `[${host}]` : host}:${port}${path}`;
    },
    port,
    respond,
    async close() {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return receiver;
}

/** A fresh receiver for each test of the file, closed after it. */
export function useReceiver(): { readonly current: Receiver } {
  const state: { current?: Receiver } = {};
  beforeEach(async () => {
    state.current = await startReceiver();
  });
  afterEach(async () => {
    await state.current?.close();
  });
  return {
    get current() {
      if (!state.current) throw new Error('useReceiver: the receiver exists only inside tests');
      return state.current;
    },
  };
}
