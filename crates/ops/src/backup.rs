//! `ezchain ops backup` and `ezchain ops restore`: consistent snapshots of a wallet service and
//! its local testnet, and their verified, all-or-nothing restore.
//!
//! A snapshot is `<out-dir>/snapshot-<UTC stamp>[-<label>]/` holding `ezchain.yaml`, `data_dir/`
//! (and `log_dir/`, `api.token`, `genesis.json` when they live outside the data folder) and
//! `manifest.json` listing every file with its size, SHA-256 and mode. Databases are never
//! copied as raw files: one held by a running node or service is exported by that process
//! (`POST /v1/admin/export`, `POST /ops/export`), one nobody holds is exported here, each from
//! a single read transaction. The snapshot is built in a hidden folder and renamed into place
//! when complete, so a half-written snapshot never carries the final name.
//!
//! Restore verifies every hash first, refuses while any process holds a database of the target
//! or a local node runs, and swaps whole folders by rename; the previous state is kept beside the
//! data folder. State that must only move forward is kept from the target rather than rolled
//! back: a node's `data/` folder (chain, mailbox, consensus WAL — chain data is the network's, a
//! stale one only re-syncs, and a validator whose consensus state went back in time could sign
//! twice), and each service's `service.redb` (used nonces and answered payments). A wallet is
//! rolled back only knowingly: one holding payments its snapshot copy lacks is refused
//! (`wallet_ahead`) unless the operator keeps it (`--keep-wallet`) or discards them
//! (`--discard-wallet-changes`), since the chain cannot give those payments back.

use ezchain_devnet::localnet::Localnet;
use ezchain_host::export::{ExportError, open_unheld};
use ezchain_node::config::NodeConfig;
use ezchain_node::mailbox::Mailbox;
use ezchain_node::store::ChainStore;
use ezchain_rpc::paths;
use ezchain_rpc::types::{AdminExportAnswer, AdminExportRequest};
use ezchain_wallet::AppConfig;
use ezchain_wallet::store::export_wallet;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

pub const MANIFEST_FILE: &str = "manifest.json";
pub const MANIFEST_FORMAT: u32 = 1;
const CONFIG_ENTRY: &str = "ezchain.yaml";
const DATA_ENTRY: &str = "data_dir";
const LOG_ENTRY: &str = "log_dir";
const TOKEN_ENTRY: &str = "api.token";
const GENESIS_ENTRY: &str = "genesis.json";

#[derive(Debug, Error)]
pub enum BackupError {
    #[error("{0}")]
    BadInput(String),
    #[error("{0} already exists; a snapshot is never overwritten (use another --label or wait a second)")]
    SnapshotExists(PathBuf),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot back up {path}: {reason}")]
    Export { path: PathBuf, reason: String },
    #[error("the backup is damaged: {0}")]
    Corrupt(String),
    #[error("{what} is running; stop it first: {stop}")]
    Running { what: String, stop: String },
    #[error("{0} exists; rerun with --force to replace it (the current state is kept beside it)")]
    TargetExists(PathBuf),
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    WalletAhead(String),
}

impl BackupError {
    /// Stable code for scripts.
    pub fn code(&self) -> &'static str {
        match self {
            BackupError::BadInput(_) => "invalid_argument",
            BackupError::SnapshotExists(_) => "snapshot_exists",
            BackupError::Io { .. } => "io_error",
            BackupError::Export { .. } => "export_failed",
            BackupError::Corrupt(_) => "backup_corrupt",
            BackupError::Running { .. } => "still_running",
            BackupError::TargetExists(_) => "target_exists",
            BackupError::Config(_) => "bad_config",
            BackupError::WalletAhead(_) => "wallet_ahead",
        }
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One file of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Path inside the snapshot, `/`-separated.
    pub path: String,
    pub size: u64,
    pub sha256: String,
    /// Unix permission bits (secret files are 0600).
    pub mode: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub tool_version: String,
    pub created_at: String,
    pub label: Option<String>,
    /// `--config` as given, and `app.data_dir` as configured.
    pub config_path: String,
    pub data_dir: String,
    pub chain_id: Option<u64>,
    pub genesis_hash: Option<String>,
    /// Tip height of every local node's chain in the snapshot.
    pub heights: BTreeMap<String, u64>,
    pub wallet_address: Option<String>,
    pub files: Vec<ManifestFile>,
}

/// `YYYYMMDDTHHMMSSZ` (for folder names) and RFC 3339 for now, in UTC.
fn utc_now() -> (String, String) {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let rfc3339 = ezchain_wallet::history::rfc3339(ms);
    (rfc3339.replace(['-', ':'], ""), rfc3339)
}

fn valid_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 64
        && label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !label.starts_with('.')
}

/// SHA-256 (hex) and size of a file.
pub fn hash_file(path: &Path) -> Result<(String, u64), BackupError> {
    let mut file = std::fs::File::open(path).map_err(io(path))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let read = file.read(&mut buffer).map_err(io(path))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        size += read as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

fn mode_of(path: &Path) -> Result<u32, BackupError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        Ok(std::fs::metadata(path).map_err(io(path))?.permissions().mode() & 0o777)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(0o600)
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), BackupError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io(path))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

fn create_private_dir(path: &Path) -> Result<(), BackupError> {
    std::fs::create_dir_all(path).map_err(io(path))?;
    set_mode(path, 0o700)
}

