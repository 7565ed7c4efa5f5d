/**
 * Transport cases (PROTOCOL.md §1).
 * @module
 */

import type { Case } from "../case.ts";
import { expect } from "../check.ts";

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
];
