import assert from "node:assert/strict";
import {
  checkRendezvousUrl,
  chooseLocation,
  configFileFor,
  parseListen,
  parseProjectConfig,
} from "../cli/config.ts";
import { CliError } from "../cli/errors.ts";
import { resolveServeSettings } from "../cli/serve.ts";
import { buildPatch } from "../cli/items.ts";
import { Identity } from "../crdt/identity.ts";

Deno.test("parseListen reads HOST:PORT and bracketed IPv6", () => {
  assert.deepEqual(parseListen("127.0.0.1:3001"), { hostname: "127.0.0.1", port: 3001 });
  assert.deepEqual(parseListen("0.0.0.0:0"), { hostname: "0.0.0.0", port: 0 });
  assert.deepEqual(parseListen("[::1]:8080"), { hostname: "::1", port: 8080 });
  assert.deepEqual(parseListen("hub.local:3001"), { hostname: "hub.local", port: 3001 });
  for (const bad of ["3001", "host:", ":3001", "::1:3001", "host:65536", "host:port", "a b:1"]) {
    assert.throws(() => parseListen(bad), TypeError, bad);
  }
});

Deno.test("checkRendezvousUrl accepts ws:// and wss:// only", () => {
  assert.equal(checkRendezvousUrl(" ws://hub:3001/crdt-sync "), "ws://hub:3001/crdt-sync");
  assert.equal(checkRendezvousUrl("wss://hub/crdt-sync"), "wss://hub/crdt-sync");
  assert.throws(
    () => checkRendezvousUrl("https://hub/crdt-sync"),
    /must start with ws:\/\/ or wss:\/\//,
  );
  assert.throws(() => checkRendezvousUrl("hub:3001"), /must start with ws:\/\//);
  assert.throws(() => checkRendezvousUrl("nonsense"), /it is not a URL/);
});

Deno.test("parseProjectConfig reads every key and resolves data_dir against the file", () => {
  const key = Identity.generate().nodeId;
  const config = parseProjectConfig(
    [
      'listen = "0.0.0.0:3001"',
      'rendezvous = "ws://hub:3001/crdt-sync"',
      `trusted_keys = ["${key}"]`,
      'data_dir = "data"',
      "open = false",
      "public_status = true",
    ].join("\n"),
    "/etc/huskies/project.toml",
  );
  assert.deepEqual(config, {
    listen: { hostname: "0.0.0.0", port: 3001 },
    rendezvous: ["ws://hub:3001/crdt-sync"],
    trustedKeys: [key],
    dataDir: "/etc/huskies/data",
    open: false,
    publicStatus: true,
  });
  assert.deepEqual(
    parseProjectConfig('rendezvous = ["ws://a/x", "wss://b/y"]', "p.toml").rendezvous,
    [
      "ws://a/x",
      "wss://b/y",
    ],
  );
  assert.equal(parseProjectConfig('data_dir = "/abs"', "p.toml").dataDir, "/abs");
  assert.deepEqual(parseProjectConfig("", "p.toml"), {});
});

Deno.test("parseProjectConfig errors name the file and the key, with exit code 7", () => {
  const cases: [string, RegExp][] = [
    ["listen = ", /it is not valid TOML/],
    ["port = 3001", /unknown key "port"/],
    ["[server]\nlisten = 1", /unknown key "server"/],
    ["listen = 3001", /key "listen" must be a string "HOST:PORT", got 3001/],
    ['listen = "nope"', /key "listen": .*expected HOST:PORT/],
    ['rendezvous = ["http://a"]', /key "rendezvous": .*ws:\/\//],
    ["rendezvous = 1", /key "rendezvous" must be a ws:\/\/ URL or an array/],
    ['trusted_keys = "abc"', /key "trusted_keys" must be an array/],
    ['trusted_keys = ["abc"]', /key "trusted_keys" entry 0: key must be 64 lowercase hex/],
    ['open = "yes"', /key "open" must be true or false/],
    ['data_dir = ""', /key "data_dir" must be a non-empty path/],
  ];
  for (const [text, pattern] of cases) {
    assert.throws(() => parseProjectConfig(text, "/x/project.toml"), (error: unknown) => {
      assert.ok(error instanceof CliError, text);
      assert.equal(error.exitCode, 7);
      assert.match(error.message, /^Cannot read config file \/x\/project\.toml: /);
      assert.match(error.message, pattern, text);
      return true;
    });
  }
});

Deno.test("the data folder comes from --data-dir, else data_dir, else ./.huskies", () => {
  assert.deepEqual(configFileFor({}), { file: ".huskies/project.toml", required: false });
  assert.deepEqual(configFileFor({ dataDir: "d" }), { file: "d/project.toml", required: false });
  assert.deepEqual(configFileFor({ config: "c.toml" }), { file: "c.toml", required: true });
  assert.equal(chooseLocation({}, undefined).dataDir, "./.huskies");
  assert.equal(chooseLocation({}, { dataDir: "/srv/h" }).dataDir, "/srv/h");
  assert.equal(chooseLocation({ dataDir: "flag" }, { dataDir: "/srv/h" }).dataDir, "flag");
});

Deno.test("serve settings: flags win over the file, which wins over defaults", () => {
  const none = resolveServeSettings({ values: {}, positionals: [] }, {});
  assert.deepEqual(none, {
    listen: { hostname: "127.0.0.1", port: 3001 },
    rendezvous: [],
    join: undefined,
    trustedKeys: [],
    open: false,
    allowInBandHandshake: false,
    publicStatus: false,
    publicHosts: [],
    publicMetrics: false,
    admission: {},
    acceptLostHistory: false,
    logJson: false,
    logLevel: "info",
  });
  const file = {
    listen: { hostname: "0.0.0.0", port: 4000 },
    rendezvous: ["ws://file/x"],
    open: true,
  };
  const fromFile = resolveServeSettings({ values: {}, positionals: [] }, file);
  assert.deepEqual([fromFile.listen.port, fromFile.rendezvous, fromFile.open], [4000, [
    "ws://file/x",
  ], true]);
  const flags = resolveServeSettings(
    {
      values: { listen: "127.0.0.1:0", rendezvous: ["ws://flag/x"], "log-level": "debug" },
      positionals: [],
    },
    file,
  );
  assert.deepEqual([flags.listen.port, flags.rendezvous, flags.logLevel], [
    0,
    ["ws://flag/x"],
    "debug",
  ]);
  assert.throws(
    () => resolveServeSettings({ values: { join: "hjt1.x" }, positionals: [] }, {}),
    /Cannot parse join token/,
  );
});

Deno.test("buildPatch turns item put flags into a typed patch", () => {
  const patch = buildPatch({
    values: {
      stage: "qa",
      name: "N",
      agent: "",
      "retry-count": "3",
      blocked: "true",
      frozen: "false",
      "depends-on": "A, B,,C",
    },
    positionals: ["S"],
  });
  assert.deepEqual(patch, {
    stage: "qa",
    name: "N",
    agent: null,
    retryCount: 3,
    blocked: true,
    frozen: false,
    dependsOn: ["A", "B", "C"],
  });
  assert.deepEqual(buildPatch({ values: { "depends-on": "" }, positionals: [] }), {
    dependsOn: [],
  });
  assert.throws(
    () => buildPatch({ values: { "retry-count": "1.5" }, positionals: [] }),
    /whole number/,
  );
  assert.throws(() => buildPatch({ values: { frozen: "TRUE" }, positionals: [] }), /true or false/);
});
