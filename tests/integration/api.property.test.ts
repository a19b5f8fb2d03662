/**
 * Property: whatever malformed body arrives, the answer is a 4xx in the one error shape and
 * nothing is written. 2,000 bodies: random bytes, random JSON, and valid submissions with one
 * thing broken, sent with JSON and non-JSON content types. And JSON that ix cannot keep as sent
 * (too deep, numbers a double changes, lone surrogates) is a 400 naming the field.
 */
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { z } from 'zod';
import { jsonTextProblems, MAX_JSON_DEPTH, SubmitBodySchema } from '../../src/contracts/index.js';
import { callbackUrlProblem } from '../../src/submit/index.js';
import { buildTestApi, countJobs } from '../support/api.js';
import { useTestDatabase } from '../support/db.js';

const MAX_BODY_BYTES = 1024;
const db = useTestDatabase();
let app: FastifyInstance;

beforeAll(async () => {
  app = await buildTestApi(db.pool, { IX_MAX_BODY_BYTES: String(MAX_BODY_BYTES) });
});
afterAll(async () => {
  await app?.close();
});

const ErrorShape = z.strictObject({
  error: z.strictObject({
    code: z.string().regex(/^[a-z_]+$/),
    message: z.string().min(1),
    details: z
      .array(z.strictObject({ in: z.string(), path: z.string().startsWith('$'), message: z.string() }))
      .optional(),
  }),
});

interface Sent {
  payload: string;
  contentType: string;
}

/** Whether the API ought to accept this: only such bodies are excluded from the property. */
function acceptable(sent: Sent): boolean {
  if (!sent.contentType.startsWith('application/json')) return false;
  if (Buffer.byteLength(sent.payload) > MAX_BODY_BYTES) return false;
  let parsed: unknown;
  try {
    parsed = JSON.parse(sent.payload);
  } catch {
    return false;
  }
  if (jsonTextProblems(sent.payload).length > 0) return false;
  const result = SubmitBodySchema.safeParse(parsed);
  if (!result.success) return false;
  const url = result.data.callback_url;
  return url === null || callbackUrlProblem(url, false) === null;
}

const validRequest = fc.record({
  ix_client_id: fc.string({ minLength: 1, maxLength: 20 }),
  request_id: fc.string({ minLength: 1, maxLength: 40 }),
  input: fc.jsonValue({ maxDepth: 2 }),
});

const notAString = fc.jsonValue({ maxDepth: 1 }).filter((v) => typeof v !== 'string');

/** A valid body with exactly one thing broken. */
const brokenBody = fc.oneof(
  validRequest.chain((r) =>
    fc.constantFrom('ix_client_id', 'request_id', 'input').map((field) => {
      const { [field]: _dropped, ...rest } = r;
      return { request: rest, callback_url: null } as unknown;
    }),
  ),
  fc
    .tuple(validRequest, fc.constantFrom('ix_client_id', 'request_id'), notAString)
    .map(([r, field, value]) => ({
      request: { ...r, [field]: value },
      callback_url: null,
    })),
  fc
    .tuple(validRequest, fc.constantFrom(['ix_client_id', 129], ['request_id', 257], ['ix_client_id', 0]))
    .map(([r, [field, length]]) => ({
      request: { ...r, [field]: 'x'.repeat(Number(length)) },
      callback_url: null,
    })),
  fc
    .tuple(validRequest, fc.string({ minLength: 1, maxLength: 12 }), fc.jsonValue({ maxDepth: 1 }))
    .map(([r, key, value]) => ({ request: { ...r, [`x_${key}`]: value }, callback_url: null })),
  fc.tuple(validRequest, fc.string({ minLength: 1, maxLength: 12 })).map(([r, key]) => ({
    request: r,
    callback_url: null,
    [`extra_${key}`]: true,
  })),
  fc
    .tuple(
      validRequest,
      fc.oneof(
        fc.string(),
        fc.constantFrom(
          'file:///etc/passwd',
          'javascript:alert(1)',
          'http://127.0.0.1/',
          'http://[fd00::1]/',
        ),
        fc.webUrl().map((u) => `${u}/${'a'.repeat(2100)}`),
        notAString,
      ),
    )
    .map(([r, callback]) => ({ request: r, callback_url: callback })),
  fc
    .tuple(fc.jsonValue({ maxDepth: 1 }), fc.constantFrom(null, 'https://example.com/'))
    .map(([request, cb]) => ({
      request,
      callback_url: cb,
    })),
  validRequest.map((r) => ({ request: { ...r, input: 'x'.repeat(MAX_BODY_BYTES) }, callback_url: null })),
);

