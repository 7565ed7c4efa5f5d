import assert from "node:assert/strict";
import * as auth from "../auth/mod.ts";
import * as huskies from "../mod.ts";

const authDir = new URL("../auth/", import.meta.url);

/** The module specifiers a source file imports (static imports and re-exports). */
function importsOf(source: string): string[] {
  return [...source.matchAll(/(?:import|export)\s[^;]*?from\s+"([^"]+)"/g)].map((m) => m[1]);
}

Deno.test("auth/ imports nothing from sync/ or cli/", () => {
  for (const entry of Deno.readDirSync(authDir)) {
    if (!entry.name.endsWith(".ts")) continue;
    const source = Deno.readTextFileSync(new URL(entry.name, authDir));
    for (const specifier of importsOf(source)) {
      assert.ok(
        !/(^|\/)(sync|cli)\//.test(specifier),
        `auth/${entry.name} imports ${specifier}`,
      );
    }
  }
});

Deno.test("the handshake module is pure: no file I/O and no authoriser with side effects", () => {
  const source = Deno.readTextFileSync(new URL("handshake.ts", authDir));
  assert.ok(!/\bDeno\.|node:fs/.test(source), "handshake.ts touches the file system");
  assert.ok(!/export function makeAuthorizer/.test(source));
  assert.equal(typeof auth.makeAuthorizer, "function");
});

Deno.test("the public API hides handshake internals and has one unit for timeouts", () => {
  const internals = [
    "transcript",
    "TRANSCRIPT_DOMAIN",
    "clampCloseReason",
    "handshakeDeadline",
    "addressKey",
    "AUTH_TIMEOUT_MS",
    "ATTEMPT_WINDOW_MS",
  ];
  for (const name of internals) {
    assert.ok(!(name in huskies), `mod.ts exports ${name}`);
    assert.ok(!(name in auth), `auth/mod.ts exports ${name}`);
  }
  assert.equal(huskies.AUTH_TIMEOUT_SECS, 10);
  assert.equal(auth.ATTEMPT_WINDOW_SECS, 60);
});
