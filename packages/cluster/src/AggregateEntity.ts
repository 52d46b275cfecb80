/**
 * Aggregates as entities: each aggregate lives on the cluster runner that owns its shard, and its commands are sent
 * there. The entity keeps the folded state and version between commands, so a command costs one append and no
 * read. It passivates when idle (`maxIdleTime`) and loads again (snapshot + tail) on its next command. Every append
 * still carries the expected version, through `CommandHandler.handleFrom`. When two runners both believe they own an
 * aggregate (a split brain while a shard moves), the second append conflicts, reloads and decides again: a conflict,
 * never a lost or doubled event.
 *
 * A command id keeps its meaning. A command re-sent with the same id (after a runner died, or a reply was lost)
 * writes nothing new and gets the reply `CommandHandler` gives a repeat: `written: 0` and the current state.
 * Errors cross the wire as schemas: the domain's refusal (the `error` schema given to `make`), `InvalidCommand`,
 * `StreamClosed` and the store's errors, each with its facts.
 *
 * **Gotchas**: the entity trusts the state it holds. Events written to its streams by other code (a plain
 * `CommandHandler.handle`) are seen at the next conflict, but a refusal may be decided on the state before them: send
 * every command of an aggregate type through its entity. A command without an id that the cluster delivers again
 * after a runner failure may be applied twice: send commands with ids.
 */
import {
  type Aggregate,
  AggregateLoader,
  CommandHandler,
  Envelope,
  EventCodec,
  EventStore,
  StreamName
} from "@chronicle/core"
import { type Duration, Effect, type Layer, Schema } from "effect"
import { type ClusterError, Entity, type Sharding } from "effect/cluster"
import { Rpc } from "effect/rpc"

/** What a command sends to its aggregate's entity: the command, and its id and metadata when it has them. */
export interface Payload<Command> {
  readonly command: Command
  readonly commandId?: string | undefined
  readonly metadata?: Envelope.Metadata | undefined
}

/** What the entity answers: the stream's version and state after the command, and how many events it wrote. */
export interface Reply<State> {
  readonly stream: string
  readonly version: number
  readonly written: number
  readonly state: State
}

/** The entity's one RPC, `Handle`: a command in, the reply or the handler's typed error out. */
export type HandleRpc<Command, State, Err> = Rpc.Rpc<
  "Handle",
  Schema.Codec<Payload<Command>, unknown>,
  Schema.Codec<Reply<State>, unknown>,
  Schema.Codec<CommandHandler.HandleError<Err>, unknown>
>

/** An aggregate type made an entity: the aggregate, the schema of its refusals, and the cluster entity. */
export interface AggregateEntity<Command, Event extends EventCodec.Tagged, State, Err> {
  readonly aggregate: Aggregate.Aggregate<Command, Event, State, Err>
  readonly error: Schema.Codec<Err, unknown>
  readonly entity: Entity.Entity<string, HandleRpc<Command, State, Err>>
}

/** Every failure of a command sent to an entity: the handler's, and the cluster's when it cannot deliver it. */
export type SendError<Err> =
  | CommandHandler.HandleError<Err>
  | ClusterError.MailboxFull
  | ClusterError.AlreadyProcessingMessage
  | ClusterError.PersistenceError
  | ClusterError.EntityNotAssignedToRunner

// The errors of the handler that are not the domain's: the same for every aggregate.
const handlerErrors = [
  CommandHandler.InvalidCommand,
  CommandHandler.StreamClosed,
  EventStore.ConcurrencyError,
  EventStore.AppendContention,
  EventStore.InvalidAppend,
  EventStore.EventStoreError,
  StreamName.InvalidStreamName,
  EventCodec.EventDecodeError,
  EventCodec.EventEncodeError
] as const

/**
 * Makes aggregate type `aggregate` an entity named after its category (or `type`). `error` is the schema of the
 * domain's refusals (`Schema.Never` when it has none). Replies carry the state with the aggregate's state schema;
 * an aggregate without one sends its state as it is, which only suits plain data.
 */