/// Regular files under `root`, relative to it, sorted; symlinks and sockets are not followed.
fn walk(root: &Path, skip: &[PathBuf]) -> Result<Vec<PathBuf>, BackupError> {
    let mut files = Vec::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        if skip.iter().any(|s| folder.starts_with(s)) {
            continue;
        }
        for entry in std::fs::read_dir(&folder).map_err(io(&folder))? {
            let entry = entry.map_err(io(&folder))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(io(&path))?;
            if kind.is_dir() {
                if !transient_folder(&path) {
                    folders.push(path);
                }
            } else if kind.is_file() {
                files.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Files a snapshot leaves out: process ids and locks of the running processes and half-written
/// temporaries.
fn transient(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("pid" | "tmp" | "partial" | "lock")
    )
}

/// Folders a snapshot leaves out: a node's validated-but-uncommitted blocks, which come and go
/// every height (a restored node that lacks one syncs the block instead).
fn transient_folder(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|name| name == ezchain_node::consensus::engine::CANDIDATE_DIR)
}

fn slash_path(path: &Path) -> String {
    path.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// The node home holding `file` (the nearest folder with a `node.yaml`).
fn node_home(file: &Path) -> Option<PathBuf> {
    file.ancestors()
        .skip(1)
        .find(|dir| dir.join("node.yaml").is_file())
        .map(Path::to_path_buf)
}

/// The wallet config owning a database under `data_dir`: the nearest folder inside it with an
/// `ezchain.yaml` (a local account node), else the main config.
fn owner_config(file: &Path, data_dir: &Path, main: &Path) -> PathBuf {
    file.ancestors()
        .skip(1)
        .take_while(|dir| dir.starts_with(data_dir) && *dir != data_dir)
        .map(|dir| dir.join(CONFIG_ENTRY))
        .find(|config| config.is_file())
        .unwrap_or_else(|| main.to_path_buf())
}

fn http() -> Result<reqwest::blocking::Client, BackupError> {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .map_err(|e| BackupError::Config(format!("HTTP client: {e}")))
}

fn post_export(url: &str, headers: &[(&str, String)], body: &Value, file: &Path) -> Result<Value, BackupError> {
    let failed = |reason: String| BackupError::Export {
        path: file.to_path_buf(),
        reason,
    };
    let mut request = http()?.post(url).json(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request
        .send()
        .map_err(|e| failed(format!("its owner at {url} did not answer: {e}")))?;
    let answer: Value = response
        .json()
        .map_err(|e| failed(format!("{url} answered with no JSON: {e}")))?;
    if answer["ok"] != true {
        return Err(failed(format!("{url} refused: {}", answer["error"])));
    }
    Ok(answer["data"].clone())
}

/// Exports a node's `chain.redb`, `mailbox.redb` or its faucet wallet's `wallet.redb`: here
/// when no process holds it, else through the running node's admin RPC. Returns the tip height
/// for a chain.
fn export_node_db(source: &Path, target: &Path) -> Result<Option<u64>, BackupError> {
    let database = match source.file_name().and_then(|n| n.to_str()) {
        Some("chain.redb") => "chain",
        Some("mailbox.redb") => "mailbox",
        _ => "faucet_wallet",
    };
    let offline = match database {
        "chain" => ChainStore::export_file(source, target).map(|(tip, _)| Some(tip.height)),
        "mailbox" => Mailbox::export_file(source, target).map(|_| None),
        _ => {
            let wallet_dir = source.parent().and_then(Path::parent).unwrap_or(source);
            export_wallet(wallet_dir, target, Duration::from_secs(2)).map(|_| None)
        }
    };
    match offline {
        Err(ExportError::Busy(_)) => {}
        other => {
            return other.map_err(|e| BackupError::Export {
                path: source.to_path_buf(),
                reason: e.to_string(),
            });
        }
    }
    let home = node_home(source).ok_or_else(|| BackupError::Export {
        path: source.to_path_buf(),
        reason: "it is held by a process, and no node.yaml names its node".into(),
    })?;
    let config = NodeConfig::load(&home).map_err(|e| BackupError::Config(e.to_string()))?;
    let token_file = config
        .resolve(&home, &config.data_dir)
        .join(ezchain_node::config::ADMIN_TOKEN_FILE);
    let token = ezchain_host::secret::read_token(&token_file).map_err(|e| BackupError::Export {
        path: source.to_path_buf(),
        reason: format!("the node's admin token: {e}"),
    })?;
    let mut addr = config.rpc.listen_addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let request = AdminExportRequest {
        database: database.to_string(),
        out_file: target.to_path_buf(),
    };
    let data = post_export(
        &format!("http://{addr}{}", paths::ADMIN_EXPORT),
        &[(paths::ADMIN_TOKEN_HEADER, token)],
        &json!(request),
        source,
    )?;
    let answer: AdminExportAnswer = serde_json::from_value(data).map_err(|e| BackupError::Export {
        path: source.to_path_buf(),
        reason: format!("the node's export answer: {e}"),
    })?;
    Ok(answer.height)
}

/// Exports a wallet service's `service.redb` or `wallet.redb`: here when no process holds it,
/// else through the running service (`POST /ops/export`).
fn export_service_db(source: &Path, target: &Path, owner: &Path) -> Result<(), BackupError> {
    let is_wallet = source.file_name().is_some_and(|n| n == "wallet.redb");
    let offline = if is_wallet {
        let data_dir = source.parent().and_then(Path::parent).unwrap_or(source);
        export_wallet(data_dir, target, Duration::from_secs(2))
    } else {
        ezchain_service::guard::Guard::export_file(source, target)
    };
    match offline {
        Err(ExportError::Busy(_)) => {}
        other => {
            return other.map(|_| ()).map_err(|e| BackupError::Export {
                path: source.to_path_buf(),
                reason: e.to_string(),
            });
        }
    }
    let config = AppConfig::load(owner).map_err(|e| BackupError::Config(e.to_string()))?;
    let token = ezchain_host::secret::read_token(&config.token_file()).map_err(|e| BackupError::Export {
        path: source.to_path_buf(),
        reason: format!("the service's API token: {e}"),
    })?;
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).map_err(|e| BackupError::Config(e.to_string()))?;
    post_export(
        &format!("http://{}:{}/ops/export", config.app.api_host, config.app.api_port),
        &[("x-ez-token", token), ("x-ez-nonce", hex::encode(nonce))],
        &json!({ "database": if is_wallet { "wallet" } else { "service" }, "out_file": target }),
        source,
    )?;
    Ok(())
}

pub struct BackupRequest<'a> {
    pub config_path: &'a Path,
    pub out_dir: &'a Path,
    pub label: Option<&'a str>,
    pub tool_version: &'a str,
}

#[derive(Debug, Serialize)]
pub struct BackupReport {
    pub status: &'static str,
    pub backup_dir: PathBuf,
    pub manifest: PathBuf,
    pub files: usize,
    pub bytes: u64,
    pub heights: BTreeMap<String, u64>,
}

/// Where each part of the wallet's installation lives.
/// The audit log's files (the log, its rotated part, its head): kept through a restore.
fn is_audit_file(name: &std::ffi::OsStr) -> bool {
    [
        ezchain_wallet::config::AUDIT_LOG_FILE,
        ezchain_wallet::config::AUDIT_ROTATED_FILE,
        ezchain_wallet::config::AUDIT_HEAD_FILE,
    ]
    .iter()
    .any(|audit| name == *audit)
}

struct Layout {
    config: PathBuf,
    data_dir: PathBuf,
    log_dir: PathBuf,
    token: PathBuf,
    genesis: PathBuf,
    restored_marker: PathBuf,
}

impl Layout {
    fn of(config_path: &Path, config: &AppConfig) -> Layout {
        Layout {
            config: config_path.to_path_buf(),
            data_dir: config.data_dir(),
            log_dir: config.log_dir(),
            token: config.token_file(),
            genesis: config.genesis_file(),
            restored_marker: config.audit_restored_marker(),
        }
    }
}

/// `path` made absolute against the working directory, without touching the file system.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// `path` with `.` and `..` folded away (for comparing locations).
fn normal(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in absolute(path).components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Takes a snapshot.
pub fn backup(request: &BackupRequest) -> Result<BackupReport, BackupError> {
    if let Some(label) = request.label
        && !valid_label(label)
    {
        return Err(BackupError::BadInput(format!(
            "--label `{label}`: use 1–64 letters, digits, `-`, `_` or `.`"
        )));
    }
    let config_path = normal(request.config_path);
    let config = AppConfig::load(&config_path).map_err(|e| BackupError::Config(e.to_string()))?;
    let layout = Layout::of(&config_path, &config);
    let data_dir = normal(&layout.data_dir);
    if !data_dir.is_dir() {
        return Err(BackupError::BadInput(format!(
            "{} (app.data_dir) does not exist: nothing to back up",
            data_dir.display()
        )));
    }
    let out_dir = normal(request.out_dir);
    let (stamp, created_at) = utc_now();
    let name = match request.label {
        Some(label) => format!("snapshot-{stamp}-{label}"),
        None => format!("snapshot-{stamp}"),
    };
    let final_dir = out_dir.join(&name);
    if final_dir.exists() {
        return Err(BackupError::SnapshotExists(final_dir));
    }
    std::fs::create_dir_all(&out_dir).map_err(io(&out_dir))?;
    let staging = out_dir.join(format!(".{name}.partial-{}", std::process::id()));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io(&staging))?;
    }
    create_private_dir(&staging)?;
    let result =
        fill_snapshot(&staging, &config_path, &config, &layout, &data_dir, &out_dir).and_then(|(files, heights)| {
            let genesis = ezchain_host::genesis_file::load_genesis(&layout.genesis).ok();
            let wallet_address = ezchain_wallet::wallet_file::load(&data_dir)
                .ok()
                .and_then(|file| file.address().ok())
                .map(|address| address.to_string());
            let manifest = Manifest {
                format: MANIFEST_FORMAT,
                tool_version: request.tool_version.to_string(),
                created_at,
                label: request.label.map(String::from),
                config_path: request.config_path.display().to_string(),
                data_dir: config.app.data_dir.display().to_string(),
                chain_id: genesis.as_ref().map(|g| g.chain_id),
                genesis_hash: genesis.as_ref().map(|g| g.hash().to_string()),
                heights: heights.clone(),
                wallet_address,
                files,
            };
            let text = serde_json::to_vec_pretty(&manifest).map_err(|e| BackupError::Config(e.to_string()))?;
            let manifest_path = staging.join(MANIFEST_FILE);
            write_synced(&manifest_path, &text, 0o600)?;
            Ok(manifest)
        });
    let manifest = match result {
        Ok(manifest) => manifest,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    if final_dir.exists() {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(BackupError::SnapshotExists(final_dir));
    }
    std::fs::rename(&staging, &final_dir).map_err(io(&final_dir))?;
    Ok(BackupReport {
        status: "ok",
        manifest: final_dir.join(MANIFEST_FILE),
        backup_dir: final_dir,
        files: manifest.files.len(),
        bytes: manifest.files.iter().map(|f| f.size).sum(),
        heights: manifest.heights,
    })
}

fn write_synced(path: &Path, bytes: &[u8], mode: u32) -> Result<(), BackupError> {
    use std::io::Write;
    let mut file = std::fs::File::create(path).map_err(io(path))?;
    file.write_all(bytes).map_err(io(path))?;
    file.sync_all().map_err(io(path))?;
    set_mode(path, mode)
}

/// Copies a plain file, keeping its permission bits, and syncs it.
fn copy_file(from: &Path, to: &Path) -> Result<(), BackupError> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    std::fs::copy(from, to).map_err(io(from))?;
    std::fs::File::open(to).and_then(|f| f.sync_all()).map_err(io(to))?;
    set_mode(to, mode_of(from)?)
}

