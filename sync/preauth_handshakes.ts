/**
 * The two ends of a connection authenticated before the WebSocket upgrade
 * (`auth/preauth.ts`, `PROTOCOL.md` §3.10), in the shape of the in-band
 * handshakes so {@link runConnection} drives every connection alike: the
 * accepting side only sends its signed `welcome`; the dialling side waits for
 * it and checks it.
 * @module
 */
import type { PreauthClient } from "../auth/preauth.ts";
import type { Step } from "../auth/proof.ts";
import { CloseCode } from "../protocol/close_codes.ts";
import type { Preauthenticated } from "./websocket.ts";

/** What `runConnection` needs of a handshake. */
export interface Handshake {
  /** The first step, run as soon as the channel is open. */
  start(): Step;
  /** Handles a text frame before the handshake is done. */
  receive(text: string): Step;
  /** Handles a binary frame before the handshake is done. */
  receiveBinary(): Step;
}

const BINARY_DURING_HANDSHAKE: Step = {
  close: { code: CloseCode.PROTOCOL_ERROR, reason: "protocol violation: binary frame" },
};

/** The accepting side of a pre-authenticated connection: the welcome, and done. */
export function welcomeHandshake(preauthenticated: Preauthenticated): Handshake {
  const { peer, scope, welcome } = preauthenticated;
  return {
    start: () => ({ send: welcome, done: { peer, scope } }),
    // Unreachable: the session takes every frame once `start` is done.
    receive: () => BINARY_DURING_HANDSHAKE,
    receiveBinary: () => BINARY_DURING_HANDSHAKE,
  };
}

/** The dialling side of a pre-authenticated connection: check the server's welcome. */
export function preauthClientHandshake(client: PreauthClient): Handshake {
  return {
    start: () => ({}),
    receive: (text) => client.receive(text),
    receiveBinary: () => BINARY_DURING_HANDSHAKE,
  };
}
