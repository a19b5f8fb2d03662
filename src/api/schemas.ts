/** The API's own envelopes around the contracts of src/contracts (which stay the wire format). */
import { z } from 'zod';
import { ClientIdSchema, JobSchema, RequestIdSchema, RequestIXSchema } from '../contracts/index.js';
import { MAX_CALLBACK_URL_LENGTH } from './callback-url.js';

export const SubmitBodySchema = z
  .strictObject({
    request: RequestIXSchema,
    callback_url: z.string().max(MAX_CALLBACK_URL_LENGTH).nullable().default(null).meta({
      description:
        'Absolute http(s) URL that receives the signed outcome; null or absent for none. Literal non-public IPs are refused unless IX_CALLBACK_ALLOW_PRIVATE.',
    }),
  })
  .meta({ id: 'SubmitJob' });
export type SubmitBody = z.infer<typeof SubmitBodySchema>;

export const JobParamsSchema = z.object({ job_id: z.uuid() });

export const CorrelationQuerySchema = z.object({
  client_id: ClientIdSchema,
  request_id: RequestIdSchema,
});

export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.string().meta({ description: 'Stable, machine-readable: invalid_request, not_found, …' }),
      message: z.string(),
      details: z
        .array(z.object({ in: z.string(), path: z.string(), message: z.string() }))
        .optional()
        .meta({ description: 'Each invalid field by its JSONPath' }),
      job_id: z.uuid().optional().meta({
        description:
          'idempotency_conflict: the job already submitted under this ix_client_id and request_id, with a different request',
      }),
    }),
  })
  .meta({ id: 'Error' });

export const HealthSchema = z.object({ status: z.literal('ok') });
export const ReadySchema = z.object({ status: z.literal('ready'), schema_version: z.number().int() });

export { JobSchema };
