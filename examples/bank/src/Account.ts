/**
 * A bank account whose events changed shape over the years. `AccountOpened` v1 held the holder's full name; v2 split
 * it in two. `Deposited` v1 held euros as a decimal number; v2 renamed it to whole cents; v3 added a currency with a
 * default. The holder's names are personal data of the customer: forgetting the customer redacts them, and the
 * account still loads with its balance.
 */
import { Aggregate, Decider, EventVersions, PersonalData } from "@chronicle/core"
import { Result, Schema } from "effect"

/** What a forgotten customer's names read as. */
export const redactedName = "[forgotten]"
const forgotten = PersonalData.personal({ redacted: redactedName })

// ── Events ── stored forever: never rename a tag or field; add a new version instead.
/** v1 (stored until 2023): the holder's full name in one field. */
export const AccountOpenedV1 = Schema.TaggedStruct("AccountOpened", {
  customerId: Schema.String.pipe(PersonalData.subject),
  holder: Schema.String.pipe(forgotten)
})
/** The account was opened for a customer. */
export const AccountOpened = Schema.TaggedStruct("AccountOpened", {
  customerId: Schema.String.pipe(PersonalData.subject),
  firstName: Schema.String.pipe(forgotten),
  lastName: Schema.String.pipe(forgotten)
})
/** v1: the amount in euros, as a decimal number. */
export const DepositedV1 = Schema.TaggedStruct("Deposited", { amount: Schema.Finite })
/** v2: the amount in whole cents. */
export const DepositedV2 = Schema.TaggedStruct("Deposited", { cents: Schema.Int })
/** Money was paid into the account. */
export const Deposited = Schema.TaggedStruct("Deposited", {
  cents: Schema.Int.check(Schema.isGreaterThan(0)),
  currency: Schema.Literals(["EUR", "USD"])
})
/** Money was taken out of the account. */
export const Withdrawn = Schema.TaggedStruct("Withdrawn", { cents: Schema.Int.check(Schema.isGreaterThan(0)) })

/**
 * The history of `AccountOpened`: v1 → v2 splits the full name at its first space; a forgotten name (read as the
 * redaction marker before it is upcast) stays forgotten in both fields.
 */
export const AccountOpenedVersions = EventVersions.make(AccountOpenedV1).next(AccountOpened, {
  decode: ({ customerId, holder }) => {
    if (holder === redactedName) {
      return { _tag: "AccountOpened" as const, customerId, firstName: redactedName, lastName: redactedName }
    }
    const [firstName = "", ...rest] = holder.split(" ")
    return { _tag: "AccountOpened" as const, customerId, firstName, lastName: rest.join(" ") }
  },
  encode: ({ customerId, firstName, lastName }) => ({
    _tag: "AccountOpened" as const,
    customerId,
    holder: `${firstName} ${lastName}`
  })
})
/** The history of `Deposited`: v1 → v2 euros become cents, v2 → v3 adds the currency (EUR before it existed). */
export const DepositedVersions = EventVersions.make(DepositedV1)
  .next(DepositedV2, {
    decode: ({ amount }) => ({ _tag: "Deposited" as const, cents: Math.round(amount * 100) }),
    encode: ({ cents }) => ({ _tag: "Deposited" as const, amount: cents / 100 })
  })
  .next(Deposited, {
    decode: ({ cents }) => ({ _tag: "Deposited" as const, cents, currency: "EUR" as const }),
    encode: ({ cents }) => ({ _tag: "Deposited" as const, cents })
  })

/** Any event of an account, at its current version. */
export const Event = Schema.Union([AccountOpenedVersions.schema, DepositedVersions.schema, Withdrawn])
/** Any event of an account. */
export type Event = typeof Event.Type

// ── State ── one Schema; the type is derived.
/** What an account knows: its customer and holder (personal), its balance in cents, and whether it is open. */
export const State = Schema.Struct({
  customerId: Schema.String.pipe(PersonalData.subject), // snapshots seal the holder under this customer's key
  holder: Schema.String.pipe(forgotten),
  balance: Schema.Int,
  open: Schema.Boolean
})
/** What an account knows. */
export type State = typeof State.Type
/** The state of an account with no events. */
export const initialState: State = { customerId: "", holder: "", balance: 0, open: false }

// ── Fold ── records facts; makes no decisions and never fails.
/** Applies one event to the state. */
export const evolve = (state: State, event: Event): State => {
  switch (event._tag) {
    case "AccountOpened":
      return { ...state, customerId: event.customerId, holder: `${event.firstName} ${event.lastName}`, open: true }
    case "Deposited":
      return { ...state, balance: state.balance + event.cents }
    case "Withdrawn":
      return { ...state, balance: state.balance - event.cents }
  }
}

// ── Decide ── pure: the same command and state always give the same answer.
/** Any command an account accepts. */
export const Command = Schema.TaggedUnion({
  Open: { customerId: Schema.NonEmptyString, firstName: Schema.NonEmptyString, lastName: Schema.String },
  Deposit: { cents: Schema.Int.check(Schema.isGreaterThan(0)) },
  Withdraw: { cents: Schema.Int.check(Schema.isGreaterThan(0)) }
})
/** Any command an account accepts. */
export type Command = typeof Command.Type

/** The account has not been opened yet. */
export class AccountNotOpen extends Schema.TaggedError<AccountNotOpen>()("AccountNotOpen", {}) {}
/** A withdrawal would take the balance below zero. */
export class InsufficientFunds extends Schema.TaggedError<InsufficientFunds>()("InsufficientFunds", {
  balance: Schema.Int,
  requested: Schema.Int
}) {
  override get message() {
    return `cannot withdraw ${this.requested} cents from a balance of ${this.balance}`
  }
}

/** Decides the events a command produces, or why it is refused. Opening an open account is a no-op. */
export const decide = (
  command: Command,
  state: State
): Result.Result<ReadonlyArray<Event>, AccountNotOpen | InsufficientFunds> => {
  switch (command._tag) {
    case "Open":
      return Result.succeed(
        state.open
          ? []
          : [
              AccountOpened.make({
                customerId: command.customerId,
                firstName: command.firstName,
                lastName: command.lastName
              })
            ]
      )
    case "Deposit":
      if (!state.open) return Result.fail(new AccountNotOpen())
      return Result.succeed([Deposited.make({ cents: command.cents, currency: "EUR" })])
    case "Withdraw":
      if (!state.open) return Result.fail(new AccountNotOpen())
      if (command.cents > state.balance) {
        return Result.fail(new InsufficientFunds({ balance: state.balance, requested: command.cents }))
      }
      return Result.succeed([Withdrawn.make({ cents: command.cents })])
  }
}

/** The account aggregate: streams `account-<id>`. */
export const Account = Aggregate.make({
  category: "account",
  commands: Command,
  events: Event,
  state: State,
  decider: Decider.make({ initialState, evolve, decide })
})

/** Every event type the bank stores, with its history and personal fields, for the store decorators. */
export const registry = EventVersions.registry([Event])
