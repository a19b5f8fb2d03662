/**
 * The delivery-time SSRF guard. Callback URLs are client input aimed from inside ix's network,
 * so the host is resolved here, every address it resolves to must be public unicast, and the
 * caller connects to exactly the address checked (see post.ts), leaving no window for DNS
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

/** IPv4-compatible IPv6 (RFC 4291 §2.5.5.1, deprecated): `::a.b.c.d`, the whole of ::/96. */
const IPV4_COMPATIBLE: [ipaddr.IPv6, number] = [ipaddr.IPv6.parse('::'), 96];

/** `::` followed by a dotted IPv4 address, which ipaddr.js reads as `::ffff:` + that address. */
const DOTTED_IPV4_COMPATIBLE = /^::[^:]*\./;

/**
 * Why an address must not be called back, or null when it is public unicast: the one rule, used
 * on literal hosts at submit time and on every resolved address at delivery. An allow-list:
 * every range ipaddr.js names (loopback, private, linkLocal incl. 169.254.169.254, uniqueLocal,
 * multicast, unspecified, broadcast, carrier-grade NAT, reserved, 6to4/Teredo/NAT64 that tunnel
 * to IPv4 we cannot see, …) is refused; only what it calls `unicast` passes. IPv4-mapped IPv6
 * (::ffff:127.0.0.1) is judged as the IPv4 address it reaches. IPv4-compatible IPv6 (::/96 but
 * `::` and `::1`) is refused whole: no public host has such an address, and whether a stack
 * sends it as IPv4, through a tunnel or nowhere is not ours to see. ipaddr.js calls it unicast,
 * and its dotted form (`::127.0.0.1`, as libuv prints a resolved one) it even reads as mapped,
 * which would judge `::8.8.8.8` as 8.8.8.8.
 */
export function refusedRange(address: string): string | null {
  const bare = address.replace(/%.*$/, '');
  let parsed: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    parsed = ipaddr.parse(bare);
  } catch {
    return 'not an IP address';
  }
  if (DOTTED_IPV4_COMPATIBLE.test(bare)) return 'ipv4Compatible';
  if (parsed instanceof ipaddr.IPv6 && parsed.isIPv4MappedAddress()) parsed = parsed.toIPv4Address();
  const range = parsed.range();
  if (range === 'unicast' && parsed instanceof ipaddr.IPv6 && parsed.match(IPV4_COMPATIBLE))
    return 'ipv4Compatible';
  return range === 'unicast' ? null : range;
}

/** A URL's host as sockets and ipaddr.js want it: URL keeps IPv6 literals bracketed. */
export function bareHostname(url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, '$1');
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
  const hostname = bareHostname(url);
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