type Filled = (Vec<ManifestFile>, BTreeMap<String, u64>);

fn fill_snapshot(
    staging: &Path,
    config_path: &Path,
    config: &AppConfig,
    layout: &Layout,
    data_dir: &Path,
    out_dir: &Path,
) -> Result<Filled, BackupError> {
    let mut entries: Vec<String> = Vec::new();
    let mut heights = BTreeMap::new();
    if layout.config.is_file() {
        copy_file(&layout.config, &staging.join(CONFIG_ENTRY))?;
        entries.push(CONFIG_ENTRY.into());
    } else {
        // Defaults: the snapshot still records which settings it was taken with.
        write_synced(&staging.join(CONFIG_ENTRY), config.to_yaml().as_bytes(), 0o600)?;
        entries.push(CONFIG_ENTRY.into());
    }
    let mut trees = vec![(data_dir.to_path_buf(), DATA_ENTRY)];
    let log_dir = normal(&layout.log_dir);
    if !log_dir.starts_with(data_dir) && log_dir.is_dir() {
        trees.push((log_dir, LOG_ENTRY));
    }
    for (root, entry) in trees {
        for relative in walk(&root, &[out_dir.to_path_buf()])? {
            if transient(&relative) {
                continue;
            }
            let source = root.join(&relative);
            let target = staging.join(entry).join(&relative);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            match relative.file_name().and_then(|n| n.to_str()) {
                Some("chain.redb" | "mailbox.redb") => {
                    if let Some(height) = export_node_db(&source, &target)? {
                        let node = node_home(&source)
                            .and_then(|home| home.file_name().map(|n| n.to_string_lossy().into_owned()))
                            .unwrap_or_else(|| slash_path(&relative));
                        heights.insert(node, height);
                    }
                }
                // The bootstrap node's faucet wallet: its node holds it.
                Some("wallet.redb") if node_home(&source).is_some() => {
                    export_node_db(&source, &target)?;
                }
                Some("service.redb" | "wallet.redb") => {
                    let owner = owner_config(&source, data_dir, config_path);
                    export_service_db(&source, &target, &owner)?;
                }
                Some(name) if name.ends_with(".redb") => {
                    return Err(BackupError::Export {
                        path: source,
                        reason: "an unknown database; this tool only exports the ones it knows \
                                 (a raw copy of a live database could be torn)"
                            .into(),
                    });
                }
                _ => copy_file(&source, &target)?,
            }
            entries.push(format!("{entry}/{}", slash_path(&relative)));
        }
    }
    let token = normal(&layout.token);
    if !token.starts_with(data_dir) && token.is_file() {
        copy_file(&token, &staging.join(TOKEN_ENTRY))?;
        entries.push(TOKEN_ENTRY.into());
    }
    let genesis = normal(&layout.genesis);
    if !genesis.starts_with(data_dir) && genesis.is_file() {
        copy_file(&genesis, &staging.join(GENESIS_ENTRY))?;
        entries.push(GENESIS_ENTRY.into());
    }
    let mut files = Vec::with_capacity(entries.len());
    for path in entries {
        let stored = staging.join(&path);
        let (sha256, size) = hash_file(&stored)?;
        files.push(ManifestFile {
            mode: mode_of(&stored)?,
            path,
            size,
            sha256,
        });
    }
    Ok((files, heights))
}

