//! EZchain operations tooling: the local testnet manager behind `ezchain node
//! start|status|stop` ([`localnet`]), the benchmark harness behind `ezchain bench`
//! ([`bench`]), the metrics probe behind `ezchain ops metrics-probe` ([`probe`]), and the
//! canary monitor and gate ([`canary`]).

pub mod bench;
pub mod canary;
pub mod html;
pub mod localnet;
pub mod probe;
