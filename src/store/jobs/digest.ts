/**
 * What makes two submissions of one key the same request: `input` and `callback_url` (`ix_id`
 * is the server's, the key is the key), as SQL over the columns of `alias`: the SHA-256 of
 * `jsonb_build_array(input, callback_url)::text`. jsonb's text is canonical (keys sorted, one
 * spacing), so key order does not matter; numbers reach it through JSON.parse, so neither does
 * 1.0 against 1. A JSON null input and a missing one print `null` alike, whether they reach it
 * as jsonb null or (through jsonb_to_recordset) as SQL NULL. The array's text is written out (`[`,
 * the input's text, `, `, the callback URL's, `]`, as jsonb prints an array) rather than built:
 * building the array took ~40% of the digest (32,000 digests in psql: 194-277 ms built, 113-148
 * ms written out). Digests stored earlier were made by the array: a digest that differs from it
 * makes every replay of such a job a conflict (tests/integration/store.jobs.test.ts holds the two
 * equal over random inputs).
 */
export const requestDigest = (alias: string) =>
  `sha256(convert_to('[' || coalesce(${alias}.input::text, 'null') || ', ' || coalesce(to_jsonb(${alias}.callback_url)::text, 'null') || ']', 'UTF8'))`;

/**
 * The digest of the request an `ix_jobs` row (`alias`) holds. A job is stored without one
 * (migration 16): it is made from the row's own input and callback URL when a replay or the
 * prune needs it. Jobs stored by versions 5 to 15 kept theirs in `request_digest`, used as it is.
 */
export const jobRequestDigest = (alias: string) =>
  `coalesce(${alias}.request_digest, ${requestDigest(alias)})`;
