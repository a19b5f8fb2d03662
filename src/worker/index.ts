export { echoPipeline, httpPipeline, loadPipeline } from './builtins.js';
export type { Pipeline, PipelineContext, PipelineResult } from './pipeline.js';
export { JobAbort, PipelineTimeoutError, runPipeline } from './run.js';
export { Sweeper } from './sweeper.js';
export { Worker, type WorkerOptions } from './worker.js';
