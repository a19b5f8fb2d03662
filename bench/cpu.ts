/** CPU time of the processes that share the benchmark machine. */
import { readdir, readFile } from 'node:fs/promises';
import type pg from 'pg';

const TICKS_PER_SECOND = 100;

/** A process's /proc/<pid>/stat: its command, and the fields after it (stat(5) field 3 on). */
async function stat(pid: string): Promise<{ command: string; fields: string[] } | null> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  if (text === null) return null;
  const close = text.lastIndexOf(')');
  return { command: text.slice(text.indexOf('(') + 1, close), fields: text.slice(close + 2).split(' ') };
}

/** Two clock-tick fields of a stat, summed, in µs. */
function micros(fields: string[], first: number, second: number): number {
  return ((Number(fields[first]) + Number(fields[second])) * 1_000_000) / TICKS_PER_SECOND;
}

// utime and stime are fields 14 and 15 of stat(5), 11 and 12 after the command name; cutime and
// cstime (children waited for) 16 and 17, so 13 and 14.
const UTIME = 11;
const STIME = 12;
const CUTIME = 13;
const CSTIME = 14;

/** CPU time of one process (e.g. the API under load), in µs; null where there is no /proc. */
export async function processCpuMicros(pid: number): Promise<number | null> {
  const read = await stat(String(pid));
  return read === null ? null : micros(read.fields, UTIME, STIME);
}

/**
 * CPU time of the PostgreSQL cluster `db` is on, in µs: its postmaster, the backends it has reaped
 * (its children's time) and those still alive, so backends that exit meanwhile count and other
 * clusters on the machine do not. Null where there is no /proc or the data directory cannot be read
 * (a server on another machine).
 */
export async function clusterCpuMicros(db: pg.Pool): Promise<number | null> {
  const { rows } = await db.query<{ dir: string }>('SELECT current_setting($1) AS dir', ['data_directory']);
  const pidFile = await readFile(`${rows[0]!.dir}/postmaster.pid`, 'utf8').catch(() => null);
  const postmasterPid = Number(pidFile?.split('\n')[0]);
  const postmaster = await stat(String(postmasterPid));
  if (postmaster === null) return null;
  let total = micros(postmaster.fields, UTIME, STIME) + micros(postmaster.fields, CUTIME, CSTIME);
  for (const pid of (await readdir('/proc')).filter((entry) => /^\d+$/.test(entry))) {
    const read = await stat(pid);
    // ppid is field 4 of stat(5), 1 after the command name.
    if (read?.command === 'postgres' && Number(read.fields[1]) === postmasterPid)
      total += micros(read.fields, UTIME, STIME);
  }
  return total;
}

/** CPU time of this process's children that have exited and been waited for (wrk), in µs. */
export async function exitedChildrenCpuMicros(): Promise<number | null> {
  const read = await stat('self');
  return read === null ? null : micros(read.fields, CUTIME, CSTIME);
}

export function ownCpuMicros(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}

/**
 * CPU time of each PostgreSQL process alive now, in µs, by pid, with what it serves: its
 * connection's application_name (`ix worker`, `ix api`, `ix listener`), else its backend type
 * (`walwriter`, `checkpointer`, …). Processes /proc cannot show are left out.
 */
export async function backendCpuMicros(db: pg.Pool): Promise<Map<number, { kind: string; micros: number }>> {
  const { rows } = await db.query<{ pid: number; kind: string }>(
    `SELECT pid, coalesce(nullif(application_name, ''), backend_type) AS kind FROM pg_stat_activity`,
  );
  const cpu = new Map<number, { kind: string; micros: number }>();
  for (const { pid, kind } of rows) {
    const read = await stat(String(pid));
    if (read !== null) cpu.set(pid, { kind, micros: micros(read.fields, UTIME, STIME) });
  }
  return cpu;
}

/** What each kind of PostgreSQL process spent between two `backendCpuMicros` readings, in µs. */
export function backendCpuSpent(
  before: Map<number, { kind: string; micros: number }>,
  after: Map<number, { kind: string; micros: number }>,
): Map<string, number> {
  const spent = new Map<string, number>();
  for (const [pid, { kind, micros }] of after) {
    const since = micros - (before.get(pid)?.micros ?? 0);
    spent.set(kind, (spent.get(kind) ?? 0) + since);
  }
  return spent;
}
