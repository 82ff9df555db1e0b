//! The wallet's history records and their human-readable export, `<data_dir>/tx_history.json`.

use ezchain_protocol::{Address, Hash32, ValueRange};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxKind {
    Send,
    Receive,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxStatus {
    /// Signed and stored; not yet accepted by a node.
    Signed,
    /// Accepted by a node's mempool; waiting for finality.
    Submitted,
    /// In a finalized block; packages not all delivered yet.
    Finalized,
    /// Finalized and every package delivered to the recipient (or its mailbox).
    Delivered,
    /// Never included (refused or expired); its values are spendable again.
    Failed,
    /// An incoming value that passed verification.
    Accepted,
    /// An incoming package that failed verification; never counted.
    Rejected,
}

/// One send or one incoming package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxRecord {
    pub id: u64,
    pub kind: TxKind,
    pub status: TxStatus,
    /// Sender for receives, recipient for sends.
    pub counterparty: Address,
    pub amount: u64,
    pub ranges: Vec<ValueRange>,
    /// Hash of the bundle that carried it.
    pub bundle_hash: Option<Hash32>,
    /// The payer's bundle sequence number (with `bundle_hash`: the payment's id on both sides).
    pub seq: Option<u64>,
    pub client_tx_id: Option<String>,
    pub height: Option<u64>,
    pub created_at_ms: u64,
    pub finalized_at_ms: Option<u64>,
    /// Transfer packages of a send; the package of a receive.
    pub package_ids: Vec<Hash32>,
    /// Why a send failed or a package was rejected.
    pub reason: Option<String>,
}

impl TxRecord {
    /// The payment's id, the same on both sides: `0x<bundle hash>:<seq>` of the payer's bundle
    /// (a received value names the bundle that paid it); the package id for a receive recorded
    /// without it (a rejection, or a record older than this).
    pub fn tx_ref(&self) -> String {
        match (self.bundle_hash, self.seq) {
            (Some(hash), Some(seq)) => format!("{hash}:{seq}"),
            _ => self
                .package_ids
                .first()
                .map_or_else(|| format!("#{}", self.id), |id| id.to_string()),
        }
    }

    /// The record as shown to users: its fields plus `tx_ref` and `confirmation_delay_ms`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        value["tx_ref"] = serde_json::json!(self.tx_ref());
        value["confirmation_delay_ms"] = serde_json::json!(self.confirmation_delay_ms());
        value
    }

    /// Time from signing to finality.
    pub fn confirmation_delay_ms(&self) -> Option<u64> {
        self.finalized_at_ms.map(|at| at.saturating_sub(self.created_at_ms))
    }
}

/// `ms` since the epoch as RFC 3339 in UTC, to the second (`2026-12-02T02:55:38Z`).
pub fn rfc3339(ms: u64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp((ms / 1000) as i64).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// A checkpoint as the CLI and the API show it.
pub fn checkpoint_json(checkpoint: &ezchain_protocol::Checkpoint) -> serde_json::Value {
    serde_json::json!({
        "value": checkpoint.value,
        "owner": checkpoint.owner,
        "height": checkpoint.unit.height,
        "bundle_hash": checkpoint.unit.bundle_hash,
        "seq": checkpoint.unit.seq,
    })
}

/// One of the wallet's own receipts as the CLI and the API show it.
pub fn receipt_json(receipt: &ezchain_protocol::Receipt) -> serde_json::Value {
    serde_json::json!({ "seq": receipt.seq, "height": receipt.header.height, "header_hash": receipt.header.header_hash })
}

/// Writes the history export atomically: a reader sees the old file or the new one.
pub fn write_export(path: &Path, records: &[TxRecord]) -> std::io::Result<()> {
    let values: Vec<serde_json::Value> = records.iter().map(TxRecord::to_json).collect();
    let text = serde_json::to_string_pretty(&values).map_err(std::io::Error::other)?;
    let temp = path.with_extension("json.tmp");
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
    }
    std::fs::rename(&temp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_rfc3339_in_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_796_180_138_999), "2026-12-02T02:55:38Z");
    }
}
