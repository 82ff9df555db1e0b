//! The API token: 32 random bytes (hex) in a 0600 file, compared in constant time. The same
//! token files as the node's admin token (`ezchain_node::admin`).

pub use ezchain_node::admin::{ensure_token, read_token, rotate_token, token_matches};
