//! EZchain operations tooling: the local testnet manager behind `ezchain node
//! start|status|stop` ([`localnet`]) and the benchmark harness behind `ezchain bench`
//! ([`bench`]).

pub mod bench;
pub mod localnet;
