/**
 * Node authentication for huskies-sync: the node identity on disk, trusted
 * keys with scopes, join tokens, the mutual-auth handshake (pure state
 * machines) and admission limits for unauthenticated connections.
 *
 * @example Authenticate a connecting node in memory
 * ```ts
 * import {
 *   AccessPolicy,
 *   ClientHandshake,
 *   makeAuthorizer,
 *   ServerHandshake,
 *   TrustStore,
 * } from "./mod.ts";
 * import { Identity } from "../crdt/identity.ts";
 * const hub = Identity.generate();
 * const node = Identity.generate();
 * const policy = new AccessPolicy(TrustStore.memory([node.nodeId]), { open: false });
 * const server = new ServerHandshake({ identity: hub, authorize: makeAuthorizer(policy) });
 * const client = new ClientHandshake({ identity: node, hubKey: hub.nodeId });
 * client.start();
 * const welcome = server.receive(client.receive(server.start().send!).send!);
 * console.log(welcome.done); // { peer: node.nodeId, scope: "write" }
 * ```
 * @module
 */
export { KEY_FILE_NAME, TOKEN_FILE_NAME, TRUST_FILE_NAME } from "../data_dir.ts";
export {
  createIdentityFile,
  type CreateIdentityOptions,
  importIdentity,
  type ImportIdentityOptions,
  KeyFileCorruptError,
  KeyFileError,
  KeyFileExistsError,
  KeyFileMissingError,
  keyFilePath,
  KeyFilePermissionError,
  loadOrCreateIdentity,
  readIdentity,
} from "./keystore.ts";
export {
  AccessPolicy,
  type AccessPolicyOptions,
  DataFileError,
  isScope,
  type MemberScopes,
  type Scope,
  type TrustChange,
  type TrustEntry,
  trustKeyProblem,
  TrustStore,
  type TrustStoreOptions,
  type TrustWatchOptions,
} from "./trust.ts";
export {
  type CreatedToken,
  type CreateTokenOptions,
  formatJoinToken,
  type JoinToken,
  parseJoinToken,
  parsePresentedToken,
  parseTtl,
  presentedToken,
  type RedeemFailure,
  type RedeemResult,
  type TokenInfo,
  TokenStore,
  type TokenStoreOptions,
} from "./tokens.ts";
export { type JoinerAdmitter, makeAuthorizer, TOKEN_REFUSED_REASONS } from "./authorize.ts";
export {
  AUTH_TIMEOUT_SECS,
  type AuthMessage,
  type Authorizer,
  type AuthorizeResult,
  type ChallengeMessage,
  ClientHandshake,
  type ClientHandshakeOptions,
  HANDSHAKE_TIMEOUT_CLOSE,
  type HandshakeClose,
  type HandshakeDone,
  type HandshakeRole,
  type HandshakeStatus,
  MAX_CLOSE_REASON_BYTES,
  MAX_HANDSHAKE_FRAME_BYTES,
  PROTOCOL_ID,
  ServerHandshake,
  type ServerHandshakeOptions,
  // Returned by the public handshake classes, so it stays public (deno doc --lint).
  type Step,
  type WelcomeMessage,
} from "./handshake.ts";
export {
  type Admission,
  AdmissionLimiter,
  type AdmissionLimiterOptions,
  type AdmissionRefusal,
  ATTEMPT_WINDOW_SECS,
} from "./limits.ts";
