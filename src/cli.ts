#!/usr/bin/env node
/**
 * The `ix` command. Exit codes: 0 success, 1 runtime failure, 2 bad usage or configuration.
 * Each command lives in src/cli/; this file only dispatches and turns errors into exit codes.
 */
import { clients } from './cli/clients.js';
import { cancelJob, getJob, InvalidRequestError, JobNotFoundError, submit } from './cli/jobs.js';
import { migrate } from './cli/migrate.js';
import { prune } from './cli/prune.js';
import { api, start } from './cli/serve.js';
import { COMMAND_HELP, help, USAGE, UsageError } from './cli/usage.js';
import { worker } from './cli/worker.js';
import { ConfigError } from './config.js';
import { version } from './version.js';

const COMMANDS: Record<string, (args: string[]) => Promise<void>> = {
  start,
  api,
  worker,
  migrate,
  prune,
  submit,
  get: getJob,
  cancel: cancelJob,
  clients,
};

const wantsHelp = (args: string[]) => args.includes('--help') || args.includes('-h');

/** node:util parseArgs rejects unknown options with these codes: a usage error, not a crash. */
function isParseArgsError(error: unknown): error is Error {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_');
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined) {
    console.error(USAGE);
    return 2;
  }
  if (command === '--help' || command === '-h') {
    console.log(USAGE);
    return 0;
  }
  if (command === 'help') {
    console.log(help(rest[0]));
    return 0;
  }
  if (command === '--version' || command === '-v') {
    console.log(version());
    return 0;
  }
  const run = COMMANDS[command];
  if (!run) {
    console.error(`ix: unknown command "${command}"\n\n${USAGE}`);
    return 2;
  }
  if (wantsHelp(rest)) {
    console.log(COMMAND_HELP[command]);
    return 0;
  }
  try {
    await run(rest);
    return 0;
  } catch (error) {
    if (error instanceof UsageError || isParseArgsError(error)) {
      console.error(`ix: ${error.message}\n\n${COMMAND_HELP[command]}`);
      return 2;
    }
    if (error instanceof ConfigError || error instanceof InvalidRequestError) {
      console.error(`ix: ${error.message}`);
      return 2;
    }
    if (error instanceof JobNotFoundError) {
      console.error(`ix: ${error.message}`);
      return 1;
    }
    console.error(`ix: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
// Everything ix started is stopped by now. What still holds the event loop open is not ix's to
// wait for: a pipeline that ignored its abort signal (its job was handed back already), or a
// statement stuck behind a lock. Give output a moment to flush, then exit regardless.
setTimeout(() => process.exit(), 1_000).unref();
