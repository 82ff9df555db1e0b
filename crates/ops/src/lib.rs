//! EZchain operations tooling: the local testnet manager behind `ezchain node
//! start|status|stop` ([`localnet`]), the benchmark harness behind `ezchain bench`
//! ([`bench`]), the metrics probe behind `ezchain ops metrics-probe` ([`probe`]), and the
//! canary monitor and gate ([`canary`]), the security gate ([`security`]), and snapshots and
//! their restore ([`backup`]).

pub mod backup;
pub mod bench;
pub mod canary;
pub mod cleanup;
pub mod drill;
pub mod gates;
pub mod html;
pub mod localnet;
pub mod probe;
pub mod sandbox;
pub mod security;
