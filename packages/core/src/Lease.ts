/**
 * Leases: exactly one holder of a named lease at a time, across fibers or (with `@chronicle/postgres`) across
 * processes. A projection runner or an outbox publisher works only while it holds its lease; when the holder dies
 * the lease frees up and a waiting instance takes over. `withLease` runs an effect under a lease and interrupts it
 * as soon as the lease is lost.
 */
import { Context, Effect, Layer, Schema, type Scope, Semaphore } from "effect"
import { describeCause } from "./internal/describeCause.ts"

/** The lease could not be taken or checked (its store is unreachable); nothing was held. */
export class LeaseError extends Schema.TaggedError<LeaseError>()("LeaseError", {
  lease: Schema.String,
  cause: Schema.Defect()
}) {
  override get message() {
    return `lease ${this.lease} could not be taken or checked: ${describeCause(this.cause)}`
  }
}

/** A lease this instance held was lost (its connection died), so the work it guarded was stopped. */
export class LeaseLost extends Schema.TaggedError<LeaseLost>()("LeaseLost", {
  lease: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `lost lease ${this.lease}: ${this.reason}`
  }
}

/** A lease while it is held. */
export interface Held {
  /** The lease's name. */
  readonly lease: string
  /** Fails with `LeaseLost` when the lease is lost before its scope closes; never succeeds. */
  readonly lost: Effect.Effect<never, LeaseLost>
}

/** The lease service's operations. */
export interface Service {
  /** Waits until this instance holds `lease`, which it keeps until the scope closes (or the lease is lost). */
  readonly acquire: (lease: string) => Effect.Effect<Held, LeaseError, Scope.Scope>
}

/** Hands out named leases, one holder at a time. */
export class Lease extends Context.Service<Lease, Service>()("@chronicle/core/Lease") {}

/**
 * Runs `effect` while holding `lease`: waits for the lease, runs the effect, releases the lease when the effect ends,
 * and interrupts the effect with `LeaseLost` if the lease is lost first.
 */
export const withLease = <A, E, R>(
  lease: string,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E | LeaseError | LeaseLost, R | Lease> =>
  Effect.scoped(
    Effect.flatMap(
      Lease.use((leases) => leases.acquire(lease)),
      (held) => Effect.raceFirst(effect, held.lost)
    )
  )

/** Builds leases held in this process only: fibers wait their turn; a lease is never lost. */
export const makeMemory: Effect.Effect<Service> = Effect.sync(() => {
  const locks = new Map<string, Semaphore.Semaphore>()
  const lockOf = (lease: string) => {
    const existing = locks.get(lease)
    if (existing !== undefined) return existing
    const created = Semaphore.makeUnsafe(1)
    locks.set(lease, created)
    return created
  }
  return {
    acquire: (lease) =>
      Effect.suspend(() => {
        const lock = lockOf(lease)
        // Not acquireRelease around `take`: that waits uninterruptibly, so a waiting fiber could never be stopped.
        return Effect.as(Semaphore.takeScoped(lock, 1), { lease, lost: Effect.never })
      })
  }
})

/** Provides in-process leases (for tests and single-process apps). */
export const layerMemory: Layer.Layer<Lease> = Layer.effect(Lease, makeMemory)
