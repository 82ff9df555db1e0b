//! The faucet endpoint's node side: the hook a co-hosted faucet wallet plugs into, and the
//! limits the node enforces before asking it to pay: per request, per address per hour, and for
//! the whole faucet per hour (addresses cost nothing, so only the last one bounds a drain).
//!
//! The node holds no user keys (DESIGN §2): paying is done by a faucet account node built on
//! the wallet crate, which the binary composes with the bootstrap node.

use async_trait::async_trait;
use ezchain_protocol::Address;
use ezchain_rpc::ErrorCode;
use ezchain_rpc::types::FaucetGrant;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Why the faucet did not pay: a stable code, an HTTP status, and what to do.
#[derive(Clone, Debug)]
pub struct FaucetRefusal {
    pub status: u16,
    pub code: ErrorCode,
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
    async fn export_wallet(&self, target: std::path::PathBuf) -> Result<u64, ezchain_host::export::ExportError>;
}

const HOUR_MS: u64 = 3_600_000;

/// The faucet's limits, in coins.
#[derive(Clone, Copy, Debug)]
pub struct FaucetLimits {
    pub per_request: u64,
    pub per_address_per_hour: u64,
    /// Everything paid in one hour, all addresses together.
    pub per_hour: u64,
}

/// Sliding one-hour window of granted amounts per address. With a file (the node's
/// `<data_dir>/faucet_grants.json`) the window survives a restart: it is rewritten atomically
/// after every change and read back at start.
pub struct FaucetLimiter {
    limits: FaucetLimits,
    grants: Mutex<HashMap<Address, Vec<(u64, u64)>>>,
    file: Option<PathBuf>,
}

/// The grants file: `[{"address", "at_ms", "amount"}]`.
fn read_grants(path: &Path) -> HashMap<Address, Vec<(u64, u64)>> {
    let mut grants: HashMap<Address, Vec<(u64, u64)>> = HashMap::new();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return grants,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the faucet grants; starting with none");
            return grants;
        }
    };
    let Ok(serde_json::Value::Array(entries)) = serde_json::from_str(&text) else {
        tracing::warn!(path = %path.display(), "the faucet grants file is not a JSON list; starting with none");
        return grants;
    };
    for entry in entries {
        let address = entry["address"].as_str().and_then(|a| a.parse::<Address>().ok());
        if let (Some(address), Some(at), Some(amount)) = (address, entry["at_ms"].as_u64(), entry["amount"].as_u64()) {
            grants.entry(address).or_default().push((at, amount));
        }
    }
    grants
}

fn write_grants(path: &Path, grants: &HashMap<Address, Vec<(u64, u64)>>) -> std::io::Result<()> {
    let entries: Vec<serde_json::Value> = grants
        .iter()
        .flat_map(|(address, list)| {
            list.iter()
                .map(move |(at, amount)| serde_json::json!({ "address": address.to_string(), "at_ms": at, "amount": amount }))
        })
        .collect();
    let temp = path.with_extension("tmp");
    {
        let mut file = std::fs::File::create(&temp)?;
        std::io::Write::write_all(&mut file, serde_json::Value::Array(entries).to_string().as_bytes())?;
        file.sync_all()?;
    }
    std::fs::rename(&temp, path)
}

impl FaucetLimiter {
    /// A limiter that keeps its window in memory only.
    pub fn new(limits: FaucetLimits) -> Self {
        FaucetLimiter {
            limits,
            grants: Mutex::new(HashMap::new()),
            file: None,
        }
    }

    /// A limiter whose window is kept in `path` (read now, rewritten after every change).
    pub fn with_file(limits: FaucetLimits, path: PathBuf) -> Self {
        FaucetLimiter {
            limits,
            grants: Mutex::new(read_grants(&path)),
            file: Some(path),
        }
    }

    fn persist(&self, grants: &HashMap<Address, Vec<(u64, u64)>>) {
        if let Some(path) = &self.file
            && let Err(e) = write_grants(path, grants)
        {
            // The limits still hold in memory; only a restart would forget them.
            tracing::warn!(path = %path.display(), error = %e, "cannot save the faucet grants");
        }
    }

