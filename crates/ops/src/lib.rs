//! EZchain operations tooling. Today: the local testnet manager behind
//! `ezchain node start|status|stop` ([`localnet`]).

pub mod localnet;
