/** The HTTP server's timeouts, shared by the server and the answers that wait (watching.ts). */

// Explicit HTTP timeouts, so a slow or stuck client cannot hold a socket forever. A whole request
// (headers and body) gets 30 s, the headers alone 10 s; an idle keep-alive socket stays 72 s, just
// above the 60 s idle timeout of common load balancers, so the balancer closes first and never
// sends on a socket ix is closing.
export const HTTP_TIMEOUTS = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 72_000,
  /** A socket with no traffic at all for this long is dropped. */
  connectionTimeoutMs: 120_000,
} as const;
