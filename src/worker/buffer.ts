import { type Claim, startsAlone } from './claim.js';

/**
 * The claims a worker holds but has not started, in the order they were claimed, and the order
 * they start in: the oldest first, each into a free slot; but one that runs alone (startsAlone)
 * waits until nothing else runs, and nothing after it starts until it has ended.
 */
export class ClaimBuffer {
  private readonly claims: Claim[] = [];
  /** The claim running alone: nothing else starts until it has ended. */
  private alone: Claim | null = null;

  get length(): number {
    return this.claims.length;
  }

  add(claim: Claim): void {
    this.claims.push(claim);
  }

  /** Takes `claim` out if it still waits here; says whether it did. */
  remove(claim: Claim): boolean {
    const at = this.claims.indexOf(claim);
    if (at < 0) return false;
    this.claims.splice(at, 1);
    return true;
  }

  /** Takes out every claim still waiting. */
  takeAll(): Claim[] {
    return this.claims.splice(0);
  }

  /**
   * Takes out the next claim to start, while `running` claims run or are starting in a worker of
   * `concurrency` slots; null when none may start now.
   */
  next(running: number, concurrency: number): Claim | null {
    const claim = this.claims[0];
    if (claim === undefined || this.alone !== null) return null;
    if (startsAlone(claim)) {
      if (running > 0) return null;
      this.alone = claim;
    } else if (running >= concurrency) {
      return null;
    }
    this.claims.shift();
    return claim;
  }

  /** `claim` has ended, or is no longer the worker's: after one that ran alone, others start. */
  ended(claim: Claim): void {
    if (this.alone === claim) this.alone = null;
  }
}
