export {
  assertSafeExposure,
  type Caller,
  createAuthenticator,
  isLoopbackHost,
  requireOperator,
} from './auth.js';
export { ClientDirectory, type EffectiveLimits, effectiveLimits } from './directory.js';
export { ApiError, type ErrorBody, type ErrorCode, type ErrorDetail } from './errors.js';
export { PENDING_CACHE_MS, SubmitLimits, TokenBucket } from './limits.js';
export { type ApiDeps, buildApi, HTTP_TIMEOUTS, metricsFor, type RunningApi, startApi } from './server.js';
