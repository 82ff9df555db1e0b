//! `ezchain ops security-gate`: real checks of a wallet installation and the source tree, one
//! line each — API bound to loopback, secret files 0600, token strength, no unencrypted key or
//! mnemonic lying around, sane limits, keystore cost, and the threat model document.

use ezchain_wallet::AppConfig;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The production floor of the keystore's scrypt cost (N = 2^18).
pub const KDF_FLOOR_LOG_N: u8 = 18;
/// Known public test vectors that may appear in the tree (one per line, `#` comments).
pub const ALLOWLIST_FILE: &str = ".security-allowlist";
/// Files larger than this are not scanned (databases, binaries).
const MAX_SCANNED_BYTES: u64 = 4 * 1024 * 1024;
/// Files that hold unencrypted keys by design: an unattended node must sign without a person.
/// (`faucet_key.json` is the plain faucet key of homes made before the keystore.)
const SERVICE_KEY_FILES: &[&str] = &[
    "node_key.json",
    "faucet_keystore.json",
    "faucet_password",
    "faucet_key.json",
];
/// Topics the threat model must cover.
pub const THREAT_TOPICS: &[&str] = &["replay", "duplicate", "malformed", "key exposure", "double spend"];

#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub passed: bool,
    pub detail: String,
}

fn check(name: &'static str, problems: Vec<String>, ok: &str) -> Check {
    Check {
        name,
        passed: problems.is_empty(),
        detail: if problems.is_empty() {
            ok.to_string()
        } else {
            problems.join("; ")
        },
    }
}

/// Every file under `root`, skipping build output and version control.
fn walk(root: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        match entry.file_type() {
            Ok(kind) if kind.is_dir() && !matches!(name.as_str(), "target" | ".git" | "node_modules") => {
                walk(&path, out);
            }
            Ok(kind) if kind.is_file() => out.push(path),
            _ => {}
        }
    }
}

/// Secrets in `text`: PEM private-key blocks, and BIP-39 phrases — 12 or 24 list words in a row,
/// lower case, separated by single spaces (as a phrase is written down), whose checksum holds.
pub fn find_secrets(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    if text.lines().any(|line| {
        let line = line.trim();
        line.starts_with("-----BEGIN ") && line.ends_with("PRIVATE KEY-----")
    }) {
        found.push("a PEM private key".to_string());
    }
    let list = bip39::Language::English.word_list();
    // Runs of `[a-z]+( [a-z]+)*`: any other character ends a run.
    let mut runs: Vec<Vec<&str>> = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    let mut word_start: Option<usize> = None;
    let mut previous = '\0';
    for (index, c) in text.char_indices().chain(std::iter::once((text.len(), '\0'))) {
        if c.is_ascii_lowercase() {
            word_start.get_or_insert(index);
        } else {
            if let Some(start) = word_start.take() {
                current.push(&text[start..index]);
            }
            let continues = c == ' ' && previous.is_ascii_lowercase();
            if !continues && !current.is_empty() {
                runs.push(std::mem::take(&mut current));
            }
        }
        previous = c;
    }
    for run in runs {
        let in_list: Vec<bool> = run.iter().map(|w| list.binary_search(w).is_ok()).collect();
        for size in [24, 12] {
            for start in 0..run.len().saturating_sub(size - 1) {
                if in_list[start..start + size].iter().all(|b| *b) {
                    let phrase = run[start..start + size].join(" ");
                    if bip39::Mnemonic::parse(phrase.as_str()).is_ok() && !found.contains(&phrase) {
                        found.push(phrase);
                    }
                }
            }
        }
    }
    found
}

fn allowlist(repo: Option<&Path>) -> Vec<String> {
    repo.and_then(|repo| std::fs::read_to_string(repo.join(ALLOWLIST_FILE)).ok())
        .map(|text| {
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_lowercase)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(unix)]
fn group_or_world_readable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
}

#[cfg(not(unix))]
fn group_or_world_readable(_: &Path) -> bool {
    false
}

