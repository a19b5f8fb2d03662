/**
 * The registry of processes with someone waiting on a job (migrations/0017_watchers.ts): job
 * change notifications go out only while one is registered (notify.ts).
 */
import type { Db } from './db.js';

// Lapsed registrations (a process that died with waiters) go with the next registration of any.
const REGISTER_SQL = `
  WITH lapsed AS (DELETE FROM ix_watchers WHERE until < now() AND watcher_id <> $1)
  INSERT INTO ix_watchers (watcher_id, until) VALUES ($1, now() + make_interval(secs => $2))
  ON CONFLICT (watcher_id) DO UPDATE SET until = excluded.until`;

/**
 * Registers (or renews) `watcherId` for `seconds`: from the commit on, every statement that
 * notifies job changes sends them. Its waiters must read their jobs only after this returns, so
 * that a change committed before is read and one committed after is told.
 */
export async function watcherRegister(db: Db, watcherId: string, seconds: number): Promise<void> {
  await db.query(REGISTER_SQL, [watcherId, seconds]);
}

/** Removes `watcherId`'s registration: it has nobody waiting any more. */
export async function watcherRemove(db: Db, watcherId: string): Promise<void> {
  await db.query('DELETE FROM ix_watchers WHERE watcher_id = $1', [watcherId]);
}
