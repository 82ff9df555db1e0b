//! The local testnet, in one place: the node homes and funded account nodes of `ezchain node
//! start|status|stop` ([`localnet`]), the one process launcher every local `ezchain` process
//! comes from ([`launcher`]), throwaway installations for the gates and the drill
//! ([`sandbox`]), and what is stopped on every exit path ([`cleanup`]).
//!
//! Used by the binary (`node start`, the wallet service's `/node/*` routes), by `ezchain-ops`
//! (the bench, the gates, the drill) and by the tests (`ezchain-testkit`).

pub mod cleanup;
pub mod launcher;
pub mod localnet;
pub mod sandbox;
