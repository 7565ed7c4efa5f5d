/**
 * Transport cases (PROTOCOL.md §1).
 * @module
 */

import type { Case } from "../case.ts";
import { expect } from "../check.ts";
import { rawGet, upgradeHeaders } from "../wire/http.ts";

/** The transport cases. */
export const transportCases: Case[] = [
  {
    id: "transport.plain-get",
    title: "§1 a request to the sync path without a WebSocket upgrade gets HTTP 426",
    async run(ctx) {
      const url = ctx.requireUrl().replace(/^ws/, "http");
      const response = await fetch(url, { signal: AbortSignal.timeout(ctx.timeoutMs) });
      await response.body?.cancel();
      expect(response.status === 426, "HTTP 426", `HTTP ${response.status}`);
    },
  },
  {
    id: "transport.bad-upgrade",
    title: "§1 a malformed WebSocket upgrade (no Sec-WebSocket-Key) gets HTTP 400",
    async run(ctx) {
      const headers: Record<string, string> = upgradeHeaders();
      delete headers["Sec-WebSocket-Key"];
      ctx.connections++;
      const response = await rawGet(ctx.requireUrl(), headers, ctx.timeoutMs);
      expect(response.status === 400, "HTTP 400", `HTTP ${response.status}`);
    },
  },
];

/** The admission limit case: run last, it locks the suite out for a minute. */
export const admissionCases: Case[] = [
  {
    id: "transport.admission-limit",
    title:
      "§3.7 (--slow, last) over 30 handshakes a minute from one address get HTTP 429 + Retry-After",
    async run(ctx) {
      if (!ctx.slow) ctx.skipSlow("it locks the suite out of the peer for a minute");
      let refused: { status: number; retryAfter?: string } | undefined;
      for (let attempt = 0; attempt < 31 && !refused; attempt++) {
        ctx.connections++;
        const response = await rawGet(ctx.requireUrl(), upgradeHeaders(), ctx.timeoutMs);
        if (response.status !== 101) {
          refused = { status: response.status, retryAfter: response.headers.get("retry-after") };
        }
      }
      expect(refused, "a refusal within 31 upgrade attempts in one minute", "none");
      expect(
        refused!.status === 429 && /^\d+$/.test(refused!.retryAfter ?? ""),
        "HTTP 429 with Retry-After (§1, §3.7)",
        `HTTP ${refused!.status}, Retry-After ${refused!.retryAfter}`,
      );
    },
  },
];
