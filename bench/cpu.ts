/** CPU time of the processes that share the benchmark machine. */
import { readdir, readFile } from 'node:fs/promises';

const TICKS_PER_SECOND = 100;

/**
 * CPU time of every local `postgres` process (server and backends) from /proc, in µs; null where
 * there is no /proc. The three processes share two cores, so each one's share says which to cut.
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
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    if (!stat.includes('(postgres)')) continue;
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime: fields 14 and 15 of stat(5), 12 and 13 after the command name.
    ticks += Number(fields[11]) + Number(fields[12]);
  }
  return (ticks * 1_000_000) / TICKS_PER_SECOND;
}

export function ownCpuMicros(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}