/// Reads `manifest.json` and checks every listed file's size and SHA-256, and that the snapshot
/// holds nothing else.
pub fn verify(backup_dir: &Path) -> Result<Manifest, BackupError> {
    let manifest_path = backup_dir.join(MANIFEST_FILE);
    let text = std::fs::read(&manifest_path).map_err(|e| {
        BackupError::Corrupt(format!(
            "{}: {e}; --backup-dir must be a snapshot folder made by `ezchain ops backup`",
            manifest_path.display()
        ))
    })?;
    let manifest: Manifest =
        serde_json::from_slice(&text).map_err(|e| BackupError::Corrupt(format!("{}: {e}", manifest_path.display())))?;
    if manifest.format != MANIFEST_FORMAT {
        return Err(BackupError::Corrupt(format!(
            "manifest format {} (this tool reads {MANIFEST_FORMAT})",
            manifest.format
        )));
    }
    let mut listed = std::collections::BTreeSet::new();
    for file in &manifest.files {
        let relative = Path::new(&file.path);
        if relative.is_absolute() || relative.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(BackupError::Corrupt(format!(
                "manifest lists a path outside the snapshot: {}",
                file.path
            )));
        }
        let stored = backup_dir.join(relative);
        let (sha256, size) =
            hash_file(&stored).map_err(|_| BackupError::Corrupt(format!("{} is missing", file.path)))?;
        if size != file.size || sha256 != file.sha256 {
            return Err(BackupError::Corrupt(format!(
                "{} does not match the manifest (size {size} vs {}, sha256 {sha256} vs {})",
                file.path, file.size, file.sha256
            )));
        }
        listed.insert(relative.to_path_buf());
    }
    for present in walk(backup_dir, &[])? {
        if present != Path::new(MANIFEST_FILE) && !listed.contains(&present) {
            return Err(BackupError::Corrupt(format!(
                "{} is not in the manifest",
                present.display()
            )));
        }
    }
    if !listed.contains(Path::new(CONFIG_ENTRY)) {
        return Err(BackupError::Corrupt(format!("the snapshot has no {CONFIG_ENTRY}")));
    }
    Ok(manifest)
}

pub struct RestoreRequest<'a> {
    pub backup_dir: &'a Path,
    pub config_path: &'a Path,
    pub force: bool,
    pub wallet: WalletChoice,
}

/// What restore does with a wallet that holds payments its snapshot copy lacks. Such payments
/// cannot be rebuilt from the chain (the chain keeps bundle hashes, not the transfers and
/// witnesses), so rolling the wallet back loses them: the values it sent look spendable again
/// but are not, and the values it received are gone from its view.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WalletChoice {
    /// Refuse (`wallet_ahead`), naming the newer payments.
    #[default]
    Refuse,
    /// Keep every current wallet as it is; restore everything else.
    Keep,
    /// Roll the wallets back anyway (the replaced state stays beside the data folder).
    Discard,
}

#[derive(Debug, Serialize)]
pub struct RestoreReport {
    pub status: &'static str,
    pub restored_from: PathBuf,
    pub config_path: PathBuf,
    pub data_dir: PathBuf,
    pub files: usize,
    /// Where the state replaced by the restore was moved (delete it once satisfied).
    pub previous_state: Vec<PathBuf>,
    /// What was kept from the target instead of rolled back: node data folders (chain,
    /// mailbox, consensus WAL) and the services' replay/idempotency databases.
    pub kept: Vec<PathBuf>,
    pub heights_at_backup: BTreeMap<String, u64>,
    /// Payments the restored wallets no longer know (`--discard-wallet-changes`).
    pub discarded_wallet_payments: Vec<String>,
    /// Each restored validator and the height at or below which it will not sign (its
    /// `sign_state.json`); at start it also looks for its key in recent commits it did not sign.
    pub validators_sign_above: BTreeMap<String, u64>,
}

/// The sign record of every local validator under `data_dir`: node name → the height its key
/// has signed up to.
fn sign_records(data_dir: &Path) -> BTreeMap<String, u64> {
    node_data_dirs(data_dir)
        .into_iter()
        .filter_map(|relative| {
            let text =
                std::fs::read_to_string(data_dir.join(&relative).join(ezchain_node::sign_guard::SIGN_STATE_FILE))
                    .ok()?;
            let record: ezchain_node::sign_guard::SignRecord = serde_json::from_str(&text).ok()?;
            let node = relative.parent()?.file_name()?.to_string_lossy().into_owned();
            Some((node, record.height))
        })
        .collect()
}

/// The wallet folders (relative to the data folder) a snapshot holds: those with a
/// `wallet_state/wallet.redb`.
fn snapshot_wallets(manifest: &Manifest) -> Vec<PathBuf> {
    let suffix = "wallet_state/wallet.redb";
    manifest
        .files
        .iter()
        .filter_map(|f| f.path.strip_prefix(&format!("{DATA_ENTRY}/")))
        .filter_map(|path| path.strip_suffix(suffix))
        .map(|base| PathBuf::from(base.trim_end_matches('/')))
        .collect()
}

