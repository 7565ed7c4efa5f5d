/**
 * Test kits for huskies-sync users and for the project's own tests: the store
 * conformance suite (run it against your own {@link Store}), an in-memory
 * channel pair and dialer (two nodes in one process, no sockets), and the
 * deterministic simulated network that runs real nodes on virtual time.
 * @module
 */
export * from "./testing/store_conformance.ts";
export { memoryChannelPair, memoryDialer } from "./testing/memory_channel.ts";
export { VirtualTimers } from "./testing/virtual_timers.ts";
export {
  canonicalClock,
  type DelayRange,
  DISK_ERROR,
  FlakyStore,
  LINK_DROPPED,
  type SimConnection,
  SimLink,
  SimNetwork,
  SimNode,
  type SimOptions,
  type UnexpectedClose,
} from "./testing/sim_network.ts";
export { mulberry32, Rng } from "./testing/sim_random.ts";

// The seams a test kit (or your own transport, clock or store) plugs into: the
// node takes them in `NodeOptions.dialer`, `NodeOptions.timers`,
// `HuskiesNode.accept` and `Store.append`; a replica fed by hand takes
// `Replica.receive`.
export type { Channel, ChannelReceiver, Dialer, DialResult } from "./sync/channel.ts";
export type { TimerHandle, Timers } from "./sync/timers.ts";
export type { AcceptOptions } from "./sync/node_options.ts";
export type { PendingLimits } from "./crdt/log.ts";
export type { ConnectionOutcome } from "./sync/connection.ts";
export type { AppendOptions, OwnHead } from "./crdt/store.ts";
export type { ReceiveOptions } from "./crdt/replica.ts";
export type { BatchResult, ReceiveStatus } from "./crdt/log.ts";
