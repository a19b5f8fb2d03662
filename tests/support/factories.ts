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
