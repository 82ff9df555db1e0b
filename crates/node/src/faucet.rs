//! The faucet endpoint's node side: the hook a co-hosted faucet wallet plugs into, and the
//! per-address hourly limit the node enforces before asking it to pay.
//!
//! The node holds no user keys (DESIGN §2): paying is done by a faucet account node built on
//! the wallet crate, which the binary composes with the bootstrap node.

use async_trait::async_trait;
use ezchain_protocol::Address;
use std::collections::HashMap;
use std::sync::Mutex;

/// What a successful faucet payment did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FaucetGrant {
    pub amount: u64,
    /// Height of the finalized block carrying the payment.
    pub height: u64,
    pub bundle_hash: String,
    /// Transfer packages left in the recipient's mailbox.
    pub packages: usize,
}

/// Why the faucet did not pay: a stable code, an HTTP status, and what to do.
#[derive(Clone, Debug)]
pub struct FaucetRefusal {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// The payment went (or may still go) out: the amount stays counted against the address.
    pub charged: bool,
}

/// The faucet account node.
#[async_trait]
pub trait FaucetService: Send + Sync {
    async fn pay(&self, recipient: Address, amount: u64) -> Result<FaucetGrant, FaucetRefusal>;
    /// Writes an online copy of the faucet wallet's database to `target` (for backups); its
    /// size in bytes.
    async fn export_wallet(&self, target: std::path::PathBuf) -> Result<u64, crate::admin::ExportError>;
}

const HOUR_MS: u64 = 3_600_000;

/// Sliding one-hour window of granted amounts per address. In memory: a restart forgets it,
/// which at worst lets an address draw one more hour's allowance.
pub struct FaucetLimiter {
    max_per_request: u64,
    max_per_hour: u64,
    grants: Mutex<HashMap<Address, Vec<(u64, u64)>>>,
}

impl FaucetLimiter {
    pub fn new(max_per_request: u64, max_per_hour: u64) -> Self {
        FaucetLimiter {
            max_per_request,
            max_per_hour,
            grants: Mutex::new(HashMap::new()),
        }
    }

    /// Reserves `amount` for `recipient`, or says why not.
    pub fn reserve(&self, recipient: Address, amount: u64, now_ms: u64) -> Result<(), FaucetRefusal> {
        if amount == 0 || amount > self.max_per_request {
            return Err(FaucetRefusal {
                status: 400,
                code: "faucet_amount_invalid",
                message: format!("ask for 1 to {} per request", self.max_per_request),
                charged: false,
            });
        }
        let mut grants = self.grants.lock().unwrap_or_else(|p| p.into_inner());
        grants.retain(|_, list| {
            list.retain(|(at, _)| now_ms.saturating_sub(*at) < HOUR_MS);
            !list.is_empty()
        });
        let list = grants.entry(recipient).or_default();
        let used: u64 = list.iter().map(|(_, granted)| granted).sum();
        if used + amount > self.max_per_hour {
            let retry_s = list
                .first()
                .map_or(0, |(at, _)| (HOUR_MS - now_ms.saturating_sub(*at)) / 1000);
            return Err(FaucetRefusal {
                status: 429,
                code: "faucet_rate_limited",
                message: format!(
                    "{recipient} received {used} in the last hour (limit {}); retry in {retry_s} s",
                    self.max_per_hour
                ),
                charged: false,
            });
        }
        list.push((now_ms, amount));
        Ok(())
    }

    /// Gives back a reservation whose payment failed.
    pub fn release(&self, recipient: Address, amount: u64, reserved_at_ms: u64) {
        let mut grants = self.grants.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = grants.get_mut(&recipient)
            && let Some(index) = list.iter().position(|entry| *entry == (reserved_at_ms, amount))
        {
            list.remove(index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_request_and_hourly_caps() {
        let limiter = FaucetLimiter::new(100, 250);
        let alice = Address([1; 20]);
        assert_eq!(
            limiter.reserve(alice, 101, 0).unwrap_err().code,
            "faucet_amount_invalid"
        );
        assert_eq!(limiter.reserve(alice, 0, 0).unwrap_err().code, "faucet_amount_invalid");
        limiter.reserve(alice, 100, 0).expect("first");
        limiter.reserve(alice, 100, 1).expect("second");
        let refusal = limiter.reserve(alice, 100, 2).unwrap_err();
        assert_eq!((refusal.status, refusal.code), (429, "faucet_rate_limited"));
        limiter
            .reserve(Address([2; 20]), 100, 2)
            .expect("others have their own allowance");
        limiter.release(alice, 100, 1);
        limiter.reserve(alice, 100, 3).expect("a failed payment is given back");
        limiter
            .reserve(alice, 50, HOUR_MS)
            .expect("the first grant left the window");
    }
}
