/**
 * A pipeline's response as it will be stored: written as JSON here, once, so that a result
 * JSON cannot carry (a BigInt, a cycle) or that is over the size limit ends its own job `error`
 * with a message that says why, instead of failing the statement it would share with others.
 */
import type { Config } from '../config.js';
import type { ResponseIX } from '../contracts/index.js';
import { CANCELLED_ERROR, storedResponseJson } from '../store/index.js';
import type { Claim } from './claim.js';
import type { Finished } from './completer.js';
import { backoffSeconds } from './retry.js';
import type { RunOutcome } from './run.js';

export interface StorableResponse {
  response: ResponseIX;
  /** `response` as it is stored (storedResponseJson): what the completion statement sends. */
  json: string;
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** An `error` response saying why `response` could not be stored; always storable itself. */
export function unstorable(response: ResponseIX, reason: string): StorableResponse {
  const what = response.error === null ? 'result' : 'error';
  // The reason comes from PostgreSQL or V8 and is plain text, but it must not carry the very
  // characters that made the outcome unstorable (a NUL, a lone surrogate).
  const clean = reason.replaceAll('\u0000', '').replace(LONE_SURROGATE, '\ufffd');
  const replacement: ResponseIX = {
    ix_id: response.ix_id,
    error: `pipeline ${what} could not be stored: ${clean}`,
    result: null,
  };
  return { response: replacement, json: storedResponseJson(replacement) };
}

export function storable(response: ResponseIX, maxBytes: number): StorableResponse {
  let json: string;
  try {
    json = storedResponseJson(response);
  } catch (error) {
    return unstorable(response, `not JSON (${(error as Error).message})`);
  }
  // UTF-8 takes at most 3 bytes a UTF-16 unit: only a long text needs counting exactly.
  if (json.length * 3 > maxBytes) {
    const bytes = Buffer.byteLength(json);
    if (bytes > maxBytes) {
      return unstorable(
        response,
        `it is ${bytes} bytes as JSON, over IX_PIPELINE_MAX_RESULT_BYTES (${maxBytes})`,
      );
    }
  }
  return { response, json };
}

/**
 * What a finished run hands the completer: `cancelled` when a client cancelled it meanwhile
 * (whatever the aborted pipeline returned: the completion's fence decides whether the
 * cancellation or an outcome recorded before it stands), else its response as it can be stored,
 * with the wait before the next run when it failed retryably (the completion ends the job instead
 * if this was its last attempt).
 */
export function finishedRun(
  claim: Claim,
  { response, retry }: RunOutcome,
  config: Config['worker'],
): Finished {
  const { job } = claim;
  if (claim.cancelled) {
    const cancelled = { ix_id: job.ix_id, error: CANCELLED_ERROR, result: null };
    return {
      claim,
      outcome: storable(cancelled, config.maxResultBytes),
      retryInSeconds: null,
      cancelled: true,
    };
  }
  const outcome = storable(response, config.maxResultBytes);
  // An outcome that cannot be stored would be just as unstorable next time: permanent.
  const retryInSeconds =
    retry === null || outcome.response !== response
      ? null
      : backoffSeconds(job.attempts, retry.afterSeconds, config);
  return { claim, outcome, retryInSeconds };
}