/// Payments (sends and accepted receipts) in the current wallet under `current` that the
/// snapshot's wallet under `snapshot` does not have, described for a person.
fn newer_payments(snapshot: &Path, current: &Path) -> Result<Vec<String>, BackupError> {
    use ezchain_wallet::history::{TxKind, TxStatus};
    use ezchain_wallet::store::WalletStore;
    let read = |path: &Path| {
        WalletStore::history_of_file(&path.join(ezchain_wallet::wallet::STATE_DIR).join("wallet.redb"))
            .map_err(|e| BackupError::Config(format!("{}: {e}", path.display())))
    };
    let known: std::collections::BTreeSet<u64> = read(snapshot)?.iter().map(|r| r.id).collect();
    Ok(read(current)?
        .into_iter()
        .filter(|r| !known.contains(&r.id))
        .filter(|r| !matches!(r.status, TxStatus::Failed | TxStatus::Rejected))
        .map(|r| match r.kind {
            TxKind::Send => format!(
                "sent {} to {} ({})",
                r.amount,
                r.counterparty,
                format!("{:?}", r.status).to_lowercase()
            ),
            TxKind::Receive => format!("received {} from {}", r.amount, r.counterparty),
        })
        .collect())
}

/// Why restore must not touch `data_dir` now: a local node runs, or a process holds one of its
/// databases (a running `ezchain serve` holds `service.redb`).
/// The process holding `path` open, with its command line (Linux: its `/proc/<pid>/fd`).
fn holder_of(path: &Path) -> Option<(u32, String)> {
    let target = std::fs::canonicalize(path).ok()?;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        if fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|link| link == target))
        {
            let command = std::fs::read(entry.path().join("cmdline"))
                .map(|bytes| {
                    String::from_utf8_lossy(&bytes)
                        .split('\0')
                        .filter(|word| !word.is_empty())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            return Some((pid, command));
        }
    }
    None
}

/// What runs on `data_dir` (a local node, or the process holding one of its databases), and how
/// to stop it.
fn running_in(data_dir: &Path) -> Result<Option<BackupError>, BackupError> {
    if !data_dir.is_dir() {
        return Ok(None);
    }
    let testnet = data_dir.join("testnet");
    if testnet.is_dir()
        && let Ok(net) = Localnet::new(&testnet)
        && let Ok(nodes) = net.nodes()
    {
        for node in &nodes {
            if let Some(pid) = net.running_pid(node) {
                return Ok(Some(BackupError::Running {
                    what: format!("local node {} (pid {pid})", node.name),
                    stop: "`ezchain node stop` (it stops every local node)".into(),
                }));
            }
        }
    }
    for relative in walk(data_dir, &[])? {
        if relative.extension().is_some_and(|e| e == "redb") {
            let path = data_dir.join(&relative);
            if let Err(ExportError::Busy(_)) = open_unheld(&path) {
                let running = match holder_of(&path) {
                    Some((pid, command)) => BackupError::Running {
                        what: format!("pid {pid} (`{command}`), which holds {}", path.display()),
                        stop: format!(
                            "`kill {pid}` (SIGTERM; an ezchain process stops cleanly on it) or Ctrl-C where it runs"
                        ),
                    },
                    None => BackupError::Running {
                        what: format!("the process holding {}", path.display()),
                        stop: "`ezchain node stop`, then stop `ezchain serve` (Ctrl-C or SIGTERM)".into(),
                    },
                };
                return Ok(Some(running));
            }
        }
    }
    Ok(None)
}

/// The node data folders (`<home>/<data_dir>`) under a data folder's testnet, relative to it.
fn node_data_dirs(data_dir: &Path) -> Vec<PathBuf> {
    let testnet = data_dir.join("testnet");
    let Ok(entries) = std::fs::read_dir(&testnet) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let home = entry.path();
        if let Ok(config) = NodeConfig::load(&home) {
            let dir = normal(&config.resolve(&home, &config.data_dir));
            if let Ok(relative) = dir.strip_prefix(data_dir)
                && dir.is_dir()
            {
                found.push(relative.to_path_buf());
            }
        }
    }
    found.sort();
    found
}

/// `path`, or `path-2`, `path-3`, … — the first that does not exist (two restores in one second
/// must not overwrite each other's saved state).
fn unused(path: PathBuf) -> PathBuf {
    if !path.exists() {
        return path;
    }
    (2..)
        .map(|n| PathBuf::from(format!("{}-{n}", path.display())))
        .find(|candidate| !candidate.exists())
        .unwrap_or(path)
}

fn same_file_contents(a: &Path, b: &Path) -> bool {
    matches!((std::fs::read(a), std::fs::read(b)), (Ok(x), Ok(y)) if x == y)
}

