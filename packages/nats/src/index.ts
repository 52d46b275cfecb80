export * as NatsConsumer from "./NatsConsumer.ts"
export * as NatsMessage from "./NatsMessage.ts"
export * as NatsPublisher from "./NatsPublisher.ts"
