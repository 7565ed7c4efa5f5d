/**
 * The replica's saved state: the materialised document as it stood when the
 * store held its first `upTo` rows, so that start-up applies only the rows
 * stored after it instead of every operation. Pure: the store keeps the text.
 *
 * The text is a header line, JSON `{"v":1,"rows":N,"forks":[...],"mesh":...}`, then
 * the document snapshot (`CrdtDocument#toSnapshot`). A saved state is used
 * only when it still describes those rows: the same fork points (they decide
 * which rows are quarantined) and the same mesh, every row it covers still
 * stored, and, in a mesh, no membership operation stored after it (one could
 * change the verdict of an earlier row). Otherwise, or when the text does
 * not decode, the replica rebuilds the document from every operation, as
 * without a saved state.
 * @module
 */
import { CrdtDocument } from "./document.ts";
import type { OpLog } from "./log.ts";
import { hasValidId, type Operation, type OpId } from "./operation.ts";
import type { GatedDocument } from "./replica_members.ts";
import { ReplayError } from "./replica_types.ts";
import type { ForkProof, Store } from "./store.ts";
import { StoredOperation } from "./stored_operation.ts";

/** What a saved state must agree with to be used. */
export interface StateContext {
  /** The fork proofs known. */
  forks: readonly ForkProof[];
  /** The mesh, if the replica is in one. */
  mesh: OpId | undefined;
}

/** A document restored from a saved state, and the applied operations stored after it. */
export interface RestoredState {
  /** The saved document. */
  document: CrdtDocument;
  /** Applied operations in rows after the saved state's, in apply order. */
  after: Operation[];
}

const VERSION = 1;

function forkPoints(forks: readonly ForkProof[]): string[] {
  return forks.map((proof) => `${proof.author}:${proof.seq}`).sort();
}

/** The text of a saved state for `document` in `context`, when the store holds `rows` rows. */
export function encodeReplicaState(
  document: CrdtDocument,
  context: StateContext,
  rows: number,
): string {
  const header = { v: VERSION, rows, forks: forkPoints(context.forks), mesh: context.mesh ?? null };
  return `${JSON.stringify(header)}\n${document.toSnapshot()}`;
}

/**
 * The saved document and the operations to apply on top of it, when `saved`
 * describes the store the log was loaded from; `undefined` when it does not
 * (see the module doc). `held` is every operation the log holds (applied or
 * quarantined), `applied` the applied ones in apply order: all loaded from
 * the store, so each is a {@link StoredOperation}.
 */
export function restoreReplicaState(
  saved: { upTo: number; body: string } | null,
  context: StateContext,
  held: readonly Operation[],
  applied: readonly Operation[],
): RestoredState | undefined {
  if (saved === null) return undefined;
  const newline = saved.body.indexOf("\n");
  if (newline < 0) return undefined;
  let header: { v?: unknown; rows?: unknown; forks?: unknown; mesh?: unknown };
  try {
    header = JSON.parse(saved.body.slice(0, newline));
  } catch {
    return undefined;
  }
  if (
    header.v !== VERSION || (header.mesh ?? undefined) !== context.mesh ||
    JSON.stringify(header.forks) !== JSON.stringify(forkPoints(context.forks))
  ) return undefined;
  let covered = 0;
  for (const op of held) {
    if (!(op instanceof StoredOperation)) return undefined;
    if (op.row <= saved.upTo) covered++;
    else if (context.mesh !== undefined && op.members) return undefined;
  }
  if (covered !== header.rows) return undefined; // rows it covers are gone (or were added)
  let document: CrdtDocument;
  try {
    document = CrdtDocument.fromSnapshot(saved.body.slice(newline + 1));
  } catch {
    return undefined;
  }
  const after = applied.filter((op) => (op as StoredOperation).row > saved.upTo);
  return { document, after };
}

/**
 * Loads `store` into the empty `log`: light references from a store on disk
 * (whose ids the store checks later, {@link Store.checkRows}), otherwise every
 * operation with its id recomputed. Returns the saved document and what to
 * apply on top of it, when the store has a saved state that still holds.
 *
 * @throws {ReplayError} a stored operation does not match its id, or (without
 * a fork) does not place: the store is corrupt or was altered.
 */
export function loadStore(
  store: Store,
  log: OpLog,
  mesh: OpId | undefined,
): RestoredState | undefined {
  const lazy = store.loadLazy !== undefined;
  const ops: Operation[] = [];
  for (const op of lazy ? store.loadLazy!() : store.load()) {
    if (!lazy && !hasValidId(op)) {
      throw new ReplayError(
        `Cannot open replica: stored operation #${
          ops.length + 1
        } (${op.id}) does not match its id; the store is corrupt or was altered`,
      );
    }
    ops.push(op);
  }
  const unplaced = log.load(ops, store.loadForks());
  // Without a fork, every stored operation must place: anything else is a damaged store. With
  // one, an operation may wait for a lower fork proof that peers send again (see OpLog.load).
  if (unplaced.length > 0 && log.forks().length === 0) {
    const [first] = unplaced;
    throw new ReplayError(
      `Cannot open replica: stored operation #${
        first.index + 1
      } is out of order (Cannot apply operation ${first.op.id}: ${first.reason})`,
    );
  }
  if (!lazy || unplaced.length > 0) return undefined;
  const saved = store.loadState?.() ?? null;
  return restoreReplicaState(saved, { forks: log.forks(), mesh }, log.held(), log.all());
}

/** Operations stored after which `Replica.saveStateIfDue` saves the document. */
export const SAVE_STATE_EVERY = 100_000;
/** Operations stored after which a receive or commit saves it itself (never asked, or never quiet). */
export const SAVE_STATE_AT_MOST = 1_000_000;

/**
 * Counts what was stored since the document was last saved, and saves it
 * with the store when enough is (a failed save only costs start-up time: the
 * next open applies more operations).
 */
export class StateSaver {
  /** Operations stored (and other changes) since the last save. */
  unsaved = 0;

  /** Saves to `store` the document of `gated`, with `log`'s fork proofs and the mesh. */
  constructor(
    readonly store: Store,
    readonly gated: Pick<GatedDocument, "document" | "members">,
    readonly log: Pick<OpLog, "forks">,
  ) {}

  /** Adds `stored` to what is unsaved, then saves if at least `due` is. */
  add(stored: number, due: number): void {
    this.unsaved += stored;
    if (this.unsaved < due || this.store.saveState === undefined) return;
    const context = { forks: this.log.forks(), mesh: this.gated.members?.mesh };
    try {
      this.store.saveState(encodeReplicaState(this.gated.document, context, this.store.count()));
      this.unsaved = 0;
    } catch {
      // Kept unsaved: the next due save tries again.
    }
  }
}
