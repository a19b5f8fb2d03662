/**
 * Checks on a submitted `callback_url` that need no network: an absolute http(s) URL of at most
 * 2,048 characters, and, unless `IX_CALLBACK_ALLOW_PRIVATE`, no host that is an IP literal
 * outside public unicast space. Names resolving to private addresses are the delivery side's
 * SSRF guard's business (src/callbacks/), which checks them at connect time.
 */
import { isIP } from 'node:net';
import { bareHostname, refusedRange } from '../callbacks/index.js';
import { LIMITS } from '../contracts/index.js';

/** Returns what is wrong with `value` as a callback URL, or null when it is acceptable. */
export function callbackUrlProblem(value: string, allowPrivate: boolean): string | null {
  if (value.length > LIMITS.callbackUrl) return `must be at most ${LIMITS.callbackUrl} characters`;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'must be an absolute http(s) URL';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return `must be an absolute http(s) URL, not ${url.protocol}`;
  }
  if (url.hostname === '') return 'must name a host';
  if (allowPrivate) return null;
  const host = bareHostname(url).toLowerCase();
  // An IP literal is judged by the delivery guard's own rule; `localhost` is loopback by
  // definition (RFC 6761), whatever a resolver says; other names are resolved at delivery.
  const refused =
    isIP(host) === 0 ? host === 'localhost' || host.endsWith('.localhost') : refusedRange(host) !== null;
  if (refused) {
    return `must not point at a loopback, private or otherwise non-public address (${host}); set IX_CALLBACK_ALLOW_PRIVATE=true to allow`;
  }
  return null;
}