/// Restores a snapshot.
pub fn restore(request: &RestoreRequest) -> Result<RestoreReport, BackupError> {
    let backup_dir = normal(request.backup_dir);
    let manifest = verify(&backup_dir)?;
    let config_path = normal(request.config_path);
    // The snapshot's settings, with relative paths resolved where they will live.
    let mut restored =
        AppConfig::load(&backup_dir.join(CONFIG_ENTRY)).map_err(|e| BackupError::Config(e.to_string()))?;
    restored.base_dir = config_path.parent().map(Path::to_path_buf).unwrap_or_default();
    let target = Layout::of(&config_path, &restored);
    let data_dir = normal(&target.data_dir);
    let current = if config_path.is_file() {
        AppConfig::load(&config_path).ok()
    } else {
        None
    };
    let mut watched = vec![data_dir.clone()];
    if let Some(current) = &current {
        watched.push(normal(&current.data_dir()));
    }
    for dir in &watched {
        if let Some(what) = running_in(dir)? {
            return Err(what);
        }
    }
    if !request.force {
        if config_path.exists() {
            return Err(BackupError::TargetExists(config_path));
        }
        if data_dir.exists() {
            return Err(BackupError::TargetExists(data_dir));
        }
    }
    // Node data that exists on the target stays (same genesis only: another testnet's chain
    // would not open).
    let same_network = same_file_contents(
        &data_dir.join("testnet").join("genesis.json"),
        &backup_dir.join(DATA_ENTRY).join("testnet").join("genesis.json"),
    );
    let node_dirs = if same_network {
        node_data_dirs(&data_dir)
    } else {
        Vec::new()
    };
    // Wallets that moved on since the snapshot: refuse, keep or discard, before anything moves.
    // A node's own wallet (the faucet's) goes with its node's data folder.
    let mut wallet_keep = Vec::new();
    let mut discarded = Vec::new();
    for base in snapshot_wallets(&manifest) {
        if node_dirs.iter().any(|dir| base.starts_with(dir)) {
            continue;
        }
        let wallet_dir = data_dir.join(&base);
        if !wallet_dir
            .join(ezchain_wallet::wallet::STATE_DIR)
            .join("wallet.redb")
            .is_file()
        {
            continue;
        }
        if request.wallet == WalletChoice::Keep {
            for part in [ezchain_wallet::wallet::STATE_DIR, "tx_history.json", "wallet.json"] {
                if wallet_dir.join(part).exists() {
                    wallet_keep.push(base.join(part));
                }
            }
            continue;
        }
        let newer = newer_payments(&backup_dir.join(DATA_ENTRY).join(&base), &wallet_dir)?;
        if newer.is_empty() {
            continue;
        }
        let place = if base.as_os_str().is_empty() {
            "the wallet".to_string()
        } else {
            format!("the wallet in {}", base.display())
        };
        if request.wallet == WalletChoice::Refuse {
            return Err(BackupError::WalletAhead(format!(
                "{place} has {} payment(s) the snapshot does not (latest: {}); rolling it back would \
                 lose them, because the chain keeps no transfers or witnesses. Rerun with \
                 --keep-wallet to keep the wallets as they are, or --discard-wallet-changes to roll \
                 them back anyway (the replaced state is kept beside the data folder)",
                newer.len(),
                newer.last().map(String::as_str).unwrap_or("")
            )));
        }
        discarded.extend(newer.into_iter().map(|payment| format!("{place}: {payment}")));
    }
    let parent = data_dir
        .parent()
        .ok_or_else(|| BackupError::BadInput(format!("{} has no parent folder", data_dir.display())))?
        .to_path_buf();
    std::fs::create_dir_all(&parent).map_err(io(&parent))?;
    let (stamp, _) = utc_now();
    let dir_name = data_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".into());
    let staging = parent.join(format!(".{dir_name}.restore-{stamp}-{}", std::process::id()));
    let previous = unused(parent.join(format!("{dir_name}.pre-restore-{stamp}")));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io(&staging))?;
    }
    create_private_dir(&staging)?;

    // 1. The snapshot's data folder, complete, in a staging folder beside the target.
    let staged = (|| -> Result<Vec<PathBuf>, BackupError> {
        for file in &manifest.files {
            if let Some(relative) = file.path.strip_prefix(&format!("{DATA_ENTRY}/")) {
                let to = staging.join(relative);
                copy_file(&backup_dir.join(&file.path), &to)?;
                set_mode(&to, file.mode)?;
            }
        }
        // What stays from the target: kept wallets, node data folders, the replay and
        // idempotency records, which only grow (the current ones include the snapshot's;
        // rolling them back would reopen used nonces and forget answered payments), and the
        // audit log with its head: an audit log is never rolled back.
        let mut kept = wallet_keep.clone();
        kept.extend(node_dirs.iter().cloned());
        if data_dir.is_dir() {
            kept.extend(walk(&data_dir, &[])?.into_iter().filter(|relative| {
                relative
                    .file_name()
                    .is_some_and(|n| n == "service.redb" || is_audit_file(n))
            }));
        }
        for relative in &kept {
            let staged = staging.join(relative);
            if staged.is_dir() {
                std::fs::remove_dir_all(&staged).map_err(io(&staged))?;
            } else if staged.exists() {
                std::fs::remove_file(&staged).map_err(io(&staged))?;
            }
        }
        Ok(kept)
    })();
    let kept = match staged {
        Ok(kept) => kept,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };

    // Everything else staged too, before anything is swapped (the snapshot itself may live in
    // the folder about to move aside): single files beside their targets, a log folder outside
    // the data folder beside it.
    let log_dir = normal(&target.log_dir);
    let staging_logs = PathBuf::from(format!("{}.restore-{stamp}-{}", log_dir.display(), std::process::id()));
    let mut singles = Vec::new();
    let staged_rest = (|| -> Result<(), BackupError> {
        for (entry, to) in [
            (CONFIG_ENTRY, config_path.clone()),
            (TOKEN_ENTRY, normal(&target.token)),
            (GENESIS_ENTRY, normal(&target.genesis)),
        ] {
            let Some(file) = manifest.files.iter().find(|f| f.path == entry) else {
                continue;
            };
            let temp = to.with_extension("restore-tmp");
            copy_file(&backup_dir.join(entry), &temp)?;
            set_mode(&temp, file.mode)?;
            singles.push((temp, to));
        }
        for file in &manifest.files {
            if let Some(relative) = file.path.strip_prefix(&format!("{LOG_ENTRY}/")) {
                copy_file(&backup_dir.join(&file.path), &staging_logs.join(relative))?;
            }
        }
        // The current audit log stays (it is never rolled back), over the snapshot's copy.
        if staging_logs.exists() && log_dir.is_dir() {
            for relative in walk(&log_dir, &[])? {
                if relative.file_name().is_some_and(is_audit_file) {
                    copy_file(&log_dir.join(&relative), &staging_logs.join(&relative))?;
                }
            }
        }
        Ok(())
    })();
    if let Err(e) = staged_rest {
        for (temp, _) in &singles {
            let _ = std::fs::remove_file(temp);
        }
        let _ = std::fs::remove_dir_all(&staging_logs);
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }

    // 2. The swap: old folder aside, kept node data into the new one, new folder in place.
    let had_data = data_dir.exists();
    if had_data {
        std::fs::rename(&data_dir, &previous).map_err(io(&data_dir))?;
    }
    let mut moved = Vec::new();
    let swap = (|| -> Result<(), BackupError> {
        for relative in &kept {
            let to = staging.join(relative);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            std::fs::rename(previous.join(relative), &to).map_err(io(&to))?;
            moved.push(relative.clone());
        }
        std::fs::rename(&staging, &data_dir).map_err(io(&data_dir))
    })();
    if let Err(e) = swap {
        for relative in &moved {
            let _ = std::fs::rename(staging.join(relative), previous.join(relative));
        }
        if had_data {
            let _ = std::fs::rename(&previous, &data_dir);
        }
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    let mut previous_state = Vec::new();
    if had_data {
        previous_state.push(previous.clone());
    }

    // 3. Single files and the outside log folder: each replaced by rename, the old one kept.
    for (temp, to) in singles {
        if to.exists() {
            let old = unused(PathBuf::from(format!("{}.pre-restore-{stamp}", to.display())));
            std::fs::rename(&to, &old).map_err(io(&to))?;
            previous_state.push(old);
        }
        std::fs::rename(&temp, &to).map_err(io(&to))?;
    }
    if staging_logs.exists() {
        if log_dir.exists() {
            let old = unused(PathBuf::from(format!("{}.pre-restore-{stamp}", log_dir.display())));
            std::fs::rename(&log_dir, &old).map_err(io(&log_dir))?;
            previous_state.push(old);
        }
        std::fs::rename(&staging_logs, &log_dir).map_err(io(&log_dir))?;
    }
    // The service chains this as a `restored` event at its next start.
    let marker = target.restored_marker.clone();
    let detail = json!({ "snapshot": backup_dir, "restored_at": stamp, "files": manifest.files.len() });
    std::fs::write(&marker, detail.to_string()).map_err(io(&marker))?;
    Ok(RestoreReport {
        status: "ok",
        restored_from: backup_dir,
        config_path,
        data_dir: data_dir.clone(),
        files: manifest.files.len(),
        previous_state,
        kept: kept.iter().map(|relative| data_dir.join(relative)).collect(),
        heights_at_backup: manifest.heights,
        discarded_wallet_payments: discarded,
        validators_sign_above: sign_records(&data_dir),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ezchain_node::mailbox::MailboxConfig;
    use ezchain_protocol::{Address, Hash32};

    fn write(path: &Path, text: &str, mode: u32) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
        set_mode(path, mode).expect("mode");
    }

    /// An installation: config, wallet file, history, token, logs, a pid file and a mailbox
    /// database holding one package.
    fn installation(root: &Path) -> PathBuf {
        let config_path = root.join("ezchain.yaml");
        AppConfig::default().save(&config_path).expect("config");
        let data = root.join(".ezchain");
        write(&data.join("wallet.json"), "{\"keystore\":\"encrypted\"}", 0o600);
        write(&data.join("tx_history.json"), "[]", 0o644);
        write(&data.join("api.token"), &"ab".repeat(32), 0o600);
        write(&data.join("logs").join("service_audit.log"), "line\n", 0o644);
        write(
            &data.join("testnet").join("validator-0").join("node.pid"),
            "123\n",
            0o644,
        );
        let mailbox = Mailbox::open(&data.join("mailbox.redb"), MailboxConfig::default()).expect("mailbox");
        mailbox
            .put(&Address([7; 20]), &Hash32([1; 32]), b"package", 1)
            .expect("put");
        config_path
    }

    fn take(config_path: &Path, out: &Path, label: &str) -> BackupReport {
        backup(&BackupRequest {
            config_path,
            out_dir: out,
            label: Some(label),
            tool_version: "test",
        })
        .expect("backup")
    }

    #[test]
    fn a_snapshot_lists_every_file_with_its_hash_keeps_modes_and_skips_pid_files() {
        let dir = tempfile::tempdir().expect("temp");
        let config = installation(dir.path());
        let report = take(&config, &dir.path().join("backups"), "pre-rc");
        assert!(
            report
                .backup_dir
                .file_name()
                .expect("name")
                .to_string_lossy()
                .ends_with("-pre-rc")
        );
        let manifest = verify(&report.backup_dir).expect("verifies");
        let paths: Vec<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
        for expected in [
            "ezchain.yaml",
            "data_dir/wallet.json",
            "data_dir/tx_history.json",
            "data_dir/api.token",
            "data_dir/logs/service_audit.log",
            "data_dir/mailbox.redb",
        ] {
            assert!(paths.contains(&expected), "{expected} missing from {paths:?}");
        }
        assert!(!paths.iter().any(|p| p.ends_with(".pid")), "pid files are not state");
        let wallet = manifest
            .files
            .iter()
            .find(|f| f.path == "data_dir/wallet.json")
            .expect("wallet");
        assert_eq!(wallet.mode, 0o600);
        assert_eq!(
            mode_of(&report.backup_dir.join("data_dir/wallet.json")).expect("mode"),
            0o600
        );
        assert_eq!(mode_of(&report.backup_dir).expect("mode"), 0o700);
        assert_eq!(manifest.label.as_deref(), Some("pre-rc"));
        // The exported mailbox is a database holding the package, not a raw copy.
        let copy = Mailbox::open(
            &report.backup_dir.join("data_dir/mailbox.redb"),
            MailboxConfig::default(),
        )
        .expect("the copy opens");
        assert_eq!(
            copy.items(&Address([7; 20]), 10, false, 1 << 20).expect("items").len(),
            1
        );
    }

    #[test]
    fn a_damaged_snapshot_is_refused_before_anything_is_touched() {
        let dir = tempfile::tempdir().expect("temp");
        let config = installation(dir.path());
        let report = take(&config, &dir.path().join("backups"), "x");
        let history = report.backup_dir.join("data_dir/tx_history.json");
        std::fs::write(&history, "[1]").expect("tamper");
        let target = dir.path().join("elsewhere").join("ezchain.yaml");
        let refused = restore(&RestoreRequest {
            backup_dir: &report.backup_dir,
            config_path: &target,
            force: true,
            wallet: WalletChoice::Refuse,
        });
        assert!(matches!(refused, Err(BackupError::Corrupt(_))), "{refused:?}");
        assert!(!target.exists() && !dir.path().join("elsewhere/.ezchain").exists());
        std::fs::write(&history, "[]").expect("undo");
        verify(&report.backup_dir).expect("intact again");
        std::fs::write(report.backup_dir.join("data_dir/extra"), "x").expect("extra");
        assert!(matches!(verify(&report.backup_dir), Err(BackupError::Corrupt(_))));
        std::fs::remove_file(report.backup_dir.join("data_dir/extra")).expect("rm");
        std::fs::remove_file(report.backup_dir.join(MANIFEST_FILE)).expect("rm");
        assert!(matches!(verify(&report.backup_dir), Err(BackupError::Corrupt(_))));
    }

    #[test]
    fn restore_needs_force_to_replace_keeps_the_old_state_and_refuses_a_held_database() {
        let dir = tempfile::tempdir().expect("temp");
        let config = installation(dir.path());
        let report = take(&config, &dir.path().join("backups"), "x");
        let target_root = dir.path().join("restored");
        let target = target_root.join("ezchain.yaml");
        let first = restore(&RestoreRequest {
            backup_dir: &report.backup_dir,
            config_path: &target,
            force: false,
            wallet: WalletChoice::Refuse,
        })
        .expect("a fresh target needs no --force");
        assert!(first.previous_state.is_empty());
        let data = target_root.join(".ezchain");
        assert_eq!(
            std::fs::read_to_string(data.join("tx_history.json")).expect("read"),
            "[]"
        );
        assert_eq!(mode_of(&data.join("wallet.json")).expect("mode"), 0o600);
        let again = restore(&RestoreRequest {
            backup_dir: &report.backup_dir,
            config_path: &target,
            force: false,
            wallet: WalletChoice::Refuse,
        });
        assert!(matches!(again, Err(BackupError::TargetExists(_))), "{again:?}");
        // The wallet moves on after the snapshot; a forced restore rolls it back and keeps
        // what it replaced.
        std::fs::write(data.join("tx_history.json"), "[\"later\"]").expect("write");
        let forced = restore(&RestoreRequest {
            backup_dir: &report.backup_dir,
            config_path: &target,
            force: true,
            wallet: WalletChoice::Refuse,
        })
        .expect("forced");
        assert_eq!(
            std::fs::read_to_string(data.join("tx_history.json")).expect("read"),
            "[]"
        );
        let previous = forced
            .previous_state
            .iter()
            .find(|p| p.is_dir())
            .expect("the old data folder is kept");
        assert_eq!(
            std::fs::read_to_string(previous.join("tx_history.json")).expect("read"),
            "[\"later\"]"
        );
        // Another forced restore at once (often in the same second) keeps its own saved state.
        let again = restore(&RestoreRequest {
            backup_dir: &report.backup_dir,
            config_path: &target,
            force: true,
            wallet: WalletChoice::Refuse,
        })
        .expect("forced again");
        let second = again.previous_state.iter().find(|p| p.is_dir()).expect("saved");
        assert_ne!(second, previous);
        assert!(previous.is_dir() && second.is_dir(), "both saved states remain");
        assert_eq!(
            std::fs::read_to_string(previous.join("tx_history.json")).expect("read"),
            "[\"later\"]"
        );
        // A process holding a database of the target: refused, nothing changed.
        let held = Mailbox::open(&data.join("mailbox.redb"), MailboxConfig::default()).expect("hold");
        std::fs::write(data.join("tx_history.json"), "[\"held\"]").expect("write");
        let refused = restore(&RestoreRequest {
            backup_dir: &report.backup_dir,
            config_path: &target,
            force: true,
            wallet: WalletChoice::Refuse,
        });
        let Err(BackupError::Running { what, stop }) = refused else {
            panic!("{refused:?}");
        };
        // The holder is named by pid (here: this test process) with the command to stop it.
        let me = std::process::id();
        assert!(what.contains(&format!("pid {me}")), "{what}");
        assert!(stop.contains(&format!("kill {me}")), "{stop}");
        assert_eq!(
            std::fs::read_to_string(data.join("tx_history.json")).expect("read"),
            "[\"held\"]"
        );
        drop(held);
    }

    #[test]
    fn a_restore_never_rolls_the_audit_log_back_and_leaves_a_restored_marker() {
        let dir = tempfile::tempdir().expect("temp");
        let config = installation(dir.path());
        let data = dir.path().join(".ezchain");
        write(
            &data.join(ezchain_wallet::config::AUDIT_HEAD_FILE),
            "{\"head\":1}",
            0o600,
        );
        let report = take(&config, &dir.path().join("backups"), "x");
        // The log grows after the snapshot.
        let audit = data.join("logs").join(ezchain_wallet::config::AUDIT_LOG_FILE);
        write(&audit, "line\nline 2\nline 3\n", 0o644);
        write(
            &data.join(ezchain_wallet::config::AUDIT_HEAD_FILE),
            "{\"head\":3}",
            0o600,
        );
        restore(&RestoreRequest {
            backup_dir: &report.backup_dir,
            config_path: &config,
            force: true,
            wallet: WalletChoice::Refuse,
        })
        .expect("restore");
        assert_eq!(
            std::fs::read_to_string(&audit).expect("read"),
            "line\nline 2\nline 3\n",
            "the current audit log stays"
        );
        assert_eq!(
            std::fs::read_to_string(data.join(ezchain_wallet::config::AUDIT_HEAD_FILE)).expect("read"),
            "{\"head\":3}",
            "and so does its head"
        );
        let marker: Value = serde_json::from_str(
            &std::fs::read_to_string(data.join(ezchain_wallet::config::AUDIT_RESTORED_MARKER)).expect("marker"),
        )
        .expect("json");
        assert_eq!(marker["snapshot"], json!(report.backup_dir));
    }

    #[test]
    fn snapshots_kept_inside_the_data_folder_are_not_backed_up_again() {
        let dir = tempfile::tempdir().expect("temp");
        let config = installation(dir.path());
        let inside = dir.path().join(".ezchain").join("backups");
        let first = take(&config, &inside, "one");
        let second = take(&config, &inside, "two");
        let manifest = verify(&second.backup_dir).expect("verifies");
        assert!(
            manifest.files.iter().all(|f| !f.path.contains("backups")),
            "a snapshot must not contain the snapshots beside it: {:?}",
            manifest.files
        );
        assert_eq!(first.files, second.files);
    }

    #[test]
    fn a_snapshot_kept_inside_the_data_folder_restores_over_it() {
        let dir = tempfile::tempdir().expect("temp");
        let config = installation(dir.path());
        let data = dir.path().join(".ezchain");
        let report = take(&config, &data.join("backups"), "inside");
        std::fs::write(data.join("tx_history.json"), "[\"later\"]").expect("write");
        let restored = restore(&RestoreRequest {
            backup_dir: &report.backup_dir,
            config_path: &config,
            force: true,
            wallet: WalletChoice::Refuse,
        })
        .expect("the snapshot moves aside with the old folder, but everything was staged first");
        assert_eq!(
            std::fs::read_to_string(data.join("tx_history.json")).expect("read"),
            "[]"
        );
        assert!(AppConfig::load(&config).is_ok(), "the config was restored too");
        assert!(restored.previous_state.iter().any(|p| p.join("backups").is_dir()));
    }

    #[test]
    fn labels_are_checked_and_a_missing_data_folder_is_an_error() {
        let dir = tempfile::tempdir().expect("temp");
        let config = dir.path().join("ezchain.yaml");
        AppConfig::default().save(&config).expect("config");
        let out = dir.path().join("backups");
        for label in ["", "../up", ".hidden", "a/b", "space here"] {
            let refused = backup(&BackupRequest {
                config_path: &config,
                out_dir: &out,
                label: Some(label),
                tool_version: "test",
            });
            assert!(matches!(refused, Err(BackupError::BadInput(_))), "{label}: {refused:?}");
        }
        let refused = backup(&BackupRequest {
            config_path: &config,
            out_dir: &out,
            label: None,
            tool_version: "test",
        });
        assert!(matches!(refused, Err(BackupError::BadInput(_))), "{refused:?}");
        assert!(!out.exists() || is_empty(&out));
    }

    fn is_empty(dir: &Path) -> bool {
        std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_none())
    }
}
