import type { Claim } from './claim.js';

/**
 * How many jobs of each of its leases the worker still holds. A claim leases all its jobs under
 * one row (the store's batch leases); once none of them is held any more, the lease has ended and
 * is handed to `ended`, which deletes it with the next outcomes written. A job leaves its lease
 * only once the database shows it has (its outcome recorded, its hand-back committed, it was
 * cancelled or moved by another): a lease deleted earlier would leave a job that nothing rescues.
 */
export class LeaseBook {
  private readonly holding = new Map<string, number>();

  constructor(private readonly ended: (leaseId: string) => void) {}

  /** The jobs of one claim statement, all under one lease. */
  claimed(claims: readonly Claim[]): void {
    const first = claims[0];
    if (first) this.holding.set(first.leaseId, claims.length);
  }

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
