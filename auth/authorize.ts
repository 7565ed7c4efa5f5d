/**
 * The standard {@link Authorizer}: trust list first, then join tokens. Unlike
 * the pure handshake it has side effects: redeeming a token consumes a use in
 * the token store and adds the key to the trust store (both may write files).
 *
 * @example Trust a key, then authorise it
 * ```ts
 * import assert from "node:assert/strict";
 * import { makeAuthorizer } from "./authorize.ts";
 * import { AccessPolicy, TrustStore } from "./trust.ts";
 * import { Identity } from "../crdt/identity.ts";
 * const key = Identity.generate().nodeId;
 * const authorize = makeAuthorizer(new AccessPolicy(TrustStore.memory([key]), { open: false }));
 * assert.deepEqual(authorize(key, undefined), { ok: true, scope: "write" });
 * ```
 * @module
 */
import { CloseCode } from "../protocol/close_codes.ts";
import { type Authorizer, NOT_TRUSTED_REASON, TOKEN_REFUSED_REASONS } from "./proof.ts";
import { parsePresentedToken, type RedeemResult, type TokenStore } from "./tokens.ts";

export { TOKEN_REFUSED_REASONS } from "./proof.ts";
import type { AccessPolicy, Scope, TrustStore } from "./trust.ts";

/**
 * Admits a key that redeemed a join token, with the token's scope: by default
 * it is added to the trust list; in a mesh, an admin signs a grant instead.
 */
export type JoinerAdmitter = (key: string, scope: Scope, label: string) => void;

/**
 * The standard authoriser: a key the policy admits connects with its scope;
 * otherwise a presented token is redeemed and, when valid, the key is
 * admitted with the token's scope by `admitJoiner` (by default trusted in
 * `trust`, the policy's store) so later connections need no token. Refusals: 4405 with
 * the token's reason, or 4403 "key not trusted" when no token was presented.
 */
export function makeAuthorizer(
  policy: AccessPolicy,
  tokens?: TokenStore,
  trust: TrustStore = policy.trust,
  admitJoiner: JoinerAdmitter = (key, scope, label) => trust.add(key, scope, label),
): Authorizer {
  return (peerKey, token) => {
    const scope = policy.connectScope(peerKey);
    if (scope !== undefined) return { ok: true, scope };
    if (token === undefined) {
      return { ok: false, code: CloseCode.NOT_TRUSTED, reason: NOT_TRUSTED_REASON };
    }
    // Without a token store no token can be valid; still tell malformed from unknown.
    const result: RedeemResult = tokens
      ? tokens.redeem(token)
      : { ok: false, reason: parsePresentedToken(token) ? "unknown" : "malformed" };
    if (!result.ok) {
      return {
        ok: false,
        code: CloseCode.TOKEN_REFUSED,
        reason: TOKEN_REFUSED_REASONS[result.reason],
      };
    }
    const id = token.slice(0, 16);
    // The token's label names the joiner (e.g. its host); else the token's id.
    const label = tokens?.list().find((t) => t.id === id)?.label;
    admitJoiner(peerKey, result.scope, label || `joined with token ${id}`);
    return { ok: true, scope: result.scope };
  };
}
