/**
 * What `huskies serve` prints when it has started: its addresses, and how
 * another node joins it. Pure.
 * @module
 */
import { SYNC_PATH } from "../sync/node.ts";
import { hostPort, type ListenAddress } from "./config.ts";
import { shellQuote } from "./format.ts";
import { isLoopback, redactUrl } from "./http/guard.ts";
import type { ServeSettings } from "./serve.ts";

/** True for the any-address hosts `0.0.0.0` and `::` (pure). */
export function isWildcard(hostname: string): boolean {
  return hostname === "0.0.0.0" || hostname === "::" || hostname === "[::]";
}

/** The address other local processes use to reach a listener bound to `hostname` (pure). */
export function localAddress(hostname: string): string {
  if (hostname === "0.0.0.0") return "127.0.0.1";
  if (hostname === "::" || hostname === "[::]") return "::1";
  return hostname;
}

/** The lines printed on start (pure). */
export function startBanner(options: {
  version: string;
  nodeId: string;
  dataDir: string;
  bound: ListenAddress;
  syncUrl: string;
  statusUrl: string;
  adminUrl: string;
  settings: ServeSettings;
}): string[] {
  const { settings, bound } = options;
  const loopbackOnly = isLoopback(bound.hostname) || bound.hostname === "localhost";
  const publicUrl = isWildcard(bound.hostname)
    ? `ws://<this host>:${bound.port}${SYNC_PATH}`
    : options.syncUrl;
  const dataDirArg = `--data-dir ${shellQuote(options.dataDir)}`;
  const lines = [
    `huskies ${options.version}: node running`,
    `  node id      ${options.nodeId}`,
    `  sync         ${options.syncUrl}`,
    `  status page  ${options.statusUrl}`,
    `  metrics      ${new URL("metrics", options.statusUrl)}`,
  ];
  if (isWildcard(bound.hostname)) {
    lines.push(`  listening    ${hostPort(bound.hostname, bound.port)} (every interface)`);
  }
  if (!options.adminUrl.startsWith(options.statusUrl)) {
    lines.push(`  admin API    ${options.adminUrl} (loopback only)`);
  }
  lines.push(
    `  data folder  ${options.dataDir}`,
    `  mesh         ${
      settings.open
        ? "OPEN: any node may connect and write"
        : "closed: only trusted keys and join tokens"
    }`,
  );
  for (const url of settings.rendezvous) {
    lines.push(
      `  rendezvous   ${redactUrl(url)}${
        settings.join ? ` (joining with token ${settings.join.id})` : ""
      }`,
    );
  }
  lines.push(
    "",
    "To let another node join this one:",
    `  1. here:            huskies token create ${dataDirArg}`,
  );
  if (loopbackOnly) {
    // The other node can only be on this machine: it needs its own folder and port.
    lines.push(
      `  2. on this machine: huskies serve --data-dir <another folder> --listen ${
        hostPort(bound.hostname, 0)
      } --rendezvous ${publicUrl} --join <token>`,
      `  (this node listens on loopback only; use --listen 0.0.0.0:${bound.port} to accept other hosts)`,
    );
  } else {
    lines.push(
      `  2. on the other:    huskies serve --rendezvous ${publicUrl} --join <token>`,
      `     (on this machine, also give it --data-dir <another folder> --listen 127.0.0.1:0)`,
    );
  }
  lines.push("Stop with Ctrl+C.");
  return lines;
}