const sent: fc.Arbitrary<Sent> = fc
  .oneof(
    { weight: 2, arbitrary: fc.string({ maxLength: 200 }).map((payload) => ({ payload, json: true })) },
    {
      weight: 2,
      arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => ({ payload: JSON.stringify(v), json: true })),
    },
    { weight: 5, arbitrary: brokenBody.map((b) => ({ payload: JSON.stringify(b), json: true })) },
    {
      weight: 1,
      arbitrary: validRequest.map((r) => ({
        payload: JSON.stringify({ request: r, callback_url: null }),
        json: false,
      })),
    },
  )
  .chain(({ payload, json }) =>
    (json
      ? fc.constantFrom('application/json', 'application/json; charset=utf-8')
      : fc.constantFrom(
          'text/plain',
          'application/x-www-form-urlencoded',
          'application/xml',
          'multipart/form-data',
        )
    ).map((contentType) => ({ payload, contentType })),
  )
  .filter((s) => !acceptable(s));

it('2,000 malformed bodies: every answer a 4xx in the error shape, and no row written', async () => {
  const statuses = new Map<number, number>();
  await fc.assert(
    fc.asyncProperty(sent, async ({ payload, contentType }) => {
      const response = await app.inject({
        method: 'POST',
        url: '/jobs',
        headers: { 'content-type': contentType },
        payload,
      });
      statuses.set(response.statusCode, (statuses.get(response.statusCode) ?? 0) + 1);
      expect(response.statusCode).toBeGreaterThanOrEqual(400);
      expect(response.statusCode).toBeLessThan(500);
      expect(ErrorShape.safeParse(response.json()).success).toBe(true);
    }),
    { numRuns: 2_000 },
  );
  expect(await countJobs(db.pool)).toBe(0);
  // Every family of mistake was exercised, not only the easiest one.
  expect([...statuses.keys()].sort()).toEqual([400, 413, 415]);
});

const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((unit) => `\\u${unit.toString(16)}`);

/** Input that JSON.parse accepts and ix would not keep as sent. */
const unkeepableInput = fc.oneof(
  // `input` is the body's third level, so these reach 257 and more.
  fc
    .integer({ min: MAX_JSON_DEPTH - 1, max: 400 })
    .map((levels) => `${'['.repeat(levels)}${']'.repeat(levels)}`),
  fc.bigInt({ min: 2n ** 53n, max: 10n ** 30n }).chain((n) => fc.constantFrom(`${n}`, `-${n}`)),
  fc.integer({ min: 309, max: 100_000 }).map((exponent) => `[1e${exponent}]`),
  fc.integer({ min: 325, max: 100_000 }).map((exponent) => `{"tiny": -2.5e-${exponent}}`),
  // At least 19 significant digits: more than the 17 of any double's shortest form.
  fc.stringMatching(/^[1-9]\d{17,25}\.[1-9]$/),
  loneSurrogate.map((lone) => `{"text": "a${lone}"}`),
  loneSurrogate.map((lone) => `{"${lone}": true}`),
);

/** That input, or a request_id with a lone surrogate, as JSON text; and the field it is in. */
const unkeepable = fc.oneof(
  unkeepableInput.map((text) => ({ text, field: 'input' })),
  loneSurrogate.map((lone) => ({ text: `"r-${lone}"`, field: 'request_id' })),
);

it('500 submissions ix cannot keep as sent: each a 400 invalid_request naming the field, no row written', async () => {
  const id = fc.stringMatching(/^[a-z0-9-]{1,20}$/);
  await fc.assert(
    fc.asyncProperty(id, id, unkeepable, async (clientId, requestId, { text, field }) => {
      const request = {
        ix_client_id: JSON.stringify(clientId),
        request_id: field === 'request_id' ? text : JSON.stringify(requestId),
        input: field === 'input' ? text : '{}',
      };
      const payload = `{"request": {${Object.entries(request)
        .map(([key, value]) => `"${key}": ${value}`)
        .join(', ')}}, "callback_url": null}`;
      const response = await app.inject({
        method: 'POST',
        url: '/jobs',
        headers: { 'content-type': 'application/json' },
        payload,
      });
      expect(response.statusCode).toBe(400);
      const body = ErrorShape.parse(response.json());
      expect(body.error.code).toBe('invalid_request');
      expect(body.error.details?.length).toBeGreaterThan(0);
      for (const detail of body.error.details ?? []) {
        expect(detail.in).toBe('body');
        expect(detail.path.startsWith(`$.request.${field}`)).toBe(true);
      }
    }),
    { numRuns: 500 },
  );
  expect(await countJobs(db.pool)).toBe(0);
});
