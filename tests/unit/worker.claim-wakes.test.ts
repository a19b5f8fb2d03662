import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ClaimWakes, QUIET_MAX_MS, QUIET_MS } from '../../src/worker/claim-wakes.js';

describe('ClaimWakes', () => {
  let wakes = 0;
  let gate: ClaimWakes;
  let paceMs = 0;
  /** One claim as the worker makes it: begun, then ended having found `found` of `asked` jobs. */
  const claim = (found: number, asked = 100) => gate.claimEnded(found, asked, gate.claimBegins());

  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date', 'performance'] });
    wakes = 0;
    paceMs = 0;
    gate = new ClaimWakes(
      () => {
        wakes += 1;
      },
      () => paceMs,
    );
  });
  afterEach(() => {
    gate.stop();
    vi.useRealTimers();
  });

  it('answers every notification at once while its claims find jobs', () => {
    for (let i = 0; i < 5; i++) {
      gate.heard();
      claim(1);
    }
    expect(wakes).toBe(5);
  });

  it('after a claim answering a notification finds nothing, answers the notifications of the quiet once, at its end', () => {
    gate.heard();
    claim(0);
    expect(wakes).toBe(1);
    for (let i = 0; i < 10; i++) {
      vi.advanceTimersByTime(2);
      gate.heard();
    }
    expect(wakes).toBe(1);
    vi.advanceTimersByTime(QUIET_MS);
    expect(wakes).toBe(2);
    // That deferred answer is a claim answering a notification: finding nothing quiets it again,
    // twice as long, a race lost in a row.
    claim(0);
    gate.heard();
    expect(wakes).toBe(2);
    vi.advanceTimersByTime(2 * QUIET_MS - 1);
    expect(wakes).toBe(2);
    vi.advanceTimersByTime(1);
    expect(wakes).toBe(3);
  });

  it('races lost in a row double the quiet up to QUIET_MAX_MS; a claim that finds jobs starts it over', () => {
    /** Milliseconds from a notification to the claim that answers it. */
    const answeredAfterMs = (): number => {
      const before = wakes;
      gate.heard();
      let ms = 0;
      for (; wakes === before; ms += 1) vi.advanceTimersByTime(1);
      return ms;
    };
    const lostRaces = (n: number) =>
      Array.from({ length: n }, () => {
        const ms = answeredAfterMs();
        claim(0);
        return ms;
      });
    expect(lostRaces(6)).toEqual([0, QUIET_MS, 2 * QUIET_MS, QUIET_MAX_MS, QUIET_MAX_MS, QUIET_MAX_MS]);
    expect(answeredAfterMs()).toBe(QUIET_MAX_MS);
    claim(1);
    expect(lostRaces(2)).toEqual([0, QUIET_MS]);
  });

  it('a claim that finds jobs ends the quiet', () => {
    gate.heard();
    claim(0);
    claim(3); // for freed slots, say
    gate.heard();
    expect(wakes).toBe(2);
  });

  it('a claim for freed slots or by the idle poll that finds nothing does not quiet it', () => {
    claim(0);
    gate.heard();
    expect(wakes).toBe(1);
  });

  it('a stopped gate answers nothing, not even an answer it had deferred', () => {
    gate.heard();
    claim(0);
    gate.heard();
    gate.stop();
    gate.heard();
    vi.advanceTimersByTime(10 * QUIET_MS);
    expect(wakes).toBe(1);
  });

  it('asks for a claim as room is made, until a claim finds nothing ready', () => {
    gate.roomMade(false);
    claim(2);
    gate.roomMade(false);
    expect(wakes).toBe(2);
    claim(0);
    gate.roomMade(false);
    gate.roomMade(false);
    expect(wakes).toBe(2);
  });

  it('after a claim found nothing, room made with a job nothing announces (a freed max_running slot) asks again', () => {
    claim(0);
    gate.roomMade(false);
    expect(wakes).toBe(0);
    gate.roomMade(true);
    expect(wakes).toBe(1);
    // That claim is still to come; until it finds nothing again, room keeps asking.
    gate.roomMade(false);
    expect(wakes).toBe(2);
  });

  it('after a claim found nothing, a notification still asks at once', () => {
    claim(0);
    gate.heard();
    expect(wakes).toBe(1);
  });

  it('a retry it queued asks for a claim once due, even after a claim found nothing', () => {
    claim(0);
    gate.retryDueIn(100);
    vi.advanceTimersByTime(99);
    expect(wakes).toBe(0);
    vi.advanceTimersByTime(1);
    expect(wakes).toBe(1);
  });

  it('after a claim that came back short, the next waits out the pace; not after a full or an empty one', () => {
    paceMs = 20;
    claim(3, 10);
    expect(gate.pacedForMs()).toBe(20);
    vi.advanceTimersByTime(15);
    expect(gate.pacedForMs()).toBe(5);
    // The pace is read as it stands: more live workers, a longer wait.
    paceMs = 40;
    expect(gate.pacedForMs()).toBe(25);
    vi.advanceTimersByTime(25);
    expect(gate.pacedForMs()).toBe(0);
    claim(3, 10);
    claim(10, 10);
    expect(gate.pacedForMs()).toBe(0);
    claim(3, 10);
    claim(0, 10);
    expect(gate.pacedForMs()).toBe(0);
  });
});
