//! The audit log: `<log_dir>/service_audit.log`, JSON Lines, one line per request, chained —
//! every line carries the hash of the line before it (`prev`) and its own (`hash`). Secrets are
//! never written. When the file passes its size limit it is renamed to `service_audit.log.1` and
//! a new file continues the chain.
//!
//! The chain alone only shows that each line follows the one before; cutting lines off either
//! end, or editing a line and re-hashing everything after it, leaves a chain that verifies. So
//! the log is **anchored**: after every line its head — line count, first `prev` and last hash of
//! the current file, and the same for the rotated file — is written to `<data_dir>/audit_head.json`
//! (atomically, after the line is synced to disk), outside the log. [`verify_anchored`] checks the file
//! against its head. What is and is not detected is stated in docs/SERVICE.md.
//!
//! Crash safety: a line is one `write(2)` on an append-only file and is synced before the head
//! moves, so a kill leaves at most one torn last line, which the next start truncates, and at
//! most one line past the head. Either is chained as a `recovered` event. Anything else that
//! does not match the head at start is chained as an `anchor_mismatch` event, which
//! `audit-verify` reports from then on. `ops restore` never rolls the log back: it keeps the
//! current files and leaves `audit_restored.json`, chained here as a `restored` event.

use ezchain_protocol::hash::keccak256;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub use ezchain_wallet::config::{
    AUDIT_HEAD_FILE as HEAD_FILE, AUDIT_LOG_FILE as AUDIT_FILE, AUDIT_RESTORED_MARKER as RESTORED_MARKER,
    AUDIT_ROTATED_FILE as ROTATED_FILE,
};
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

/// Where one file of the chain ends.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileHead {
    pub lines: u64,
    /// The `prev` of the file's first line (the last hash of the file before it).
    pub first_prev: String,
    /// The hash of its last line (`first_prev` while it has none).
    pub last_hash: String,
}

/// The anchor kept outside the log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditHead {
    pub current: FileHead,
    pub rotated: Option<FileHead>,
}

/// The chain of one file, as read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainSummary {
    /// The hash of every line, in order.
    pub hashes: Vec<String>,
    pub first_prev: Option<String>,
    /// Kinds of the events found in the chain (`recovered`, `restored`, `anchor_mismatch`, …).
    pub events: Vec<(usize, String)>,
}

impl ChainSummary {
    fn head(&self) -> FileHead {
        let first_prev = self.first_prev.clone().unwrap_or_default();
        FileHead {
            lines: self.hashes.len() as u64,
            last_hash: self.hashes.last().cloned().unwrap_or_else(|| first_prev.clone()),
            first_prev,
        }
    }
}

struct Writer {
    prev: String,
    head: AuditHead,
    file: Option<File>,
}

pub struct AuditLog {
    path: PathBuf,
    head_path: PathBuf,
    max_bytes: u64,
    state: Mutex<Writer>,
}

fn line_hash(prev: &str, body: &Value) -> String {
    hex::encode(keccak256(format!("{prev}{body}").as_bytes()))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Reads the head file; `None` when there is none (a log older than anchoring, or a new one).
pub fn read_head(path: &Path) -> Result<Option<AuditHead>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| format!("{} is not an audit head: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Replaces the head file atomically. Not synced: the line it anchors is already on disk, so
/// after a power loss the head can only be older than the log (lines "written just before a
/// stop"), never ahead of it.
fn write_head(path: &Path, head: &AuditHead) -> std::io::Result<()> {
    let temp = path.with_extension("json.tmp");
    std::fs::write(&temp, serde_json::to_string(head).map_err(std::io::Error::other)?)?;
    std::fs::rename(&temp, path)
}

/// Cuts a torn last line (no newline: a write that a kill interrupted). Returns the bytes cut.
fn truncate_torn_line(path: &Path) -> std::io::Result<u64> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    if bytes.is_empty() || bytes.ends_with(b"\n") {
        return Ok(0);
    }
    let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let file = std::fs::OpenOptions::new().write(true).open(path)?;
    file.set_len(keep as u64)?;
    file.sync_all()?;
    Ok((bytes.len() - keep) as u64)
}

/// Reads one file's chain: every line must follow the one before and match its hash. Returns
/// the chain, or the first broken line (1-based) and why.
pub fn read_chain(path: &Path) -> Result<ChainSummary, (usize, String)> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ChainSummary::default()),
        Err(e) => return Err((0, format!("cannot read {}: {e}", path.display()))),
    };
    let mut summary = ChainSummary::default();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.trim().is_empty() {
            return Err((number, "an empty line (lines are never empty)".into()));
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
        match summary.hashes.last() {
            Some(expected) if *expected != prev => return Err((number, "does not follow the line before it".into())),
            None => summary.first_prev = Some(prev.clone()),
            _ => {}
        }
        if let Some(object) = body.as_object_mut() {
            object.remove("hash");
        }
        if line_hash(&prev, &body) != hash {
            return Err((number, "its content does not match its hash (edited)".into()));
        }
        if let Some(kind) = body["event"].as_str() {
            summary.events.push((number, kind.to_string()));
        }
        summary.hashes.push(hash);
    }
    Ok(summary)
}

