//! EZchain operations tooling, what an operator runs against an installation: the benchmark
//! harness behind `ezchain bench` ([`bench`], and its in-process witness scenarios,
//! [`witness_bench`]), the metrics probe behind `ezchain ops
//! metrics-probe` ([`probe`]), the canary monitor and gate ([`canary`]), the security gate
//! ([`security`]), snapshots and their restore ([`backup`]), the release and stability gates
//! ([`gates`]) and the runbook drill ([`drill`]). The local testnet they start is
//! `ezchain-devnet`'s.

pub mod backup;
pub mod bench;
pub mod canary;
pub mod drill;
pub mod gates;
pub mod html;
pub mod probe;
pub mod security;
pub mod witness_bench;
