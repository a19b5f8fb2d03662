export { CallbackDeliverer, type CallbackDelivererOptions } from './deliverer.js';
export {
  bareHostname,
  checkCallbackUrl,
  type GuardOptions,
  type GuardResult,
  type ResolvedAddress,
  type Resolver,
  refusedRange,
  systemResolver,
} from './guard.js';
export { type AttemptResult, judge, nextDelaySeconds, parseRetryAfter, type Verdict } from './policy.js';
export { MAX_RESPONSE_BYTES } from './post.js';
export { sign, signatureHeaders, webhookId } from './sign.js';
