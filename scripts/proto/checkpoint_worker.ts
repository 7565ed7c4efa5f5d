/**
 * A worker for scripts/proto/tail_hub.ts's `TAIL_CHECKPOINT_WORKER` experiment:
 * its own connection to the hub's store runs `PRAGMA wal_checkpoint(PASSIVE)`
 * every `everyMs`, so the checkpoint's writes and fsyncs happen on this
 * thread, not the hub's event loop. Posts each checkpoint's duration.
 * @module
 */
import { DatabaseSync } from "node:sqlite";

self.onmessage = (event: MessageEvent<{ path: string; everyMs: number }>) => {
  const { path, everyMs } = event.data;
  const db = new DatabaseSync(path, { timeout: 1000 });
  db.exec("PRAGMA synchronous=NORMAL");
  const checkpoint = db.prepare("PRAGMA wal_checkpoint(PASSIVE)");
  setInterval(() => {
    const start = performance.now();
    const row = checkpoint.get() as Record<string, number>;
    self.postMessage({ ms: performance.now() - start, ...row });
  }, everyMs);
};
