/**
 * An in-process TCP proxy that can partition the link it carries without
 * closing anything, as a failed router, a lost NAT entry or a pulled cable
 * does:
 *
 * - {@link PartitionProxy.partition}: every connection open at that moment
 *   is black-holed for good: bytes in either direction are read and dropped,
 *   and neither end sees a close (TCP would keep retransmitting into the
 *   void). When one end closes, only its side is closed.
 * - Connections accepted during the partition are held: nothing passes
 *   until {@link PartitionProxy.heal}, then they carry on (a connection
 *   attempt retried across the partition succeeds once it heals).
 * - {@link PartitionProxy.heal}: new and held connections forward again.
 * @module
 */

interface Link {
  client: Deno.TcpConn;
  upstream: Deno.TcpConn;
  blackholed: boolean;
}

/** A TCP proxy on 127.0.0.1 in front of `127.0.0.1:targetPort`. */
export class PartitionProxy {
  readonly #listener: Deno.TcpListener;
  readonly #targetPort: number;
  readonly #links = new Set<Link>();
  #gate: PromiseWithResolvers<void> | undefined;
  #closed = false;
  readonly #accepting: Promise<void>;

  /** Starts listening on a free port. */
  constructor(targetPort: number) {
    this.#targetPort = targetPort;
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#accepting = this.#accept();
  }

  /** The proxy's port. */
  get port(): number {
    return (this.#listener.addr as Deno.NetAddr).port;
  }

  /** Whether the link is partitioned. */
  get partitioned(): boolean {
    return this.#gate !== undefined;
  }

  async #accept(): Promise<void> {
    for (;;) {
      let client: Deno.TcpConn;
      try {
        client = await this.#listener.accept();
      } catch {
        return; // Closed.
      }
      let upstream: Deno.TcpConn;
      try {
        upstream = await Deno.connect({ hostname: "127.0.0.1", port: this.#targetPort });
      } catch {
        client.close();
        continue;
      }
      const link: Link = { client, upstream, blackholed: false };
      this.#links.add(link);
      const done = Promise.all([
        this.#pump(link, client, upstream),
        this.#pump(link, upstream, client),
      ]);
      done.finally(() => this.#links.delete(link));
    }
  }

  async #pump(link: Link, from: Deno.TcpConn, to: Deno.TcpConn): Promise<void> {
    const buffer = new Uint8Array(64 * 1024);
    for (;;) {
      let n: number | null;
      try {
        n = await from.read(buffer);
      } catch {
        n = null;
      }
      if (n === null) break;
      if (this.#gate && !link.blackholed) await this.#gate.promise;
      if (link.blackholed) continue; // Dropped on the floor.
      try {
        await writeAll(to, buffer.subarray(0, n));
      } catch {
        break;
      }
    }
    // This end is gone: close our side of it; tell the other end only if the link still works.
    closeQuietly(from);
    if (this.#gate && !link.blackholed) await this.#gate.promise;
    if (!link.blackholed) closeQuietly(to);
  }

  /** Stops forwarding: open connections are black-holed, new ones held until {@link heal}. */
  partition(): void {
    if (this.#gate) return;
    for (const link of this.#links) link.blackholed = true;
    this.#gate = Promise.withResolvers<void>();
  }

  /** Forwards again (black-holed connections stay dead). */
  heal(): void {
    const gate = this.#gate;
    this.#gate = undefined;
    gate?.resolve();
  }

  /** Closes the listener and every connection. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.heal();
    this.#listener.close();
    await this.#accepting;
    for (const link of this.#links) {
      closeQuietly(link.client);
      closeQuietly(link.upstream);
    }
  }
}

async function writeAll(conn: Deno.TcpConn, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}

function closeQuietly(conn: Deno.TcpConn): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}
