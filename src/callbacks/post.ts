/**
 * One HTTP attempt: POST the body to the address the guard checked, with a hard deadline over
 * the whole exchange, no redirects, and at most 64 KiB of the response read.
 */
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import type { ResolvedAddress } from './guard.js';
import { type AttemptResult, parseRetryAfter } from './policy.js';

export const MAX_RESPONSE_BYTES = 64 * 1024;

export interface PostOptions {
  url: URL;
  /** The checked address: the connection goes here and nowhere else. */
  target: ResolvedAddress;
  headers: Record<string, string>;
  body: Buffer;
  timeoutMs: number;
}

/** A lookup that answers with the checked address whatever it is asked, so no second DNS query happens. */
function pinnedLookup(target: ResolvedAddress): LookupFunction {
  return (_hostname, options, callback) => {
    if (options.all) callback(null, [{ address: target.address, family: target.family }]);
    else callback(null, target.address, target.family);
  };
}

export function post(options: PostOptions): Promise<AttemptResult> {
  const { url, target, body, timeoutMs } = options;
  const transport = url.protocol === 'https:' ? https : http;
  return new Promise<AttemptResult>((resolve) => {
    let settled = false;
    // Once the status is in, a timeout while draining the body does not undo it.
    let received: AttemptResult | null = null;
    const finish = (result: AttemptResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      request.destroy();
      resolve(result);
    };
    const failure = (error: string): AttemptResult => ({
      statusCode: null,
      retryAfterSeconds: null,
      error,
      retryable: true,
    });
    const request = transport.request(
      {
        method: 'POST',
        protocol: url.protocol,
        // The host name stays the Host header and the TLS server name; only the lookup is pinned.
        hostname: url.hostname.replace(/^\[(.*)\]$/, '$1'),
        port: url.port === '' ? undefined : Number(url.port),
        path: `${url.pathname}${url.search}`,
        lookup: pinnedLookup(target),
        // A pooled socket could outlive the check that allowed it; every attempt dials afresh.
        agent: false,
        headers: {
          'content-type': 'application/json',
          'content-length': String(body.length),
          'user-agent': 'ix-callbacks',
          ...options.headers,
        },
      },
      (response) => {
        const statusCode = response.statusCode ?? 0;
        // The receiver writes this header and it ends up in the job's JSON: keep it short.
        const location = response.headers.location?.slice(0, 200);
        const result: AttemptResult = {
          statusCode,
          retryAfterSeconds: parseRetryAfter(response.headers['retry-after']),
          error:
            statusCode >= 200 && statusCode < 300
              ? null
              : statusCode >= 300 && statusCode < 400
                ? `HTTP ${statusCode}: redirect${location ? ` to ${location}` : ''} not followed`
                : `HTTP ${statusCode}`,
          retryable: true,
        };
        received = result;
        // The status decides; the body is drained only so the receiver sees a clean exchange,
        // and never beyond 64 KiB so a receiver cannot make us buffer without end.
        let read = 0;
        response.on('data', (chunk: Buffer) => {
          read += chunk.length;
          if (read >= MAX_RESPONSE_BYTES) finish(result);
        });
        response.on('end', () => finish(result));
        response.on('close', () => finish(result));
        response.on('error', () => finish(result));
      },
    );
    const timer = setTimeout(() => finish(received ?? failure(`timed out after ${timeoutMs} ms`)), timeoutMs);
    request.on('error', (error: NodeJS.ErrnoException) =>
      finish(failure(`${error.code ?? 'error'}: ${error.message}`)),
    );
    request.end(body);
  });
}
