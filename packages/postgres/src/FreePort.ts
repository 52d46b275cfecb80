/**
 * A free TCP port on loopback, for a server that a demo, a test or a bench starts (an embedded Postgres, a cluster
 * runner, a metrics endpoint): the system picks one, which is released again and handed back. **Gotcha:** another
 * process could take the port before the caller binds it; pass port 0 to a server that reports the port it bound.
 */
import { createServer } from "node:net"
import { Effect } from "effect"

/** A port on 127.0.0.1 that was free a moment ago, as a Promise. */
export const pickAsync = (): Promise<number> =>
  new Promise<number>((resolve, reject) => {
    const server = createServer()
      .once("error", reject)
      .listen(0, "127.0.0.1", () => {
        const address = server.address()
        server.close(() =>
          typeof address === "object" && address !== null
            ? resolve(address.port)
            : reject(new Error("the system gave no port"))
        )
      })
  })

/** A port on 127.0.0.1 that was free a moment ago. */
export const pick: Effect.Effect<number> = Effect.promise(pickAsync)