/// Runs every check of this installation (config, data folder, token, keystore, backups); with
/// `repo`, a source tree, also the source checks (its files scanned for secrets, the threat
/// model in its `docs/SECURITY.md`). An operator's installation has no source tree, so those
/// run only when one is named. `allow_test_kdf` accepts a keystore cost below the production
/// floor (test setups).
pub fn security_gate(
    config: &AppConfig,
    repo: Option<&Path>,
    backups: Option<&Path>,
    allow_test_kdf: bool,
) -> Vec<Check> {
    let data_dir = config.data_dir();
    let mut checks = Vec::new();

    let host_ok = config
        .app
        .api_host
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback());
    checks.push(check(
        "api_loopback",
        if host_ok {
            Vec::new()
        } else {
            vec![format!(
                "app.api_host is {} (not a loopback address)",
                config.app.api_host
            )]
        },
        "the API listens on loopback only",
    ));

    let mut data_files = Vec::new();
    walk(&data_dir, &mut data_files);
    let secret_names = [
        "wallet.json",
        "api.token",
        "admin.token",
        "password",
        "node_key.json",
        "faucet_keystore.json",
        "faucet_password",
        "faucet_key.json",
    ];
    let token_file = config.token_file();
    let loose: Vec<String> = data_files
        .iter()
        .chain(std::iter::once(&token_file).filter(|p| p.exists()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| secret_names.contains(&n.to_string_lossy().as_ref()))
        })
        .filter(|p| group_or_world_readable(p))
        .map(|p| format!("{} is readable by others (chmod 600)", p.display()))
        .collect();
    checks.push(check(
        "secret_files_0600",
        loose,
        "keystores, keys, token and passwords are 0600",
    ));

    let token_problems = match std::fs::read_to_string(&token_file) {
        Ok(token) => {
            let token = token.trim();
            if token.len() >= 32 && token.chars().all(|c| c.is_ascii_hexdigit()) {
                Vec::new()
            } else {
                vec![format!(
                    "{} holds a weak token; run `ezchain auth rotate-token`",
                    token_file.display()
                )]
            }
        }
        Err(_) => Vec::new(),
    };
    checks.push(check(
        "token_strength",
        token_problems,
        "the API token has at least 128 random bits",
    ));

    let allowed = allowlist(repo);
    let mut scanned = data_files.clone();
    if let Some(backups) = backups {
        walk(backups, &mut scanned);
    }
    if let Some(repo) = repo {
        walk(repo, &mut scanned);
    }
    let mut leaks = Vec::new();
    for path in &scanned {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if SERVICE_KEY_FILES.contains(&name.as_str())
            || std::fs::metadata(path).map_or(true, |m| m.len() > MAX_SCANNED_BYTES)
        {
            continue;
        }
        let Ok(bytes) = std::fs::read(path) else { continue };
        let text = String::from_utf8_lossy(&bytes);
        for secret in find_secrets(&text) {
            if !allowed
                .iter()
                .any(|a| secret.contains(a.as_str()) || a.contains(secret.as_str()))
            {
                let what = if secret.contains("PEM") {
                    secret
                } else {
                    "a BIP-39 mnemonic".to_string()
                };
                leaks.push(format!("{} contains {what}", path.display()));
            }
        }
    }
    checks.push(check(
        "no_plaintext_secrets",
        leaks,
        "no unencrypted private key or mnemonic in the data folder, backups or source tree",
    ));

    let mut limits = Vec::new();
    if config.security.max_payload_bytes > 1024 * 1024 {
        limits.push(format!(
            "security.max_payload_bytes {} is over 1 MiB",
            config.security.max_payload_bytes
        ));
    }
    if config.security.max_tx_amount == 0 {
        limits.push("security.max_tx_amount must be positive".into());
    }
    checks.push(check("limits", limits, "payload and amount limits are sane"));

    let mut kdf = Vec::new();
    if !allow_test_kdf {
        if config.wallet.scrypt_log_n < KDF_FLOOR_LOG_N {
            kdf.push(format!(
                "wallet.scrypt_log_n {} is below the production floor {KDF_FLOOR_LOG_N}",
                config.wallet.scrypt_log_n
            ));
        }
        if let Ok(file) = ezchain_wallet::wallet_file::load(&data_dir)
            && file.crypto.kdfparams.n < 1 << KDF_FLOOR_LOG_N
        {
            kdf.push(format!(
                "wallet.json uses scrypt n = {} (< 2^{KDF_FLOOR_LOG_N}); re-import it with a production config",
                file.crypto.kdfparams.n
            ));
        }
    }
    checks.push(check(
        "keystore_cost",
        kdf,
        "keystore scrypt cost at or above the production floor",
    ));

    if let Some(repo) = repo {
        let model_problems = match std::fs::read_to_string(repo.join("docs").join("SECURITY.md")) {
            Ok(text) => {
                let lower = text.to_lowercase();
                THREAT_TOPICS
                    .iter()
                    .filter(|topic| !lower.contains(*topic))
                    .map(|topic| format!("docs/SECURITY.md does not cover {topic}"))
                    .collect()
            }
            Err(_) => vec![format!(
                "{} has no docs/SECURITY.md: is it the source tree?",
                repo.display()
            )],
        };
        checks.push(check(
            "threat_model",
            model_problems,
            "docs/SECURITY.md covers every required topic",
        ));
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_pem_keys_and_valid_mnemonics_only() {
        assert_eq!(find_secrets("-----BEGIN EC PRIVATE KEY-----\nabc").len(), 1);
        let valid = "note: test test test test test test test test test test test junk.";
        assert_eq!(
            find_secrets(valid),
            ["test test test test test test test test test test test junk"]
        );
        // Twelve list words with a failing checksum, and ordinary prose, are not secrets.
        assert!(find_secrets("test test test test test test test test test test test test").is_empty());
        assert!(find_secrets("The wallet keeps every value with the history that proves it.").is_empty());
        // Code that merely names the markers is not a key.
        assert!(find_secrets(r#"text.contains("-----BEGIN") && text.contains("PRIVATE KEY-----")"#).is_empty());
    }

    #[test]
    fn an_installation_without_a_source_tree_passes_on_its_own_checks() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = dir.path().join("ezchain.yaml");
        std::fs::write(&config_path, "wallet:\n  scrypt_log_n: 18\n").expect("config");
        let config = AppConfig::load(&config_path).expect("config");
        let checks = security_gate(&config, None, None, false);
        assert!(checks.iter().all(|c| c.passed), "{checks:?}");
        assert!(
            !checks.iter().any(|c| c.name == "threat_model"),
            "the source checks run only with a source tree"
        );
        // A folder named as the source tree that is not one says so.
        let named = security_gate(&config, Some(dir.path()), None, false);
        let model = named
            .iter()
            .find(|c| c.name == "threat_model")
            .expect("threat model check");
        assert!(
            !model.passed && model.detail.contains("is it the source tree"),
            "{model:?}"
        );
    }

    #[test]
    fn a_loose_wallet_and_a_stray_mnemonic_fail_the_gate() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = dir.path().join("ezchain.yaml");
        std::fs::write(&config_path, "wallet:\n  scrypt_log_n: 18\n").expect("config");
        let config = AppConfig::load(&config_path).expect("config");
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(repo.join("docs")).expect("docs");
        std::fs::write(repo.join("docs/SECURITY.md"), THREAT_TOPICS.join("\n")).expect("model");
        let passed = |checks: &[Check], name: &str| checks.iter().find(|c| c.name == name).is_some_and(|c| c.passed);
        let clean = security_gate(&config, Some(&repo), None, false);
        assert!(clean.iter().all(|c| c.passed), "{clean:?}");

        let data = config.data_dir();
        std::fs::create_dir_all(&data).expect("data");
        std::fs::write(data.join("wallet.json"), "{}").expect("wallet");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(data.join("wallet.json"), std::fs::Permissions::from_mode(0o644)).expect("chmod");
            assert!(!passed(
                &security_gate(&config, Some(&repo), None, false),
                "secret_files_0600"
            ));
        }
        std::fs::write(
            data.join("notes.txt"),
            "backup: test test test test test test test test test test test junk",
        )
        .expect("notes");
        assert!(!passed(
            &security_gate(&config, Some(&repo), None, false),
            "no_plaintext_secrets"
        ));
        // A known public test vector can be allowlisted.
        std::fs::write(
            repo.join(ALLOWLIST_FILE),
            "# BIP-39 test vector\ntest test test test test test test test test test test junk\n",
        )
        .expect("allowlist");
        assert!(passed(
            &security_gate(&config, Some(&repo), None, false),
            "no_plaintext_secrets"
        ));
        std::fs::write(repo.join("docs/SECURITY.md"), "replay only").expect("model");
        assert!(!passed(
            &security_gate(&config, Some(&repo), None, false),
            "threat_model"
        ));
    }
}
