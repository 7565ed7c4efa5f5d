/**
 * The transport seam: a {@link Channel} carries the frames of one connection
 * (the handshake, then the sync session) and reports its close. WebSocket is
 * one implementation (`websocket.ts`); an in-memory pair and the simulated
 * network are others (`testing.ts`).
 * @module
 */

/** Where a channel delivers what arrives: frames in order, then one close. */
export interface ChannelReceiver {
  /** One text or binary frame from the peer. */
  frame(data: string | Uint8Array): void;
  /**
   * The connection ended (closed by either side or broken). Called once;
   * abnormal ends report 1006 (or 0 when no code is known).
   */
  closed(code: number, reason: string): void;
}

/** One open, bidirectional connection to a peer. */
export interface Channel {
  /** Sends one text or binary frame; throws when the channel can no longer send. */
  send(data: string | Uint8Array): void;
  /**
   * Starts closing with a code and a short reason (the transport may adapt
   * codes it cannot send). The receiver's `closed` follows. Never throws.
   */
  close(code: number, reason: string): void;
  /** Bytes accepted by `send` but not yet written out. */
  readonly bufferedAmount: number;
  /**
   * Sets where frames and the close go. Called once, right after the channel
   * is handed to the node; what arrived before is delivered then.
   */
  listen(receiver: ChannelReceiver): void;
}

/** The outcome of a dial: an open channel, or why there is none. */
export type DialResult =
  | { ok: true; channel: Channel }
  | { ok: false; code: number; reason: string };

/**
 * Opens a channel to `url`. Resolves (never rejects) once the connection is
 * open or has failed; when `signal` aborts, the attempt is abandoned.
 * `headers` go on the opening request where the transport has one (the
 * WebSocket upgrade carries the pre-upgrade credential); others ignore them.
 */
export type Dialer = (
  url: string,
  signal: AbortSignal,
  headers?: Record<string, string>,
) => Promise<DialResult>;
