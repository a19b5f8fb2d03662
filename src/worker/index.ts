export { echoPipeline, httpPipeline, loadPipeline } from './builtins.js';
export { type Pipeline, type PipelineContext, type PipelineResult, RetryableError } from './pipeline.js';
export { type PruneOnceOptions, Pruner, prunedCount, retentionPolicy } from './pruner.js';
export { backoffSeconds, type RetryPolicy } from './retry.js';
export { JobAbort, PipelineTimeoutError, type RunOutcome, runPipeline } from './run.js';
export { Sweeper } from './sweeper.js';
export { Worker, type WorkerOptions } from './worker.js';
