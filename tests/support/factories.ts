import { randomUUID } from 'node:crypto';
import type { RequestIX, ResponseIX } from '../../src/contracts/index.js';

let counter = 0;

export function makeRequest(overrides: Partial<RequestIX> = {}): RequestIX {
  counter += 1;
  return {
    ix_client_id: 'acme',
    request_id: `req-${counter}-${randomUUID()}`,
    input: { document: `doc-${counter}`, pages: [1, 2, 3] },
    ...overrides,
  };
}

export function success(ixId: string, result: ResponseIX['result'] = { ok: true }): ResponseIX {
  return { ix_id: ixId, error: null, result };
}

export function failure(ixId: string, error = 'the model crashed'): ResponseIX & { error: string } {
  return { ix_id: ixId, error, result: null };
}

/** The callback URL a request is first submitted with where a replay of it must conflict. */
export const FIRST_CALLBACK_URL = 'https://example.com/hook';

/**
 * A replay of `request`, first submitted with FIRST_CALLBACK_URL, that is another request under
 * the same key: each as [what differs, the replay's request, its callback URL].
 */
export const differingReplays: [string, (request: RequestIX) => RequestIX, string | null][] = [
  ['input', (request) => ({ ...request, input: { other: true } }), FIRST_CALLBACK_URL],
  ['callback_url', (request) => request, 'https://example.com/other'],
  ['callback_url, to none', (request) => request, null],
];
