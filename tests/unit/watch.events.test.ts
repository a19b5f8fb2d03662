import { describe, expect, it } from 'vitest';
import type { Job, Run } from '../../src/contracts/index.js';
import { JobEvents } from '../../src/watch/index.js';

const run = (outcome: Run['outcome'], finished: boolean): Run => ({
  attempt: 1,
  worker_id: null,
  started_at: '2026-11-30T10:00:00.000Z',
  finished_at: finished ? '2026-11-30T10:00:01.000Z' : null,
  duration_ms: finished ? 1_000 : null,
  outcome,
  error: null,
  retry_at: null,
});

function job(status: Job['status'], runs: Run[], progressAt: string | null = null): Job {
  return {
    job_id: '00000000-0000-7000-8000-000000000001',
    ix_id: '0123456789abcdef',
    client_id: 'c',
    request_id: 'r',
    status,
    request: { ix_client_id: 'c', request_id: 'r', ix_id: '0123456789abcdef', input: null },
    response: null,
    callback_url: null,
    callback_status: null,
    callback_attempts: null,
    attempts: 0,
    max_attempts: null,
    priority: 0,
    run_after: null,
    last_error: null,
    progress:
      progressAt === null ? null : { percent: 10, stage: null, message: null, updated_at: progressAt },
    attempt_history: runs,
    created_at: '2026-11-30T10:00:00.000Z',
    started_at: null,
    finished_at: null,
  };
}

describe('JobEvents', () => {
  // Every way a job moves, in order: each state is newer than the one before it.
  const states = [
    job('pending', []),
    job('running', [run('running', false)]),
    job('running', [run('running', false)], '2026-11-30T10:00:00.500Z'),
    job('pending', [run('retry', true)]),
    job('running', [run('retry', true), run('running', false)]),
    job('pending', [run('retry', true), run('interrupted', true)]),
    job('done', [run('retry', true), run('interrupted', true), run('done', true)]),
  ];

  it('yields one event per new state, typed by what changed, with growing ids', () => {
    const events = new JobEvents();
    const seen = states.map((state) => events.next(state));
    expect(seen.map((event) => event?.type)).toEqual([
      'pending',
      'running',
      'progress',
      'pending',
      'running',
      'pending',
      'done',
    ]);
    expect(seen.map((event) => event?.id)).toEqual([
      '0-0-0',
      '0-1-0',
      `0-1-${Date.parse('2026-11-30T10:00:00.500Z')}`,
      '1-0-0',
      '1-1-0',
      '2-0-0',
      '3-2-0',
    ]);
  });

  it('yields nothing for a state it has sent, or one older than Last-Event-ID', () => {
    const events = new JobEvents('1-0-0');
    expect(events.next(states[2]!)).toBeNull();
    expect(events.next(states[3]!)).toBeNull();
    expect(events.next(states[4]!)?.type).toBe('running');
    expect(events.next(states[4]!)).toBeNull();
  });

  it('takes a malformed Last-Event-ID as none', () => {
    expect(new JobEvents('not-an-id').next(states[0]!)?.id).toBe('0-0-0');
    expect(new JobEvents('1-2').next(states[0]!)?.id).toBe('0-0-0');
  });
});
