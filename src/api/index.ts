export { assertSafeExposure, type Caller, isLoopbackHost } from './auth.js';
export { callbackUrlProblem, MAX_CALLBACK_URL_LENGTH } from './callback-url.js';
export { ApiError, type ErrorBody, type ErrorCode, type ErrorDetail } from './errors.js';
export { type SubmitBody, SubmitBodySchema } from './schemas.js';
export { type ApiDeps, buildApi, HTTP_TIMEOUTS, type RunningApi, startApi } from './server.js';
