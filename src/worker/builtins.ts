import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseRetryAfter } from '../callbacks/index.js';
import { type Config, ConfigError } from '../config.js';
import type { JsonValue } from '../contracts/index.js';
import type { Pipeline } from './pipeline.js';

function abortable(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolveSleep, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolveSleep();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * For trying ix out and for tests: the result is the input. `input.fail` (a string) makes it
 * return that error; `input.sleep_ms` makes it wait that long, abortably.
 */
export const echoPipeline: Pipeline = async (request, ctx) => {
  const input = request.input;
  if (input !== null && typeof input === 'object' && !Array.isArray(input)) {
    if (typeof input.sleep_ms === 'number' && input.sleep_ms > 0) await abortable(input.sleep_ms, ctx.signal);
    if (typeof input.fail === 'string') return { error: input.fail };
  }
  return { result: input };
};

const EXCERPT_CHARS = 200;

function excerpt(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > EXCERPT_CHARS ? `${flat.slice(0, EXCERPT_CHARS)}…` : flat;
}

/** The body as text, or null once it grows past `maxBytes` (the rest is not read). */
async function boundedText(response: Response, maxBytes: number): Promise<string | null> {
  if (!response.body) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of response.body) {
    size += chunk.byteLength;
    if (size > maxBytes) {
      await response.body.cancel().catch(() => {});
      return null;
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Answers that say "not now" rather than "not this request": worth another run. */
function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 425 || status === 429 || status >= 500;
}

/**
 * POSTs the request to `url`; a 2xx JSON body is the result. Puts ix in front of any HTTP service.
 * Reads at most `maxResponseBytes` of an answer (IX_PIPELINE_MAX_RESULT_BYTES). Retryable: no
 * answer (connection refused or reset, a timeout: fetch throws) and 408, 425, 429 and 5xx, after
 * their `Retry-After` if they send one; permanent: every other answer that is not a 2xx JSON body.
 */
export function httpPipeline(url: string, maxResponseBytes: number): Pipeline {
  return async (request, { signal }) => {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(request),
      signal,
      redirect: 'error',
    });
    const text = await boundedText(response, maxResponseBytes);
    const error =
      text === null
        ? `pipeline service answered HTTP ${response.status} with more than ${maxResponseBytes} bytes (IX_PIPELINE_MAX_RESULT_BYTES)`
        : `pipeline service answered HTTP ${response.status}: ${excerpt(text)}`;
    if (isRetryableStatus(response.status)) {
      const retryAfter = parseRetryAfter(response.headers.get('retry-after') ?? undefined);
      return { error, retryable: true, ...(retryAfter === null ? {} : { retryAfterSeconds: retryAfter }) };
    }
    if (text === null || !response.ok) return { error };
    try {
      return { result: JSON.parse(text) as JsonValue };
    } catch {
      return {
        error: `pipeline service answered HTTP ${response.status} with invalid JSON: ${excerpt(text)}`,
      };
    }
  };
}

/** A module whose default export is a pipeline; `.ts` modules are loaded through tsx. */
async function modulePipeline(path: string): Promise<Pipeline> {
  const url = pathToFileURL(resolve(path)).href;
  let loaded: { default?: unknown };
  try {
    if (/\.(ts|mts)$/.test(path)) {
      const { tsImport } = await import('tsx/esm/api');
      loaded = (await tsImport(url, import.meta.url)) as { default?: unknown };
    } else {
      loaded = (await import(url)) as { default?: unknown };
    }
  } catch (error) {
    throw new ConfigError('IX_PIPELINE', `cannot load ${path}: ${(error as Error).message}`);
  }
  // A module compiled as CommonJS (a .ts file outside an ESM package) nests its default export.
  const nested = loaded.default as { default?: unknown } | undefined;
  const candidate = typeof nested === 'function' ? nested : nested?.default;
  if (typeof candidate !== 'function') {
    throw new ConfigError('IX_PIPELINE', `${path} has no default export that is a function`);
  }
  return candidate as Pipeline;
}

export async function loadPipeline(
  config: Pick<Config['worker'], 'pipeline' | 'maxResultBytes'>,
): Promise<Pipeline> {
  const { pipeline } = config;
  if (pipeline.kind === 'echo') return echoPipeline;
  if (pipeline.kind === 'http') return httpPipeline(pipeline.url, config.maxResultBytes);
  return modulePipeline(pipeline.path);
}
