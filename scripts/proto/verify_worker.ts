/**
 * Worker for scripts/proto/verify_workers.ts: receives a batch of operations
 * in their JSON wire form, parses and verifies each (id + Ed25519 signature,
 * the library's own functions), and answers with one verdict byte per
 * operation (1 valid, 0 not), transferred, not copied.
 * @module
 */
/// <reference lib="deno.worker" />
import { SignatureVerifier } from "../../crdt/identity.ts";
import { parseOperation } from "../../crdt/operation.ts";
import { verifyOperation } from "../../crdt/signatures.ts";

const verifier = new SignatureVerifier();
self.onmessage = (event: MessageEvent<{ batch: number; ops: string[] }>) => {
  const verdicts = new Uint8Array(event.data.ops.length);
  event.data.ops.forEach((text, i) => {
    try {
      verdicts[i] = verifyOperation(parseOperation(JSON.parse(text)), verifier) ? 1 : 0;
    } catch {
      verdicts[i] = 0;
    }
  });
  self.postMessage({ batch: event.data.batch, verdicts }, [verdicts.buffer]);
};
