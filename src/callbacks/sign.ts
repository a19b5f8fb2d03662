/**
 * Standard Webhooks v1 signatures (https://www.standardwebhooks.com): HMAC-SHA256 over
 * `${id}.${timestamp}.${body}` with the bytes of each `whsec_` secret, base64, prefixed `v1,`.
 */
import { createHmac } from 'node:crypto';

const SECRET_PREFIX = 'whsec_';

/** The `webhook-id` of a job's callback: the same on every retry, so receivers can deduplicate. */
export function webhookId(jobId: string): string {
  return `msg_${jobId}`;
}

export function secretBytes(secret: string): Buffer {
  const encoded = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret;
  return Buffer.from(encoded, 'base64');
}

/** One `v1,<base64>` signature of the exact bytes sent. */
export function sign(secret: string, id: string, timestampSeconds: number, body: Buffer): string {
  const mac = createHmac('sha256', secretBytes(secret));
  mac.update(`${id}.${timestampSeconds}.`);
  mac.update(body);
  return `v1,${mac.digest('base64')}`;
}

/**
 * The three signing headers for one attempt. With two secrets (rotation) both signatures are
 * sent, space-separated, so receivers holding either verify. No secret: no signature header.
 */
export function signatureHeaders(
  secrets: readonly string[],
  id: string,
  timestampSeconds: number,
  body: Buffer,
): Record<string, string> {
  const headers: Record<string, string> = {
    'webhook-id': id,
    'webhook-timestamp': String(timestampSeconds),
  };
  if (secrets.length > 0) {
    headers['webhook-signature'] = secrets.map((s) => sign(s, id, timestampSeconds, body)).join(' ');
  }
  return headers;
}
