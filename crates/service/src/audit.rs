//! The audit log: `<log_dir>/service_audit.log`, JSON Lines, one line per request, chained —
//! every line carries the hash of the line before it (`prev`) and its own (`hash`), so an edited,
//! removed or inserted line breaks the chain at that point. Secrets are never written. When the
//! file passes its size limit it is renamed to `service_audit.log.1` and a new file continues
//! the chain.

use ezchain_protocol::hash::keccak256;
use serde::Serialize;
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub const AUDIT_FILE: &str = "service_audit.log";
/// The `prev` of the very first line.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One request, as audited.
#[derive(Clone, Debug, Serialize)]
pub struct AuditEntry {
    pub time_ms: u64,
    pub request_id: String,
    pub remote: String,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub error_code: Option<String>,
    pub client_tx_id: Option<String>,
    pub tx_ref: Option<String>,
    pub latency_ms: u64,
}

pub struct AuditLog {
    path: PathBuf,
    max_bytes: u64,
    state: Mutex<String>,
}

fn line_hash(prev: &str, body: &Value) -> String {
    hex::encode(keccak256(format!("{prev}{body}").as_bytes()))
}

/// The hash on the last line of `path`, if it has one.
fn last_hash(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?;
    let value: Value = serde_json::from_str(line).ok()?;
    value["hash"].as_str().map(String::from)
}

impl AuditLog {
    pub fn open(log_dir: &Path, max_bytes: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(log_dir)?;
        let path = log_dir.join(AUDIT_FILE);
        let rotated = log_dir.join(format!("{AUDIT_FILE}.1"));
        let prev = last_hash(&path)
            .or_else(|| last_hash(&rotated))
            .unwrap_or_else(|| GENESIS_PREV.to_string());
        Ok(AuditLog {
            path,
            max_bytes,
            state: Mutex::new(prev),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one entry; failures are logged, never fatal to the request.
    pub fn append(&self, entry: &AuditEntry) {
        let mut prev = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = self.write(&mut prev, entry) {
            tracing::warn!(error = %e, path = %self.path.display(), "cannot write the audit log");
        }
    }

    fn write(&self, prev: &mut String, entry: &AuditEntry) -> std::io::Result<()> {
        if std::fs::metadata(&self.path).is_ok_and(|m| m.len() >= self.max_bytes) {
            let rotated = self.path.with_file_name(format!("{AUDIT_FILE}.1"));
            std::fs::rename(&self.path, rotated)?;
        }
        let mut body = serde_json::to_value(entry).map_err(std::io::Error::other)?;
        body["prev"] = json!(prev.clone());
        let hash = line_hash(prev, &body);
        body["hash"] = json!(hash);
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
        writeln!(file, "{body}")?;
        *prev = hash;
        Ok(())
    }
}

/// Checks the chain of one audit file: returns how many lines verified, or the first broken
/// line (1-based) and why.
pub fn verify(path: &Path) -> Result<usize, (usize, String)> {
    let text = std::fs::read_to_string(path).map_err(|e| (0, format!("cannot read {}: {e}", path.display())))?;
    let mut expected_prev: Option<String> = None;
    let mut count = 0;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let mut body: Value = serde_json::from_str(line).map_err(|e| (number, format!("not JSON: {e}")))?;
        let hash = body["hash"]
            .as_str()
            .map(String::from)
            .ok_or((number, "no hash".to_string()))?;
        let prev = body["prev"]
            .as_str()
            .map(String::from)
            .ok_or((number, "no prev".to_string()))?;
        if let Some(expected) = &expected_prev
            && *expected != prev
        {
            return Err((number, "does not follow the line before it".into()));
        }
        if let Some(object) = body.as_object_mut() {
            object.remove("hash");
        }
        if line_hash(&prev, &body) != hash {
            return Err((number, "its content does not match its hash (edited)".into()));
        }
        expected_prev = Some(hash);
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u64) -> AuditEntry {
        AuditEntry {
            time_ms: n,
            request_id: format!("r{n}"),
            remote: "127.0.0.1".into(),
            method: "GET".into(),
            path: "/health".into(),
            status: 200,
            error_code: None,
            client_tx_id: None,
            tx_ref: None,
            latency_ms: 1,
        }
    }

    #[test]
    fn the_chain_verifies_and_an_edit_breaks_it_at_that_line() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = AuditLog::open(dir.path(), 1 << 20).expect("open");
        for n in 0..5 {
            log.append(&entry(n));
        }
        // Reopening continues the chain.
        let log = AuditLog::open(dir.path(), 1 << 20).expect("reopen");
        log.append(&entry(5));
        assert_eq!(verify(log.path()), Ok(6));
        let text = std::fs::read_to_string(log.path()).expect("read");
        let edited = text.replacen("\"status\":200", "\"status\":500", 3);
        let edited = text
            .lines()
            .enumerate()
            .map(|(i, l)| if i == 2 { edited.lines().nth(2).unwrap_or(l) } else { l })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(log.path(), edited).expect("write");
        assert_eq!(verify(log.path()).map_err(|(line, _)| line), Err(3));
    }

    #[test]
    fn rotation_keeps_the_chain() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = AuditLog::open(dir.path(), 400).expect("open");
        for n in 0..10 {
            log.append(&entry(n));
        }
        let rotated = dir.path().join(format!("{AUDIT_FILE}.1"));
        assert!(rotated.exists());
        let old_last = last_hash(&rotated).expect("rotated file has lines");
        let first_new: Value = serde_json::from_str(
            std::fs::read_to_string(log.path())
                .expect("read")
                .lines()
                .next()
                .expect("a line"),
        )
        .expect("json");
        assert_eq!(first_new["prev"], old_last.as_str());
        assert!(verify(log.path()).is_ok());
    }
}
