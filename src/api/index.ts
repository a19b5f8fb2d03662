export {
  assertSafeExposure,
  type Caller,
  createAuthenticator,
  isLoopbackHost,
  requireOperator,
} from './auth.js';
export { ApiError, type ErrorBody, type ErrorCode, type ErrorDetail } from './errors.js';
export { type ApiDeps, buildApi, HTTP_TIMEOUTS, metricsFor, type RunningApi, startApi } from './server.js';
