/** The API's own envelopes around the contracts of src/contracts (which stay the wire format). */
import { z } from 'zod';
import { ClientIdSchema, JobSchema, RequestIdSchema, SubmitBodySchema } from '../contracts/index.js';

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

export { JobSchema, SubmitBodySchema };
