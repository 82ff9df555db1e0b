//! What every EZchain process (node, wallet, wallet service, operator tools) keeps on its host
//! and shares without pulling in the consensus engine: secret files and tokens ([`secret`]),
//! whole-file replacement ([`files`]), online exports of redb databases ([`export`]), the
//! genesis file ([`genesis_file`]) and the Prometheus text that `/metrics` answers
//! ([`exposition`]).

pub mod build;
pub mod export;
pub mod exposition;
pub mod files;
pub mod genesis_file;
pub mod secret;
