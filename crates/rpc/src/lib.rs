//! The EZchain node's HTTP/JSON contract, spelled once: the route paths ([`paths`]), the request
//! and answer types ([`types`]) and the stable error codes ([`ErrorCode`]). The node's server
//! (`ezchain-node`'s `rpc` module) and every client — the wallet, the forwarder, the bench, the
//! backup tool, the testkit — use these, so a path, a field or a code cannot drift between them.
//!
//! Every answer is the envelope `{"ok": true, "data": …}` or `{"ok": false, "error": {"code",
//! "message"}}`. Protocol objects travel as hex of their canonical borsh encoding inside JSON, so
//! a client verifies exactly the bytes the chain hashed.

pub mod codes;
pub mod paths;
pub mod types;

pub use codes::ErrorCode;
