/**
 * The operators' dashboard at `/dashboard`: one HTML page, a script and a stylesheet, written by
 * hand with no framework and no chart library (docs/design.md, "The dashboard"), shipped in the
 * package (`npm run build` copies them next to this module) and never fetched from elsewhere. The
 * page holds no data: its script reads the operator endpoints with the key the operator pasted.
 */
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';

const ASSETS = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
} as const;

type Asset = keyof typeof ASSETS;

// Nothing but these files and the operator endpoints: a script injected into a job's text could
// neither run inline nor send anything elsewhere.
const CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/**
 * Reads the assets (once, here) and serves them. `keyed`: whether keys are configured, so the
 * page asks for one before its first request instead of being refused it.
 */
export function registerDashboard(app: FastifyInstance, keyed: boolean): void {
  const files = new Map<string, { body: string; type: string }>();
  for (const [name, type] of Object.entries(ASSETS)) {
    const text = readFileSync(new URL(`./public/${name}`, import.meta.url), 'utf8');
    files.set(name, { body: text.replace('{{KEYED}}', String(keyed)), type });
  }
  const send = (name: Asset) => {
    const file = files.get(name)!;
    return async (_request: unknown, reply: import('fastify').FastifyReply) =>
      reply
        .type(file.type)
        .header('cache-control', 'no-cache')
        .header('content-security-policy', CONTENT_SECURITY_POLICY)
        .header('x-content-type-options', 'nosniff')
        .header('referrer-policy', 'no-referrer')
        .send(file.body);
  };
  app.get('/dashboard', { schema: { hide: true } }, send('index.html'));
  app.get('/dashboard/app.js', { schema: { hide: true } }, send('app.js'));
  app.get('/dashboard/app.css', { schema: { hide: true } }, send('app.css'));
}
