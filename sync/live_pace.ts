/**
 * Live pacing: how long a node's sessions wait after a live send before the
 * next, from how many sessions the node runs. Each live frame costs the
 * sender a socket write (and, on loopback, the kernel's delivery) whatever
 * it holds, so a hub that sends every operation to hundreds of peers the
 * moment it arrives spends its core on writes. With a pace, each session
 * sends at most once per pace and what arrives meanwhile shares one frame:
 * the node's live frames stay under about {@link SESSIONS_PER_PACE_MS} × 1000
 * a second however fast operations come. An operation that arrives a pace or
 * more after the session's last send still goes out at once, so a quiet
 * stream gains no latency; a dense one waits at most the pace.
 *
 * The pace is a function of the session count rather than a measurement.
 * Measured on this project's 2-core machine, a pace set from the process's
 * CPU also paced a writer's one session (its process busy with other work)
 * and stuck at its longest; one set from the frames sent fell during the
 * burst it was for, since a node too busy to keep up sends few frames. There (`scripts/compare_yjs.ts`, one writer at 1000 updates/s),
 * 100k live frames a second took 85 % of the hub's core; at 300 subscribers
 * a pace of 0 kept it at 95 % with a p99 of 180-340 ms, 8 ms brought it to
 * 52 % and 27 ms; at 100, 2 ms halved it (85 to 41 %).
 * @module
 */

/** Sessions per millisecond of pace. */
export const SESSIONS_PER_PACE_MS = 40;
/** The longest pace, ms: the most a live operation waits for the frame it shares. */
export const PACE_MAX_MS = 8;

/**
 * The live pace of a node running `sessions` sessions, ms: one per
 * {@link SESSIONS_PER_PACE_MS} sessions (0 below that: every operation goes
 * out at once), at most {@link PACE_MAX_MS}.
 */
export function livePaceMs(sessions: number): number {
  return Math.min(PACE_MAX_MS, Math.floor(sessions / SESSIONS_PER_PACE_MS));
}
