/**
 * Aggregates: a decider bound to its stream category and to the schemas of its commands, events and (optionally)
 * state. The command handler, the property tests and the snapshot machinery all work from this one value.
 */
import type { Schema } from "effect"
import type { Decider } from "./Decider.ts"
import type { Tagged } from "./Envelope.ts"
import * as EventCodec from "./EventCodec.ts"

/** An aggregate type: where its streams live, what it accepts and records, and how it decides. */
export interface Aggregate<Command, Event extends Tagged, State, Error = never> {
  /** The stream category: aggregate `id` lives in stream `<category>-<id>`. */
  readonly category: string
  /** The schema of the commands it accepts (property tests generate commands from it). */
  readonly commands: Schema.Codec<Command, unknown>
  /** The codec of its events, made from their union schema. */
  readonly events: EventCodec.EventCodec<Event>
  /** The schema of its state, when it has one (snapshots need it). */
  readonly state?: Schema.Codec<State, unknown>
  /** The domain logic. */
  readonly decider: Decider<Command, Event, State, Error>
}

/** Builds an aggregate from its category, schemas and decider. */
export const make = <Command, Event extends Tagged, State, Error = never>(definition: {
  readonly category: string
  readonly commands: Schema.Codec<Command, unknown>
  readonly events: Schema.Codec<Event, unknown>
  readonly state?: Schema.Codec<State, unknown>
  readonly decider: Decider<Command, Event, State, Error>
}): Aggregate<Command, Event, State, Error> => ({
  ...definition,
  events: EventCodec.make(definition.events)
})

/** A union of any aggregate's type parameters, for functions that accept every aggregate. */
export type Any = Aggregate<any, any, any, any>
