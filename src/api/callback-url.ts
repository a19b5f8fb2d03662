/**
 * Checks on a submitted `callback_url` that need no network: an absolute http(s) URL of at most
 * 2,048 characters, and, unless `IX_CALLBACK_ALLOW_PRIVATE`, no host that is an IP literal
 * outside public unicast space. Names resolving to private addresses are the delivery side's
 * SSRF guard's business (src/callbacks/), which checks them at connect time.
 */
import ipaddr from 'ipaddr.js';

export const MAX_CALLBACK_URL_LENGTH = 2048;

/**
 * True for an IP address that is not public unicast: loopback, private, link-local,
 * unique-local, multicast, unspecified, and the other special ranges ipaddr.js knows (CGNAT,
 * reserved, 6to4/Teredo tunnels that can wrap a private address). IPv4-mapped IPv6 addresses
 * are judged by the IPv4 address they carry. False for anything that is not an IP literal.
 */
export function isNonPublicAddress(address: string): boolean {
  const bare = address.replace(/^\[|\]$/g, '');
  if (!ipaddr.isValid(bare)) return false;
  let parsed = ipaddr.parse(bare);
  if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) {
    parsed = (parsed as ipaddr.IPv6).toIPv4Address();
  }
  return parsed.range() !== 'unicast';
}

/** Returns what is wrong with `value` as a callback URL, or null when it is acceptable. */
export function callbackUrlProblem(value: string, allowPrivate: boolean): string | null {
  if (value.length > MAX_CALLBACK_URL_LENGTH) return `must be at most ${MAX_CALLBACK_URL_LENGTH} characters`;
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
  const host = url.hostname.toLowerCase();
  // `localhost` is loopback by definition (RFC 6761), whatever a resolver says.
  if (isNonPublicAddress(host) || host === 'localhost' || host.endsWith('.localhost')) {
    return `must not point at a loopback, private or otherwise non-public address (${host}); set IX_CALLBACK_ALLOW_PRIVATE=true to allow`;
  }
  return null;
}
