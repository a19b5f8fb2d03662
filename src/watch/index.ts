export { isFinished, type JobEvent, JobEvents } from './events.js';
export { type FollowOptions, followJob } from './follow.js';
export { waitForEnd } from './wait.js';
export { type JobListener, JobWatcher, type WatcherOptions } from './watcher.js';
