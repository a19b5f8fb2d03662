import { documentedDefault, documentedRange, documentedSettings, SETTINGS, type Setting } from '../config.js';
import { KEY_ID_LENGTH, LATEST_VERSION } from '../store/index.js';

const KEY_ID_LENGTH_TEXT = String(KEY_ID_LENGTH);

/** Bad arguments: exit 2 with the command's usage. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly command?: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

const ENVIRONMENT = 'Every setting is an IX_* environment variable: ix help settings lists them all.';

export const COMMAND_HELP: Record<string, string> = {
  start: `Usage: ix start

Runs migrations, then the API and a worker (with callback delivery) in one process, until
SIGTERM or SIGINT. With no IX_POSTGRES_URL it runs an embedded PostgreSQL with its data in
IX_DATA_DIR (default ${documentedDefault(SETTINGS.database.dataDir)}) and stops it on exit.

${ENVIRONMENT}`,
  api: `Usage: ix api

Serves the REST API (docs at /docs) on IX_HOST:IX_PORT until SIGTERM or SIGINT.
Needs IX_POSTGRES_URL and a migrated schema (ix migrate up).

${ENVIRONMENT}`,
  worker: `Usage: ix worker [--concurrency N]

Runs jobs through the pipeline (IX_PIPELINE) and delivers callbacks until SIGTERM or SIGINT;
on stop, jobs it cannot finish within IX_SHUTDOWN_GRACE_SECONDS are put back.
Needs IX_POSTGRES_URL.

Options:
  --concurrency N   jobs run at once (overrides IX_WORKER_CONCURRENCY)

${ENVIRONMENT}`,
  migrate: `Usage: ix migrate up [--to VERSION]
       ix migrate down [--to VERSION]

up applies migrations (default: all, up to ${LATEST_VERSION}); down reverts them (default: one
step; --to 0 removes everything). Needs IX_POSTGRES_URL.`,
  prune: `Usage: ix prune [--dry-run]

Runs one pass of the pruner now and prints what it removed: finished jobs past their retention
(IX_RETAIN_DONE, IX_RETAIN_ERROR, IX_RETAIN_CANCELLED) become tombstones, which answer 410 gone
and keep each request id taken, and tombstones past IX_RETAIN_TOMBSTONES go, freeing their
request ids. Workers run the same pass every IX_PRUNE_INTERVAL_SECONDS; one process prunes at a
time, and ix prune exits 1 when another is pruning. Like theirs, its pass sleeps between batches
(IX_PRUNE_DUTY_PERCENT); set it to 100 to clear a backlog at full speed. Needs IX_POSTGRES_URL.

Options:
  --dry-run   count what the pass would remove, and remove nothing`,
  submit: `Usage: ix submit [--url URL] [--wait [SECONDS]] [FILE]

Submits the request JSON in FILE (or on stdin when FILE is absent or -) and prints the job.
The JSON is a RequestIX ({"ix_client_id", "request_id", "input"}) or, to be called back,
{"request": RequestIX, "callback_url": "https://…"}. Submitting the same ix_client_id and
request_id again prints the existing job; with a different input or callback_url it exits 1,
naming that job (the first request stands). A request id whose job was pruned exits 1 (gone)
until its tombstone expires.

Options:
  --url URL           submit through the ix API at URL (default IX_API_URL), with the key in
                      IX_API_KEY; without either, straight into the database at IX_POSTGRES_URL
  --wait [SECONDS]    print the job once it has finished (done, error or cancelled), waiting at
                      most SECONDS (default 60); one still pending or running then is printed as
                      it stands, and ix exits 1`,
  get: `Usage: ix get [--url URL] [--follow] JOB_ID

Prints the job, or exits 1 when there is none or it was pruned (gone).

Options:
  --url URL   ask the ix API at URL (default IX_API_URL), with the key in IX_API_KEY;
              without either, the database at IX_POSTGRES_URL
  --follow    print each change of the job as it happens, one JSON line each
              ({"id", "type", "job"}: type is the new status, or progress), until it has finished`,
  clients: `Usage: ix clients add ID [--weight N] [--max-running N] [--max-pending N] [--rate R]
       ix clients list [--json]
       ix clients set ID [--weight N] [--max-running N|default] [--max-pending N|default] [--rate R|default]
       ix clients key add ID
       ix clients key revoke ID KEY_ID [--force]
       ix clients disable ID
       ix clients enable ID

Clients as data, in the ix_clients table: each one's weight in the claim, its limits and its
API keys. Every running API applies a change within a moment, without a restart.
  add          adds a client with a new key, printed once on stdout (only its SHA-256 is stored);
               an ID already in IX_API_KEYS is refused
  list         every client, its settings and the ids of its keys (KEY_ID: the first
               ${KEY_ID_LENGTH_TEXT} hex digits of the key's SHA-256, never part of the key)
  set          changes the settings given; "default" returns a limit to the server's (IX_CLIENT_MAX_PENDING, …)
  key add      adds another key to the client (rotation: callers move to it, then revoke the old)
  key revoke   revokes a key; the client's last key only with --force (disable keeps it instead)
  disable      its keys answer 401 and its pending jobs wait, unclaimed, until enable

Options:
  --weight N        its share of the workers when clients compete (1 to 1000, default 1)
  --max-running N   its jobs claimed at once (IX_CLIENT_MAX_RUNNING)
  --max-pending N   its jobs waiting to run; a submit past it answers 429 (IX_CLIENT_MAX_PENDING)
  --rate R          submits a second to each API process; past it 429 (IX_CLIENT_RATE)

Uses IX_POSTGRES_URL; without it, the embedded PostgreSQL of ix start in IX_DATA_DIR (the
running one, or started for the command).`,
  cancel: `Usage: ix cancel [--url URL] JOB_ID

Cancels the job and prints it: a pending job ends cancelled at once; a running one's worker
aborts its pipeline and records it cancelled (printed still running if that has not happened
yet). Cancelling twice is harmless. A job that had already ended done or error is printed, and
ix exits 1; no such job: exit 1.

Options:
  --url URL   through the ix API at URL (default IX_API_URL), with the key in IX_API_KEY;
              without either, the database at IX_POSTGRES_URL`,
};

export const USAGE = `Usage: ix <command> [options]

Commands:
  start                         API and worker in one process; embedded PostgreSQL without IX_POSTGRES_URL
  api                           the REST API only
  worker [--concurrency N]      run jobs through the pipeline and deliver callbacks
  migrate up|down [--to N]      apply or revert schema migrations (latest: ${LATEST_VERSION})
  prune [--dry-run]             prune finished jobs past their retention now; prints what went
  submit [--url URL] [--wait [S]] [FILE]
                                submit a request JSON from FILE or stdin; prints the job
  get [--url URL] [--follow] JOB_ID
                                print a job, or follow its changes
  cancel [--url URL] JOB_ID     cancel a job; prints it
  clients add|list|set|key|disable|enable …
                                clients, their limits and keys, kept in the database
  help settings                 every setting, its default and what it does

Options:
  -h, --help                    this help, or a command's (ix start --help)
  -v, --version                 the version of ix

Exit codes: 0 success, 1 failure, 2 bad usage or configuration.
${ENVIRONMENT}`;

function defaultAndRange(setting: Setting<unknown>): string {
  const range = documentedRange(setting);
  return `default: ${documentedDefault(setting)}${range === '' ? '' : `; ${range}`}`;
}

/** `ix help settings`: every variable with its default, bounds and doc, group by group. */
function settingsHelp(): string {
  const groups = documentedSettings().map(({ title, settings }) =>
    [
      `${title}:`,
      ...settings.flatMap((setting) => [
        `  ${setting.name} (${defaultAndRange(setting)})`,
        `      ${setting.doc}`,
      ]),
    ].join('\n'),
  );
  return [
    'Settings are IX_* environment variables, read once at start-up; unset or blank means the default.',
    ...groups,
  ].join('\n\n');
}

/** `ix help TOPIC`: a command's usage, or the settings; the overall usage for anything else. */
export function help(topic: string | undefined): string {
  if (topic === 'settings') return settingsHelp();
  return (topic !== undefined && COMMAND_HELP[topic]) || USAGE;
}
