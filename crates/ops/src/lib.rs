//! EZchain operations tooling: the local testnet manager behind `ezchain node
//! start|status|stop` ([`localnet`]), the benchmark harness behind `ezchain bench`
//! ([`bench`]), and the metrics probe behind `ezchain ops metrics-probe` ([`probe`]).

pub mod bench;
pub mod localnet;
pub mod probe;
