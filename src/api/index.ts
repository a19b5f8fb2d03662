export { assertSafeExposure, type Caller, isLoopbackHost } from './auth.js';
export { ApiError, type ErrorBody, type ErrorCode, type ErrorDetail } from './errors.js';
export { type ApiDeps, buildApi, HTTP_TIMEOUTS, type RunningApi, startApi } from './server.js';
