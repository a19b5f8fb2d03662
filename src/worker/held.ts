import type { Claim } from './claim.js';

/**
 * The claims a worker holds, the stored bytes of their inputs (its budget, IX_WORKER_MAX_HELD_BYTES),
 * and how many jobs of each of their leases it still holds. A claim statement leases all its jobs
 * under one row (the store's batch leases); once none of them is held any more, the lease has
 * ended and is handed to `ended`, which deletes it with the next outcomes written. A job leaves its
 * lease only once the database shows it has (its outcome recorded, its hand-back committed, it
 * was cancelled or moved by another): a lease deleted earlier would leave a job that nothing
 * rescues. The per-lease counts make each job's end O(1), where the set alone would need a scan.
 */
export class HeldClaims {
  private readonly claims = new Set<Claim>();
  private readonly holding = new Map<string, number>();
  private heldBytes = 0;

  constructor(private readonly ended: (leaseId: string) => void) {}

  get size(): number {
    return this.claims.size;
  }

  /** The stored size of the held claims' inputs. */
  get bytes(): number {
    return this.heldBytes;
  }

  [Symbol.iterator](): Iterator<Claim> {
    return this.claims[Symbol.iterator]();
  }

  has(claim: Claim): boolean {
    return this.claims.has(claim);
  }

  /** The jobs of one claim statement, all under one lease. */
  claimed(claims: readonly Claim[]): void {
    const first = claims[0];
    if (first) this.holding.set(first.leaseId, claims.length);
    for (const claim of claims) {
      this.claims.add(claim);
      this.heldBytes += claim.inputBytes;
    }
  }

  /**
   * `claim` is no longer this worker's; `left`: nor its lease's, as the database shows (false:
   * not yet, see `left`). A claim not held is left alone.
   */
  forget(claim: Claim, left = true): void {
    if (!this.claims.delete(claim)) return;
    this.heldBytes -= claim.inputBytes;
    if (left) this.left(claim);
  }

  /** A forgotten claim's job has left its lease too (its hand-back committed). */
  left(claim: Claim): void {
    const holding = this.holding.get(claim.leaseId);
    if (holding === undefined) return;
    if (holding > 1) this.holding.set(claim.leaseId, holding - 1);
    else {
      this.holding.delete(claim.leaseId);
      this.ended(claim.leaseId);
    }
  }
}
