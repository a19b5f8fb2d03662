/**
 * A job's events, as its event stream and `ix get --follow` send them: each event is the whole
 * job as it stands after a change, so a client that missed some still has everything that is
 * current. Each carries an id that grows with every change the client can see:
 * `<ended runs>-<stage>-<progress ms>`, where stage is 0 pending, 1 running, 2 ended. Every
 * transition a job makes (docs/design.md, "Job lifecycle") either ends a run, or moves its stage
 * on within one, or reports progress with a later time; so a resumed stream (`Last-Event-ID`)
 * sends only a state newer than the last one seen, and never the same one twice.
 */
import type { Job } from '../contracts/index.js';

export interface JobEvent {
  id: string;
  /** What changed: the new status, or `progress` within a run. */
  type: Job['status'] | 'progress';
  job: Job;
}

type Version = readonly [ended: number, stage: number, progressMs: number];

const STAGES: Record<Job['status'], number> = { pending: 0, running: 1, done: 2, error: 2, cancelled: 2 };

function versionOf(job: Job): Version {
  const ended = job.attempt_history.filter((run) => run.finished_at !== null).length;
  const progressMs =
    job.status === 'running' && job.progress !== null ? Date.parse(job.progress.updated_at) : 0;
  return [ended, STAGES[job.status], progressMs];
}

function parseVersion(id: string | null | undefined): Version | null {
  const parts = id?.split('-').map(Number);
  if (parts?.length !== 3 || !parts.every((n) => Number.isSafeInteger(n) && n >= 0)) return null;
  return [parts[0]!, parts[1]!, parts[2]!];
}

function newer(a: Version, b: Version): boolean {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i]! > b[i]!;
  return false;
}

/** Whether a job's status is final: its stream ends with it. */
export const isFinished = (job: Job): boolean => STAGES[job.status] === 2;

/**
 * Turns successive reads of one job into its events: a read the client has seen already (same
 * or older id than the last one sent, or than `lastEventId` on a resume) yields nothing.
 */
export class JobEvents {
  private last: Version | null;

  constructor(lastEventId?: string | null) {
    this.last = parseVersion(lastEventId);
  }

  next(job: Job): JobEvent | null {
    const version = versionOf(job);
    if (this.last !== null && !newer(version, this.last)) return null;
    const type =
      this.last !== null && version[0] === this.last[0] && version[1] === this.last[1]
        ? 'progress'
        : job.status;
    this.last = version;
    return { id: version.join('-'), type, job };
  }
}