export const make = <Command, Event extends EventCodec.Tagged, State, Err>(
  aggregate: Aggregate.Aggregate<Command, Event, State, Err>,
  options: { readonly error: Schema.Codec<Err, unknown>; readonly type?: string }
): AggregateEntity<Command, Event, State, Err> => {
  const payload: Schema.Codec<Payload<Command>, unknown> = Schema.Struct({
    command: aggregate.commands,
    commandId: Schema.optional(Schema.String),
    metadata: Schema.optional(Envelope.Metadata)
  })
  const reply: Schema.Codec<Reply<State>, unknown> = Schema.Struct({
    stream: Schema.String,
    version: Schema.Int,
    written: Schema.Int,
    state: aggregate.state ?? (Schema.Unknown as Schema.Codec<State, unknown>)
  })
  const error = Schema.Union([options.error, ...handlerErrors]) as Schema.Codec<
    CommandHandler.HandleError<Err>,
    unknown
  >
  const handle: HandleRpc<Command, State, Err> = Rpc.make("Handle", { payload, success: reply, error })
  return { aggregate, error: options.error, entity: Entity.make(options.type ?? aggregate.category, [handle]) }
}

/**
 * Runs the entity on this runner: each aggregate, while active, keeps the `Loaded` state its last command reached and
 * handles its commands one at a time from it. It passivates after `maxIdleTime` without a command (the cluster's
 * `entityMaxIdleTime` unless given). A failure other than the domain's refusal drops the kept state, so the next
 * command loads again.
 */
export const layer = <Command, Event extends EventCodec.Tagged, State, Err>(
  self: AggregateEntity<Command, Event, State, Err>,
  options: { readonly maxIdleTime?: Duration.Input } = {}
): Layer.Layer<never, never, Sharding.Sharding | EventStore.EventStore> => {
  const { aggregate, entity } = self
  const refusal = Schema.is(self.error)
  return entity.toLayer(
    Effect.gen(function* () {
      const id = (yield* Entity.CurrentAddress).entityId
      let kept: AggregateLoader.Loaded<State> | undefined
      return entity.of({
        Handle: ({ payload }) =>
          Effect.gen(function* () {
            const loaded = kept ?? (yield* AggregateLoader.load(aggregate, id))
            const handled = yield* CommandHandler.handleFrom(aggregate, id, loaded, payload.command, {
              ...(payload.commandId === undefined ? {} : { commandId: payload.commandId }),
              ...(payload.metadata === undefined ? {} : { metadata: payload.metadata })
            })
            kept = handled.loaded
            return { stream: handled.stream, version: handled.version, written: handled.written, state: handled.state }
          }).pipe(
            Effect.tapError((error) =>
              Effect.sync(() => {
                if (!refusal(error)) kept = undefined
              })
            )
          )
      })
    }),
    options.maxIdleTime === undefined ? {} : { maxIdleTime: options.maxIdleTime }
  )
}

/**
 * A client that sends commands to the entities of `self` wherever they run: `send(id, command, options)`. The command
 * is checked against the aggregate's command schema first, so one that does not fit fails with `InvalidCommand`
 * before anything is sent.
 */
export const client = <Command, Event extends EventCodec.Tagged, State, Err>(
  self: AggregateEntity<Command, Event, State, Err>
): Effect.Effect<
  (
    id: string,
    command: NoInfer<Command>,
    options?: { readonly commandId?: string; readonly metadata?: Envelope.Metadata }
  ) => Effect.Effect<Reply<State>, SendError<Err>>,
  never,
  Sharding.Sharding
> =>
  Effect.map(
    self.entity.client,
    (clientFor) =>
      (id, command, options = {}) =>
        CommandHandler.decodeCommand(self.aggregate, StreamName.make(self.aggregate.category, id), command).pipe(
          Effect.flatMap((decoded) =>
            clientFor(id).Handle({ command: decoded, commandId: options.commandId, metadata: options.metadata })
          )
        )
  )
