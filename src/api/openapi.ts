/**
 * The OpenAPI document, generated from the zod schemas the routes validate with (one source of
 * truth), at `/openapi.json`; `/docs` is Swagger UI served from node_modules, so nothing is
 * fetched from the internet.
 */
import fastifySwagger, { type SwaggerTransformObject } from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { jsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod';

type OpenApiDocument = ReturnType<SwaggerTransformObject>;

const SCHEMA_REF = '#/components/schemas/';
/** The suffix fastify-type-provider-zod gives a contract's input view (its output keeps the id). */
const INPUT_SUFFIX = 'Input';

/** The component schemas `value` refers to by `$ref`, directly. */
function schemaRefs(value: unknown, found = new Set<string>()): Set<string> {
  if (Array.isArray(value)) {
    for (const item of value) schemaRefs(item, found);
  } else if (value !== null && typeof value === 'object') {
    for (const [key, child] of Object.entries(value)) {
      if (key === '$ref' && typeof child === 'string' && child.startsWith(SCHEMA_REF)) {
        found.add(child.slice(SCHEMA_REF.length));
      } else {
        schemaRefs(child, found);
      }
    }
  }
  return found;
}

/** The component schemas `roots` use, directly or through other component schemas. */
function usedSchemas(roots: unknown, schemas: Record<string, unknown>): Set<string> {
  const used = schemaRefs(roots);
  const pending = [...used];
  for (let name = pending.pop(); name !== undefined; name = pending.pop()) {
    for (const ref of schemaRefs(schemas[name])) {
      if (!used.has(ref)) pending.push(ref);
      used.add(ref);
    }
  }
  return used;
}

/** The security schemes the operations name in their `security` requirements. */
function usedSecuritySchemes(paths: object): Set<string> {
  const used = new Set<string>();
  for (const pathItem of Object.values(paths) as Record<string, { security?: object[] }>[]) {
    for (const operation of Object.values(pathItem)) {
      for (const requirement of operation.security ?? []) {
        for (const name of Object.keys(requirement)) used.add(name);
      }
    }
  }
  return used;
}

/**
 * Keeps only the components the operations use. fastify-type-provider-zod (7.0.0) emits every
 * contract twice, as read (`SubmitJobInput`) and as written (`SubmitJob`), whichever the routes
 * use, and has no option against it. Here a twin nothing refers to is dropped, and an input view
 * left alone takes the contract's own name, so a client generated from the document sees one
 * schema per contract. Without API keys no operation takes one, and the key scheme goes too.
 */
function keepUsedComponents(document: OpenApiDocument): OpenApiDocument {
  if (!('components' in document) || !document.components || !document.paths) return document;
  const { schemas = {}, securitySchemes = {}, ...otherComponents } = document.components;
  const used = usedSchemas([document.paths, otherComponents], schemas);
  const shownAs = new Map<string, string>();
  for (const name of used) {
    const contract = name.slice(0, -INPUT_SUFFIX.length);
    const alone = name.endsWith(INPUT_SUFFIX) && contract in schemas && !used.has(contract);
    shownAs.set(name, alone ? contract : name);
  }
  const schemeNames = usedSecuritySchemes(document.paths);
  const kept = {
    ...document,
    components: {
      ...otherComponents,
      schemas: Object.fromEntries([...shownAs].map(([name, shown]) => [shown, schemas[name]])),
      ...(schemeNames.size > 0
        ? {
            securitySchemes: Object.fromEntries(
              Object.entries(securitySchemes).filter(([name]) => schemeNames.has(name)),
            ),
          }
        : {}),
    },
  };
  return JSON.parse(JSON.stringify(kept), (key, value) =>
    key === '$ref' && typeof value === 'string' && value.startsWith(SCHEMA_REF)
      ? SCHEMA_REF + shownAs.get(value.slice(SCHEMA_REF.length))
      : value,
  ) as OpenApiDocument;
}

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
    transformObject: (document) => keepUsedComponents(jsonSchemaTransformObject(document)),
  });
  await app.register(fastifySwaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}