/// Checks one file's chain: how many lines verified, or the first broken line and why.
pub fn verify(path: &Path) -> Result<usize, (usize, String)> {
    read_chain(path).map(|summary| summary.hashes.len())
}

/// What [`verify_anchored`] found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditReport {
    pub lines: usize,
    /// False when no head was found (a log from before anchoring): only the chain was checked.
    pub anchored: bool,
    /// Lines after the head: written just before a crash (the next start anchors them).
    pub unanchored_lines: usize,
    /// Lines of the rotated file checked too.
    pub rotated_lines: usize,
    /// `anchor_mismatch` events: the service found the log changed while it was stopped.
    pub mismatches: Vec<usize>,
    pub restores: Vec<usize>,
    pub recoveries: Vec<usize>,
}

/// Checks the audit log at `log_path` (and its rotated file beside it) against the head at
/// `head_path`: the chain must verify, reach at least the anchored line count, and pass through
/// the anchored hashes. Errors name the line (0 for the file as a whole) and the reason.
pub fn verify_anchored(log_path: &Path, head_path: &Path) -> Result<AuditReport, (usize, String)> {
    let chain = read_chain(log_path)?;
    let head = read_head(head_path).map_err(|e| (0, e))?;
    let mut report = AuditReport {
        lines: chain.hashes.len(),
        anchored: head.is_some(),
        unanchored_lines: 0,
        rotated_lines: 0,
        mismatches: Vec::new(),
        restores: Vec::new(),
        recoveries: Vec::new(),
    };
    for (line, kind) in &chain.events {
        match kind.as_str() {
            "anchor_mismatch" => report.mismatches.push(*line),
            "restored" => report.restores.push(*line),
            "recovered" => report.recoveries.push(*line),
            _ => {}
        }
    }
    let Some(head) = head else {
        return Ok(report);
    };
    check_against(&chain, &head.current).map_err(|reason| (0, reason))?;
    report.unanchored_lines = chain.hashes.len() - head.current.lines as usize;
    if let Some(rotated_head) = &head.rotated {
        let rotated_path = log_path.with_file_name(ROTATED_FILE);
        let rotated =
            read_chain(&rotated_path).map_err(|(line, reason)| (line, format!("{ROTATED_FILE}: {reason}")))?;
        check_against(&rotated, rotated_head).map_err(|reason| (0, format!("{ROTATED_FILE}: {reason}")))?;
        if rotated.hashes.len() as u64 != rotated_head.lines {
            return Err((0, format!("{ROTATED_FILE}: lines were added after it was rotated")));
        }
        report.rotated_lines = rotated.hashes.len();
    }
    Ok(report)
}

/// Does `chain` contain the anchored part `head` unchanged?
fn check_against(chain: &ChainSummary, head: &FileHead) -> Result<(), String> {
    if (chain.hashes.len() as u64) < head.lines {
        return Err(format!(
            "{} lines, but {} were anchored: lines were removed",
            chain.hashes.len(),
            head.lines
        ));
    }
    if head.lines > 0 {
        if chain.first_prev.as_deref() != Some(head.first_prev.as_str()) {
            return Err("the first line is not the anchored first line: lines were removed or replaced".into());
        }
        if chain.hashes[head.lines as usize - 1] != head.last_hash {
            return Err(format!(
                "line {} is not the anchored line: the log was rewritten at or before it",
                head.lines
            ));
        }
    }
    Ok(())
}

