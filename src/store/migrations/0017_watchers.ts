import type { Migration } from './types.js';

/**
 * The processes that have someone waiting on a job (a long-poll, an event stream, `ix submit
 * --wait`), each with the time its registration lapses unless renewed. Job change notifications
 * are sent only while one is registered: without a waiter they woke every listening session of
 * the database for nothing. At 300 submits a second, with nobody waiting, the listen connections'
 * CPU a job halved (155 → 75 µs with one worker, ~250 → ~127 with four) and PostgreSQL's whole
 * CPU a job fell 1–9 % (bench/RESULTS.md, "Change notifications only while someone waits"). A
 * handful of rows, read by every notifying statement, written every few seconds by a process
 * with waiters.
 */
export const watchers: Migration = {
  version: 17,
  name: 'watchers',
  up: `
    CREATE TABLE ix_watchers (
      watcher_id uuid PRIMARY KEY,
      until timestamptz NOT NULL
    );`,
  down: `DROP TABLE ix_watchers;`,
};
