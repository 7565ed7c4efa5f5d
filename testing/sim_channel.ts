/**
 * The connections of the simulated network and their channel ends.
 * @module
 */
import type { Channel, ChannelReceiver } from "../sync/channel.ts";
import type { SimLink, SimNetwork } from "./sim_network.ts";
import type { SimEvent } from "./sim_random.ts";

/** One open connection of a link. */
export interface SimConnection {
  /** Its number, for traces. */
  readonly id: number;
  /** False once closed or dropped. */
  alive: boolean;
  /** [end at link.a, end at link.b]. */
  readonly ends: [Channel, Channel];
  /** Arrival time of the last frame sent in each direction (0: a to b, 1: b to a). */
  readonly lastArrival: [number, number];
  /** Frames still in flight. */
  inFlight: number;
}

/** A connection with the network's own channel ends and its frames on the way (internal). */
export interface Connection extends SimConnection {
  readonly ends: [SimChannel, SimChannel];
  readonly frames: Set<SimEvent>;
  /** Sides that closed their end. */
  readonly closedBy: Set<0 | 1>;
}

/** One end of a simulated connection (internal to the simulated network). */
export class SimChannel implements Channel {
  receiver: ChannelReceiver | undefined;
  readonly early: (string | Uint8Array)[] = [];
  notice: { code: number; reason: string } | undefined;
  notified = false;

  constructor(
    readonly net: SimNetwork,
    readonly link: SimLink,
    readonly side: 0 | 1,
    readonly connection: () => Connection,
  ) {}

  get bufferedAmount(): number {
    return 0;
  }

  send(data: string | Uint8Array): void {
    this.net.transmit(this.link, this.connection(), this.side, data);
  }

  close(code: number, reason: string): void {
    this.net.closeFrom(this.link, this.connection(), this.side, code, reason);
  }

  listen(receiver: ChannelReceiver): void {
    this.receiver = receiver;
    for (const data of this.early.splice(0)) receiver.frame(data);
    if (this.notice) this.notify();
  }

  deliver(data: string | Uint8Array): void {
    if (this.notified) return;
    if (this.receiver) this.receiver.frame(data);
    else this.early.push(data);
  }

  end(code: number, reason: string): void {
    this.notice ??= { code, reason };
    if (this.receiver) this.notify();
  }

  notify(): void {
    if (this.notified) return;
    this.notified = true;
    this.receiver!.closed(this.notice!.code, this.notice!.reason);
  }
}
