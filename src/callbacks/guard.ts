/**
 * The delivery-time SSRF guard. Callback URLs are client input aimed from inside ix's network,
 * so the host is resolved here, every address it resolves to must be public unicast, and the
 * caller connects to exactly the address checked (see deliver.ts), leaving no window for DNS
 * rebinding between the check and the connection.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** Resolves a host name to all its addresses; injected in tests, `dns.lookup` otherwise. */
export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>;

export const systemResolver: Resolver = async (hostname) => {
  const addresses = await dnsLookup(hostname, { all: true, verbatim: true });
  return addresses.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
};

/**
 * Why an address must not be called back, or null when it is public unicast. An allow-list:
 * every range ipaddr.js names (loopback, private, linkLocal incl. 169.254.169.254, uniqueLocal,
 * multicast, unspecified, broadcast, carrier-grade NAT, reserved, 6to4/Teredo/NAT64 that tunnel
 * to IPv4 we cannot see, …) is refused; only what it calls `unicast` passes. IPv4-mapped IPv6
 * (::ffff:127.0.0.1) is judged as the IPv4 address it reaches.
 */
export function refusedRange(address: string): string | null {
  let parsed: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    parsed = ipaddr.parse(address.replace(/%.*$/, ''));
  } catch {
    return 'not an IP address';
  }
  if (parsed instanceof ipaddr.IPv6 && parsed.isIPv4MappedAddress()) parsed = parsed.toIPv4Address();
  const range = parsed.range();
  return range === 'unicast' ? null : range;
}

export type GuardResult =
  | { ok: true; url: URL; hostname: string; target: ResolvedAddress }
  | { ok: false; reason: string; retryable: boolean };

export interface GuardOptions {
  allowPrivate: boolean;
  resolve?: Resolver;
}

/**
 * Checks a callback URL and resolves the address to connect to. A refusal is final (the URL
 * will not get better); a failed lookup is retryable (DNS may be down for a while).
 */
export async function checkCallbackUrl(rawUrl: string, options: GuardOptions): Promise<GuardResult> {
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    return { ok: false, reason: 'refused: not a valid URL', retryable: false };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return { ok: false, reason: `refused: scheme ${url.protocol} is not http or https`, retryable: false };
  }
  // URL keeps IPv6 literals bracketed; sockets and ipaddr.js want them bare.
  const hostname = url.hostname.replace(/^\[(.*)\]$/, '$1');
  let addresses: ResolvedAddress[];
  const literal = isIP(hostname);
  if (literal !== 0) {
    addresses = [{ address: hostname, family: literal === 6 ? 6 : 4 }];
  } else {
    try {
      addresses = await (options.resolve ?? systemResolver)(hostname);
    } catch (error) {
      return {
        ok: false,
        reason: `cannot resolve ${hostname}: ${(error as Error).message}`,
        retryable: true,
      };
    }
    if (addresses.length === 0) {
      return { ok: false, reason: `cannot resolve ${hostname}: no addresses`, retryable: true };
    }
  }
  if (!options.allowPrivate) {
    // Any bad address refuses the host: otherwise a name with one public and one private
    // address would reach the private one whenever the resolver's order changed.
    for (const { address } of addresses) {
      const range = refusedRange(address);
      if (range !== null) {
        const via = literal === 0 ? `${hostname} resolves to ` : '';
        return {
          ok: false,
          reason: `refused by the SSRF guard: ${via}${address} is ${range} (set IX_CALLBACK_ALLOW_PRIVATE=true to allow)`,
          retryable: false,
        };
      }
    }
  }
  return { ok: true, url, hostname, target: addresses[0]! };
}
