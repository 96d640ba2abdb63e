/**
 * Version of the wire protocol in `proto/cbntrain/v1/cbntrain.proto`. The coordinator rejects a worker
 * whose version differs, so raise it with every change that old peers would misread: a renumbered field, a
 * changed payload layout or a changed meaning.
 */
export const PROTOCOL_VERSION = 1;
