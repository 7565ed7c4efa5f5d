/**
 * Helpers for the CLI tests: run `huskies` as a subprocess the way a user
 * would, start and stop `huskies serve`, and wait for things with bounded
 * timeouts.
 * @module
 */

/** Absolute path of the CLI entry point. */
export const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** The permissions of `deno task start`, to prove they suffice. */
export const TASK_PERMISSIONS = ["--allow-read", "--allow-write", "--allow-net", "--allow-env"];

/** What a finished CLI run produced. */
export interface RunResult {
  /** Exit code. */
  code: number;
  /** Standard output. */
  stdout: string;
  /** Standard error. */
  stderr: string;
}

/** Options for {@link huskies}. */
export interface RunOptions {
  /** Working directory. */
  cwd?: string;
  /** Text written to standard input. */
  stdin?: string;
  /** Permission flags. @default ["-A"] */
  permissions?: string[];
  /** Kill the process after this long, ms. @default 30000 */
  timeoutMs?: number;
  /** The script to run instead of main.ts (e.g. a bundle). */
  script?: string;
}

const ENV = { NO_COLOR: "1" };

/** Runs `huskies <args>` to completion. */
export async function huskies(args: string[], options: RunOptions = {}): Promise<RunResult> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...(options.permissions ?? ["-A"]), options.script ?? MAIN, ...args],
    cwd: options.cwd,
    env: ENV,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  }, options.timeoutMs ?? 30_000);
  try {
    const output = await child.output();
    const decoder = new TextDecoder();
    return {
      code: output.code,
      stdout: decoder.decode(output.stdout),
      stderr: decoder.decode(output.stderr),
    };
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `probe` until it returns a value other than `undefined`, or fails after `timeoutMs`. */
export async function waitFor<T>(
  probe: () => T | undefined | Promise<T | undefined>,
  what: string,
  timeoutMs = 10_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  throw new Error(
    `Timed out after ${timeoutMs} ms waiting for ${what}${
      lastError ? ` (last error: ${(lastError as Error).message})` : ""
    }`,
  );
}

/** Collects a stream's text while letting callers wait for a pattern. */
class OutputCollector {
  text = "";
  readonly done: Promise<void>;
  #waiters: (() => void)[] = [];

  constructor(stream: ReadableStream<Uint8Array>) {
    this.done = (async () => {
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
        this.text += chunk;
        for (const wake of this.#waiters.splice(0)) wake();
      }
      for (const wake of this.#waiters.splice(0)) wake();
    })().catch(() => {});
  }

  /** Waits until `pattern` matches the text (or the stream ends, or time runs out). */
  async waitFor(
    pattern: RegExp,
    timeoutMs: number,
    ended: () => boolean,
  ): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = pattern.exec(this.text);
      if (match) return match;
      if (ended()) throw new Error(`process ended before printing ${pattern}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${pattern}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 200));
        this.#waiters.push(() => (clearTimeout(timer), resolve()));
      });
    }
  }
}

/** A running `huskies serve`. */
export class ServeProcess {
  /** The child process. */
  readonly child: Deno.ChildProcess;
  /** Node id printed on start. */
  nodeId = "";
  /** `ws://.../crdt-sync` printed on start. */
  syncUrl = "";
  /** `http://.../` printed on start. */
  statusUrl = "";
  readonly #stdout: OutputCollector;
  readonly #stderr: OutputCollector;
  #exit: Promise<Deno.CommandStatus>;
  #ended = false;

  private constructor(child: Deno.ChildProcess) {
    this.child = child;
    this.#stdout = new OutputCollector(child.stdout);
    this.#stderr = new OutputCollector(child.stderr);
    this.#exit = child.status.then((status) => {
      this.#ended = true;
      return status;
    });
  }

  /** Standard output so far. */
  get stdout(): string {
    return this.#stdout.text;
  }

  /** Standard error so far. */
  get stderr(): string {
    return this.#stderr.text;
  }

  /** Spawns `huskies serve <args>` without waiting for it to be ready. */
  static spawn(args: string[], options: RunOptions = {}): ServeProcess {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", ...(options.permissions ?? ["-A"]), options.script ?? MAIN, "serve", ...args],
      cwd: options.cwd,
      env: ENV,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    return new ServeProcess(child);
  }

  /** Starts `huskies serve <args>` and waits (bounded) until it printed its URLs. */
  static async start(args: string[], options: RunOptions = {}): Promise<ServeProcess> {
    const serve = ServeProcess.spawn(args, options);
    try {
      await serve.ready(options.timeoutMs ?? 20_000);
    } catch (error) {
      await serve.kill();
      throw new Error(`serve did not start: ${(error as Error).message}\n${serve.stderr}`);
    }
    return serve;
  }

  /** Waits until the start banner was printed and parses it. */
  async ready(timeoutMs: number): Promise<void> {
    const ended = () => this.#ended;
    this.nodeId = (await this.#stdout.waitFor(/node id\s+([0-9a-f]{64})/, timeoutMs, ended))[1];
    this.syncUrl =
      (await this.#stdout.waitFor(/sync\s+(ws:\/\/\S+\/crdt-sync)/, timeoutMs, ended))[1];
    this.statusUrl =
      (await this.#stdout.waitFor(/status page\s+(http:\/\/\S+\/)/, timeoutMs, ended))[1];
    // The banner's last line: everything before it has been printed.
    await this.#stdout.waitFor(/^Stop with Ctrl\+C\.$/m, timeoutMs, ended);
  }

  /** Waits until standard error matches `pattern`. */
  waitForStderr(pattern: RegExp, timeoutMs = 10_000): Promise<RegExpExecArray> {
    return this.#stderr.waitFor(pattern, timeoutMs, () => this.#ended);
  }

  /** Resolves with the exit status once the process ends. */
  get exited(): Promise<Deno.CommandStatus> {
    return this.#exit;
  }

  /** Sends `signal` and waits (bounded) for the exit; returns the exit code. */
  async stop(signal: Deno.Signal = "SIGINT", timeoutMs = 15_000): Promise<number> {
    if (!this.#ended) {
      try {
        this.child.kill(signal);
      } catch {
        // Already gone.
      }
    }
    const timer = setTimeout(() => this.#forceKill(), timeoutMs);
    try {
      const status = await this.#exit;
      await Promise.all([this.#stdout.done, this.#stderr.done]);
      return status.code;
    } finally {
      clearTimeout(timer);
    }
  }

  #forceKill(): void {
    try {
      this.child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  }

  /** Kills the process at once (for finally blocks); never throws. */
  async kill(): Promise<void> {
    if (!this.#ended) this.#forceKill();
    await this.#exit.catch(() => {});
    await Promise.all([this.#stdout.done, this.#stderr.done]);
  }
}

/** Makes a temp folder (remove it with {@link removeDir}). */
export async function tempDir(prefix = "huskies-cli-"): Promise<string> {
  return await Deno.makeTempDir({ prefix });
}

/** Removes a folder, ignoring errors. */
export async function removeDir(dir: string): Promise<void> {
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}
