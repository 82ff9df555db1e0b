//! Route paths. The constants are the server's route patterns (axum syntax); the functions
//! build a concrete path for a client. An address argument is anything displayable, so a test
//! can send a malformed one.

use ezchain_protocol::Address;
use std::fmt::Display;

pub const HEALTH: &str = "/health";
pub const READYZ: &str = "/readyz";
pub const METRICS: &str = "/metrics";
pub const STATUS: &str = "/status";
pub const SUBMIT: &str = "/v1/submit";
pub const SUBMIT_BATCH: &str = "/v1/submit/batch";
pub const BLOCK: &str = "/v1/blocks/{height}";
pub const HEADERS: &str = "/v1/headers";
pub const SUBSCRIBE: &str = "/v1/subscribe";
pub const RECEIPT: &str = "/v1/receipts/{address}/{seq}";
pub const MAILBOX: &str = "/v1/mailbox/{address}";
pub const MAILBOX_CHALLENGE: &str = "/v1/mailbox/{address}/challenge";
pub const MAILBOX_FETCH: &str = "/v1/mailbox/{address}/fetch";
pub const MAILBOX_ACK: &str = "/v1/mailbox/{address}/ack";
pub const FAUCET: &str = "/v1/faucet";
pub const GENESIS: &str = "/v1/genesis";
pub const ADMIN_EXPORT: &str = "/v1/admin/export";

/// Marks a `POST /v1/submit` made by another node's forwarder: such a bundle is never
/// forwarded again.
pub const FORWARDED_HEADER: &str = "x-ez-forwarded";

/// The header `POST /v1/admin/export` reads the admin token from.
pub const ADMIN_TOKEN_HEADER: &str = "x-ez-admin-token";

pub fn block(height: u64) -> String {
    format!("/v1/blocks/{height}")
}

/// Headers `from..=to` (or from `from` on when `to` is `None`).
pub fn headers(from: u64, to: Option<u64>) -> String {
    match to {
        Some(to) => format!("/v1/headers?from={from}&to={to}"),
        None => format!("/v1/headers?from={from}"),
    }
}

/// The event stream of finalized headers and of the receipts of `addresses`.
pub fn subscribe(addresses: &[Address]) -> String {
    let list: Vec<String> = addresses.iter().map(Address::to_string).collect();
    format!("/v1/subscribe?addresses={}", list.join(","))
}

pub fn receipt(owner: impl Display, seq: u64) -> String {
    format!("/v1/receipts/{owner}/{seq}")
}

pub fn mailbox(address: impl Display) -> String {
    format!("/v1/mailbox/{address}")
}

pub fn mailbox_challenge(address: impl Display) -> String {
    format!("/v1/mailbox/{address}/challenge")
}

pub fn mailbox_fetch(address: impl Display) -> String {
    format!("/v1/mailbox/{address}/fetch")
}

pub fn mailbox_ack(address: impl Display) -> String {
    format!("/v1/mailbox/{address}/ack")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A built path matches its route pattern segment by segment.
    fn matches(pattern: &str, path: &str) -> bool {
        let path = path.split('?').next().unwrap_or(path);
        let (a, b): (Vec<&str>, Vec<&str>) = (pattern.split('/').collect(), path.split('/').collect());
        a.len() == b.len() && a.iter().zip(&b).all(|(p, s)| p.starts_with('{') || p == s)
    }

    #[test]
    fn every_builder_fits_its_route() {
        let owner = Address([7; 20]);
        assert!(matches(BLOCK, &block(5)));
        assert!(matches(HEADERS, &headers(1, Some(9))));
        assert_eq!(headers(3, None), "/v1/headers?from=3");
        assert!(matches(SUBSCRIBE, &subscribe(&[owner, owner])));
        assert!(subscribe(&[owner, owner]).ends_with(&format!("{owner},{owner}")));
        assert!(matches(RECEIPT, &receipt(owner, 2)));
        assert!(matches(MAILBOX, &mailbox(owner)));
        assert!(matches(MAILBOX_CHALLENGE, &mailbox_challenge(owner)));
        assert!(matches(MAILBOX_FETCH, &mailbox_fetch(owner)));
        assert!(matches(MAILBOX_ACK, &mailbox_ack(owner)));
    }
}
