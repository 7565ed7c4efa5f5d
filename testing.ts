/**
 * Test kits for implementations of the library's interfaces: the store
 * conformance suite (run it against your own {@link Store}) and helpers that
 * build real signed operations.
 * @module
 */
export * from "./testing/store_conformance.ts";
