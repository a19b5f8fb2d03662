/** CPU time of the processes that share the benchmark machine. */
import { readdir, readFile } from 'node:fs/promises';

const TICKS_PER_SECOND = 100;

/** utime + stime of one process from /proc/<pid>/stat, in ticks; null if it cannot be read. */
async function processTicks(pid: string): Promise<{ command: string; ticks: number } | null> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  if (stat === null) return null;
  const close = stat.lastIndexOf(')');
  const fields = stat.slice(close + 2).split(' ');
  // utime and stime: fields 14 and 15 of stat(5), 12 and 13 after the command name.
  return {
    command: stat.slice(stat.indexOf('(') + 1, close),
    ticks: Number(fields[11]) + Number(fields[12]),
  };
}

/** CPU time of one process (e.g. the API under load), in µs; null where there is no /proc. */
export async function processCpuMicros(pid: number): Promise<number | null> {
  const read = await processTicks(String(pid));
  return read === null ? null : (read.ticks * 1_000_000) / TICKS_PER_SECOND;
}

/**
 * CPU time of every local `postgres` process (server and backends) from /proc, in µs; null where
 * there is no /proc. The processes share two cores, so each one's share says which to cut.
 */
export async function postgresCpuMicros(): Promise<number | null> {
  let pids: string[];
  try {
    pids = (await readdir('/proc')).filter((entry) => /^\d+$/.test(entry));
  } catch {
    return null;
  }
  let ticks = 0;
  for (const pid of pids) {
    const read = await processTicks(pid);
    if (read?.command === 'postgres') ticks += read.ticks;
  }
  return (ticks * 1_000_000) / TICKS_PER_SECOND;
}

/** CPU time of this process's children that have exited and been waited for (wrk), in µs. */
export async function exitedChildrenCpuMicros(): Promise<number | null> {
  const stat = await readFile('/proc/self/stat', 'utf8').catch(() => null);
  if (stat === null) return null;
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // cutime and cstime: fields 16 and 17 of stat(5), 14 and 15 after the command name.
  return ((Number(fields[13]) + Number(fields[14])) * 1_000_000) / TICKS_PER_SECOND;
}

export function ownCpuMicros(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}
