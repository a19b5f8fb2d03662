/**
 * The OpenAPI document, generated from the zod schemas the routes validate with (one source of
 * truth), at `/openapi.json`; `/docs` is Swagger UI served from node_modules, so nothing is
 * fetched from the internet.
 */
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { jsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod';

export async function registerOpenApi(app: FastifyInstance, version: string): Promise<void> {
  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'ix',
        version,
        description:
          'Submit requests as jobs (idempotently, keyed by your own request_id), poll them by id or by your request_id. Errors always have the shape {"error": {"code", "message", "details"?}}.',
        license: { name: 'MIT', identifier: 'MIT' },
      },
      // Relative to where the document was fetched: ix cannot know the address clients reach it
      // by (a load balancer's, a proxy's), and its listening address (127.0.0.1, 0.0.0.0) is
      // rarely that.
      servers: [{ url: '/' }],
      components: {
        securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'A key of IX_API_KEYS' } },
      },
    },
    transform: jsonSchemaTransform,
    transformObject: jsonSchemaTransformObject,
  });
  await app.register(fastifySwaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}
