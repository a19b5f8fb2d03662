export { MAX_RESPONSE_BYTES } from './deliver.js';
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
export { sign, signatureHeaders, webhookId } from './sign.js';