impl AuditLog {
    /// Opens the log in `log_dir` anchored at `head_path`; repairs what a crash left and chains
    /// what it found (see the module doc). `restored_marker` is the file `ops restore` leaves.
    pub fn open(log_dir: &Path, head_path: &Path, restored_marker: &Path, max_bytes: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(log_dir)?;
        let path = log_dir.join(AUDIT_FILE);
        let rotated_path = log_dir.join(ROTATED_FILE);
        let torn_bytes = truncate_torn_line(&path)?;
        let stored_head = read_head(head_path).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "the audit head is unreadable; the log is re-anchored");
            None
        });
        let mut events: Vec<(&str, Value)> = Vec::new();
        if torn_bytes > 0 {
            events.push((
                "recovered",
                json!({ "truncated_bytes": torn_bytes, "why": "a torn last line (the service was killed mid-write)" }),
            ));
        }
        let (prev, head) = match read_chain(&path) {
            Ok(chain) => {
                let rotated = read_chain(&rotated_path).ok().filter(|c| !c.hashes.is_empty());
                let mut head = AuditHead {
                    current: chain.head(),
                    rotated: rotated.as_ref().map(ChainSummary::head),
                };
                if chain.hashes.is_empty() {
                    let prev = rotated
                        .as_ref()
                        .and_then(|r| r.hashes.last().cloned())
                        .unwrap_or_else(|| GENESIS_PREV.to_string());
                    head.current = FileHead {
                        lines: 0,
                        first_prev: prev.clone(),
                        last_hash: prev,
                    };
                }
                if let Some(stored) = &stored_head {
                    match check_against(&chain, &stored.current) {
                        Ok(()) if head.current.lines > stored.current.lines => events.push((
                            "recovered",
                            json!({ "unanchored_lines": head.current.lines - stored.current.lines,
                                    "why": "lines written just before the service stopped" }),
                        )),
                        Ok(()) => {}
                        Err(reason) => events.push((
                            "anchor_mismatch",
                            json!({ "reason": reason, "anchored_lines": stored.current.lines,
                                    "found_lines": head.current.lines }),
                        )),
                    }
                }
                (head.current.last_hash.clone(), head)
            }
            Err((line, reason)) => {
                // The chain is broken inside the file: continue from its last line, and say so.
                let last = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|text| text.lines().last().map(String::from))
                    .and_then(|line| serde_json::from_str::<Value>(&line).ok())
                    .and_then(|value| value["hash"].as_str().map(String::from))
                    .unwrap_or_else(|| GENESIS_PREV.to_string());
                events.push(("anchor_mismatch", json!({ "reason": format!("line {line}: {reason}") })));
                let lines = std::fs::read_to_string(&path).map_or(0, |t| t.lines().count() as u64);
                let head = AuditHead {
                    current: FileHead {
                        lines,
                        first_prev: String::new(),
                        last_hash: last.clone(),
                    },
                    rotated: None,
                };
                (last, head)
            }
        };
        let restored = std::fs::read_to_string(restored_marker)
            .ok()
            .map(|text| serde_json::from_str::<Value>(&text).unwrap_or(json!({ "marker": text })));
        if let Some(detail) = &restored {
            events.push(("restored", detail.clone()));
        }
        let log = AuditLog {
            path,
            head_path: head_path.to_path_buf(),
            max_bytes,
            state: Mutex::new(Writer { prev, head, file: None }),
        };
        {
            let mut writer = log.state.lock().unwrap_or_else(|p| p.into_inner());
            for (kind, detail) in events {
                let body = json!({ "time_ms": now_ms(), "event": kind, "detail": detail });
                log.write(&mut writer, body)?;
            }
            write_head(&log.head_path, &writer.head)?;
        }
        if restored.is_some() {
            std::fs::remove_file(restored_marker)?;
        }
        Ok(log)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one entry; failures are logged, never fatal to the request.
    pub fn append(&self, entry: &AuditEntry) {
        let mut writer = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let written = serde_json::to_value(entry)
            .map_err(std::io::Error::other)
            .and_then(|body| self.write(&mut writer, body));
        if let Err(e) = written {
            // The file may hold a line the head does not: drop the handle so the next line
            // reopens it; the next start chains a `recovered` event for it.
            writer.file = None;
            tracing::warn!(error = %e, path = %self.path.display(), "cannot write the audit log");
        }
    }

    /// Writes one line (one `write(2)`, then synced), then moves the head past it.
    fn write(&self, writer: &mut Writer, mut body: Value) -> std::io::Result<()> {
        if writer.file.is_none() && std::fs::metadata(&self.path).is_ok_and(|m| m.len() >= self.max_bytes)
            || writer
                .file
                .as_ref()
                .is_some_and(|f| f.metadata().is_ok_and(|m| m.len() >= self.max_bytes))
        {
            writer.file = None;
            std::fs::rename(&self.path, self.path.with_file_name(ROTATED_FILE))?;
            writer.head.rotated = Some(writer.head.current.clone());
            writer.head.current = FileHead {
                lines: 0,
                first_prev: writer.prev.clone(),
                last_hash: writer.prev.clone(),
            };
        }
        if writer.file.is_none() {
            writer.file = Some(std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?);
        }
        body["prev"] = json!(writer.prev);
        let hash = line_hash(&writer.prev, &body);
        body["hash"] = json!(hash);
        let line = format!("{body}\n");
        let file = writer.file.as_mut().expect("opened above");
        file.write_all(line.as_bytes())?;
        file.sync_data()?;
        if writer.head.current.lines == 0 {
            writer.head.current.first_prev = writer.prev.clone();
        }
        writer.head.current.lines += 1;
        writer.head.current.last_hash = hash.clone();
        writer.prev = hash;
        write_head(&self.head_path, &writer.head)
    }
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

    struct Files {
        dir: tempfile::TempDir,
    }

    impl Files {
        fn new() -> Files {
            Files {
                dir: tempfile::tempdir().expect("temp dir"),
            }
        }
        fn logs(&self) -> PathBuf {
            self.dir.path().join("logs")
        }
        fn head(&self) -> PathBuf {
            self.dir.path().join(HEAD_FILE)
        }
        fn marker(&self) -> PathBuf {
            self.dir.path().join(RESTORED_MARKER)
        }
        fn log(&self) -> PathBuf {
            self.logs().join(AUDIT_FILE)
        }
        fn open(&self, max_bytes: u64) -> AuditLog {
            AuditLog::open(&self.logs(), &self.head(), &self.marker(), max_bytes).expect("open")
        }
        fn verify(&self) -> Result<AuditReport, (usize, String)> {
            verify_anchored(&self.log(), &self.head())
        }
        fn lines(&self) -> Vec<String> {
            std::fs::read_to_string(self.log())
                .expect("read")
                .lines()
                .map(String::from)
                .collect()
        }
        fn write_lines(&self, lines: &[String]) {
            let mut text = lines.join("\n");
            text.push('\n');
            std::fs::write(self.log(), text).expect("write");
        }
    }

    /// Re-hashes `lines` from the first one on, as someone rewriting the log would.
    fn rehash(lines: &[String]) -> Vec<String> {
        let mut prev: Option<String> = None;
        lines
            .iter()
            .map(|line| {
                let mut body: Value = serde_json::from_str(line).expect("json");
                let p = prev
                    .clone()
                    .unwrap_or_else(|| body["prev"].as_str().expect("prev").to_string());
                body.as_object_mut().expect("object").remove("hash");
                body["prev"] = json!(p);
                let hash = line_hash(&p, &body);
                body["hash"] = json!(hash);
                prev = Some(hash);
                body.to_string()
            })
            .collect()
    }

    #[test]
    fn the_chain_verifies_and_an_edit_breaks_it_at_that_line() {
        let files = Files::new();
        let log = files.open(1 << 20);
        for n in 0..5 {
            log.append(&entry(n));
        }
        drop(log);
        // Reopening continues the chain.
        let log = files.open(1 << 20);
        log.append(&entry(5));
        assert_eq!(verify(log.path()), Ok(6));
        assert_eq!(files.verify().map(|r| r.lines), Ok(6));
        let mut lines = files.lines();
        lines[2] = lines[2].replacen("\"status\":200", "\"status\":500", 1);
        files.write_lines(&lines);
        assert_eq!(verify(log.path()).map_err(|(line, _)| line), Err(3));
    }

    #[test]
    fn truncation_and_rewrites_that_keep_the_chain_are_caught_by_the_anchor() {
        let files = Files::new();
        let log = files.open(1 << 20);
        for n in 0..6 {
            log.append(&entry(n));
        }
        drop(log);
        let original = files.lines();
        assert!(files.verify().is_ok());
        // Each of these leaves a chain that verifies on its own, and each fails the anchor.
        let last_removed = original[..5].to_vec();
        let first_removed = original[1..].to_vec();
        let mut edited = original.clone();
        edited[3] = edited[3].replacen("\"status\":200", "\"status\":500", 1);
        let rewritten = rehash(&edited);
        for (what, lines) in [
            ("last line removed", last_removed),
            ("first line removed", first_removed),
            ("edited and re-hashed", rewritten),
        ] {
            files.write_lines(&lines);
            assert!(verify(&files.log()).is_ok(), "{what}: the chain alone passes");
            assert!(files.verify().is_err(), "{what}: the anchor catches it");
        }
        std::fs::write(files.log(), "").expect("truncate");
        assert!(files.verify().is_err(), "an emptied file");
        // The service chains what it found at its next start; verify reports it from then on.
        files.write_lines(&original[..4]);
        let log = files.open(1 << 20);
        log.append(&entry(9));
        let report = files.verify().expect("the chain continues");
        assert_eq!(report.mismatches, vec![5]);
    }

    #[test]
    fn a_torn_last_line_is_cut_and_recorded_at_the_next_start() {
        let files = Files::new();
        let log = files.open(1 << 20);
        for n in 0..3 {
            log.append(&entry(n));
        }
        drop(log);
        // A kill in the middle of a write leaves half a line.
        let mut text = std::fs::read_to_string(files.log()).expect("read");
        text.push_str("{\"time_ms\":3,\"request_id\":\"r3\",\"rem");
        std::fs::write(files.log(), text).expect("write");
        let log = files.open(1 << 20);
        log.append(&entry(4));
        let report = files.verify().expect("intact after recovery");
        assert_eq!(report.lines, 5);
        assert_eq!(report.recoveries, vec![4]);
        assert!(report.mismatches.is_empty());
    }

    #[test]
    fn a_line_written_past_the_head_before_a_crash_is_anchored_as_recovered() {
        let files = Files::new();
        let log = files.open(1 << 20);
        log.append(&entry(0));
        let head = std::fs::read_to_string(files.head()).expect("head");
        log.append(&entry(1));
        drop(log);
        // The crash came between the line and its head.
        std::fs::write(files.head(), head).expect("old head");
        let report = files.verify().expect("one line past the head is not tampering");
        assert_eq!(report.unanchored_lines, 1);
        let _log = files.open(1 << 20);
        let report = files.verify().expect("anchored again");
        assert_eq!((report.unanchored_lines, report.recoveries.len()), (0, 1));
    }

    #[test]
    fn rotation_keeps_the_chain_and_the_anchor_covers_both_files() {
        let files = Files::new();
        let log = files.open(400);
        for n in 0..10 {
            log.append(&entry(n));
        }
        let rotated = files.logs().join(ROTATED_FILE);
        assert!(rotated.exists());
        let old = read_chain(&rotated).expect("rotated chain");
        let first_new: Value = serde_json::from_str(&files.lines()[0]).expect("json");
        assert_eq!(first_new["prev"], old.hashes.last().expect("lines").as_str());
        let report = files.verify().expect("both files verify");
        assert_eq!(report.rotated_lines, old.hashes.len());
        let mut text = std::fs::read_to_string(&rotated).expect("read");
        let cut = text.find('\n').expect("line") + 1;
        text.replace_range(..cut, "");
        std::fs::write(&rotated, text).expect("write");
        assert!(files.verify().is_err(), "the rotated file lost its first line");
    }

    #[test]
    fn a_restore_is_chained_as_an_event_naming_the_snapshot() {
        let files = Files::new();
        files.open(1 << 20).append(&entry(0));
        std::fs::write(files.marker(), r#"{"snapshot":"/backups/snapshot-1"}"#).expect("marker");
        let _log = files.open(1 << 20);
        assert!(!files.marker().exists(), "the marker is consumed");
        let report = files.verify().expect("intact");
        assert_eq!(report.restores, vec![2]);
        assert!(files.lines()[1].contains("/backups/snapshot-1"));
    }
}