    /// Reserves `amount` for `recipient`, or says why not.
    pub fn reserve(&self, recipient: Address, amount: u64, now_ms: u64) -> Result<(), FaucetRefusal> {
        if amount == 0 || amount > self.limits.per_request {
            return Err(FaucetRefusal {
                status: 400,
                code: ErrorCode::FaucetAmountInvalid,
                message: format!("ask for 1 to {} per request", self.limits.per_request),
                charged: false,
            });
        }
        let mut grants = self.grants.lock().unwrap_or_else(|p| p.into_inner());
        grants.retain(|_, list| {
            list.retain(|(at, _)| now_ms.saturating_sub(*at) < HOUR_MS);
            !list.is_empty()
        });
        let paid_this_hour: u64 = grants.values().flatten().map(|(_, granted)| granted).sum();
        if paid_this_hour + amount > self.limits.per_hour {
            let oldest = grants.values().flatten().map(|(at, _)| *at).min().unwrap_or(now_ms);
            let retry_s = (HOUR_MS - now_ms.saturating_sub(oldest)) / 1000;
            return Err(FaucetRefusal {
                status: 429,
                code: ErrorCode::FaucetHourlyLimit,
                message: format!(
                    "the faucet paid {paid_this_hour} to everyone in the last hour (testnet limit {}); retry in {retry_s} s",
                    self.limits.per_hour
                ),
                charged: false,
            });
        }
        let list = grants.entry(recipient).or_default();
        let used: u64 = list.iter().map(|(_, granted)| granted).sum();
        if used + amount > self.limits.per_address_per_hour {
            let retry_s = list
                .first()
                .map_or(0, |(at, _)| (HOUR_MS - now_ms.saturating_sub(*at)) / 1000);
            return Err(FaucetRefusal {
                status: 429,
                code: ErrorCode::FaucetRateLimited,
                message: format!(
                    "{recipient} received {used} in the last hour (limit {}); retry in {retry_s} s",
                    self.limits.per_address_per_hour
                ),
                charged: false,
            });
        }
        list.push((now_ms, amount));
        self.persist(&grants);
        Ok(())
    }

    /// Gives back a reservation whose payment failed.
    pub fn release(&self, recipient: Address, amount: u64, reserved_at_ms: u64) {
        let mut grants = self.grants.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = grants.get_mut(&recipient)
            && let Some(index) = list.iter().position(|entry| *entry == (reserved_at_ms, amount))
        {
            list.remove(index);
            self.persist(&grants);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_request: u64, per_address_per_hour: u64, per_hour: u64) -> FaucetLimits {
        FaucetLimits {
            per_request,
            per_address_per_hour,
            per_hour,
        }
    }

    #[test]
    fn fresh_addresses_cannot_drain_the_faucet_past_its_hourly_total() {
        let limiter = FaucetLimiter::new(limits(100, 100, 250));
        limiter.reserve(Address([1; 20]), 100, 0).expect("first address");
        limiter.reserve(Address([2; 20]), 100, 1).expect("second address");
        let refusal = limiter.reserve(Address([3; 20]), 100, 2).unwrap_err();
        assert_eq!((refusal.status, refusal.code), (429, ErrorCode::FaucetHourlyLimit));
        limiter
            .reserve(Address([3; 20]), 50, 2)
            .expect("what is left of the hour can still be paid");
        limiter.release(Address([1; 20]), 100, 0);
        limiter
            .reserve(Address([4; 20]), 100, 3)
            .expect("a failed payment gives its share back");
        limiter
            .reserve(Address([5; 20]), 100, HOUR_MS + 1)
            .expect("the window slides");
    }

    #[test]
    fn per_request_and_hourly_caps() {
        let limiter = FaucetLimiter::new(limits(100, 250, 10_000));
        let alice = Address([1; 20]);
        assert_eq!(
            limiter.reserve(alice, 101, 0).unwrap_err().code,
            ErrorCode::FaucetAmountInvalid
        );
        assert_eq!(
            limiter.reserve(alice, 0, 0).unwrap_err().code,
            ErrorCode::FaucetAmountInvalid
        );
        limiter.reserve(alice, 100, 0).expect("first");
        limiter.reserve(alice, 100, 1).expect("second");
        let refusal = limiter.reserve(alice, 100, 2).unwrap_err();
        assert_eq!((refusal.status, refusal.code), (429, ErrorCode::FaucetRateLimited));
        limiter
            .reserve(Address([2; 20]), 100, 2)
            .expect("others have their own allowance");
        limiter.release(alice, 100, 1);
        limiter.reserve(alice, 100, 3).expect("a failed payment is given back");
        limiter
            .reserve(alice, 50, HOUR_MS)
            .expect("the first grant left the window");
    }

    #[test]
    fn the_window_survives_a_restart_through_its_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("faucet_grants.json");
        let alice = Address([1; 20]);
        let limiter = FaucetLimiter::with_file(limits(100, 150, 10_000), path.clone());
        limiter.reserve(alice, 100, 10).expect("first");
        limiter.reserve(alice, 50, 11).expect("second");
        limiter.release(alice, 50, 11);
        drop(limiter);
        let restarted = FaucetLimiter::with_file(limits(100, 150, 10_000), path.clone());
        assert_eq!(
            restarted.reserve(alice, 100, 12).unwrap_err().code,
            ErrorCode::FaucetRateLimited,
            "the grant before the restart still counts"
        );
        restarted
            .reserve(alice, 50, 13)
            .expect("the released reservation does not count");
        std::fs::write(&path, "not json").expect("corrupt");
        FaucetLimiter::with_file(limits(100, 150, 10_000), path)
            .reserve(alice, 100, 14)
            .expect("a damaged file starts an empty window instead of stopping the node");
    }
}
