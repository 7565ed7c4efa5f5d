/**
 * Small helpers for HTTP responses and request bodies.
 * @module
 */

const JSON_HEADERS = {
  "content-type": "application/json; charset=utf-8",
  "cache-control": "no-store",
};

/** A JSON response. */
export function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body) + "\n", { status, headers: JSON_HEADERS });
}

/**
 * An error response: `{"error": "<message>"}`, plus `details` (for example
 * `code` and `retryable`) when given.
 */
export function failure(
  status: number,
  message: string,
  headers: HeadersInit = {},
  details: Record<string, unknown> = {},
): Response {
  return new Response(JSON.stringify({ error: message, ...details }) + "\n", {
    status,
    headers: { ...JSON_HEADERS, ...headers },
  });
}

/** Reads a request body as text; `undefined` when it is longer than `limit` bytes. */
export async function readLimited(request: Request, limit: number): Promise<string | undefined> {
  if (!request.body) return "";
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel().catch(() => {});
      return undefined;
    }
    chunks.push(value);
  }
  const all = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) (all.set(chunk, offset), offset += chunk.byteLength);
  return new TextDecoder().decode(all);
}
