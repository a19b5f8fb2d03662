export { Worker, type WorkerOptions } from './dispatcher.js';
export type { Pipeline, PipelineContext, PipelineResult } from './pipeline.js';
export { echoPipeline, httpPipeline, loadPipeline } from './pipelines.js';
export { JobAbort, PipelineTimeoutError, runPipeline } from './run.js';
export { Sweeper } from './sweeper.js';
