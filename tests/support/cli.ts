/** The built `ix` (dist/cli.js) as a child process, as users run it. */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const CLI = 'dist/cli.js';

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * The environment of a child with nothing of the suite's database in it, so `ix start` runs its
 * embedded PostgreSQL unless the test passes IX_POSTGRES_URL itself.
 */
export function cleanEnv(env: Record<string, string> = {}): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = { ...process.env, IX_LOG_LEVEL: 'warn' };
  delete base.IX_POSTGRES_URL;
  delete base.IX_TEST_DATABASE_URL;
  return { ...base, ...env };
}

/** Runs `ix args…` to completion. */
export function runCli(args: string[], env: Record<string, string> = {}, stdin = ''): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: cleanEnv(env) });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

/** Resolves once the child has exited and its output is fully read ('close', not 'exit'). */
export function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.stderr?.readableEnded !== false && (child.exitCode !== null || child.signalCode !== null))
      resolve(child.exitCode);
    else child.once('close', (code) => resolve(code));
  });
}

export interface RunningIx {
  child: ChildProcess;
  /** `http://127.0.0.1:port`, from the "ix listening on" line. */
  address: string;
  stderr(): string;
  /** Sends `signal` and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Spawns `ix start` (or `ix api`) and resolves once it prints where it listens. */
export function startIx(
  env: Record<string, string>,
  command: 'start' | 'api' = 'start',
  timeoutMs = 60_000,
): Promise<RunningIx> {
  const child = spawn(process.execPath, [CLI, command], {
    env: cleanEnv({ IX_PORT: '0', ...env }),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      reject(new Error(`ix ${command} did not listen within ${timeoutMs} ms; stderr:\n${stderr}`));
    }, timeoutMs);
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk;
      const match = /ix listening on (http:\/\/\S+)/.exec(stderr);
      if (match?.[1]) {
        clearTimeout(timer);
        resolve({
          child,
          address: match[1],
          stderr: () => stderr,
          stop: (signal = 'SIGTERM') => {
            child.kill(signal);
            return exited(child);
          },
        });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`ix ${command} exited (${code}) before listening; stderr:\n${stderr}`));
    });
  });
}

/** The pid of the embedded postmaster in `dataDir`, or null when none is recorded. */
export function postmasterPid(dataDir: string): number | null {
  const file = join(dataDir, 'pg', 'postmaster.pid');
  if (!existsSync(file)) return null;
  return Number(readFileSync(file, 'utf8').split('\n')[0]);
}

/** Running, not merely a zombie waiting for init to reap it (the postmaster is reparented to init). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const stat = `/proc/${pid}/stat`;
  if (!existsSync(stat)) return true;
  // The state follows the parenthesised command name, which may itself contain spaces.
  const state = readFileSync(stat, 'utf8').split(') ').pop()?.[0];
  return state !== 'Z' && state !== 'X';
}

/** Stops a postmaster a failed test left behind: SIGQUIT is PostgreSQL's immediate shutdown. */
export function killPostmaster(dataDir: string): void {
  const pid = postmasterPid(dataDir);
  if (pid !== null && isAlive(pid)) process.kill(pid, 'SIGQUIT');
}
