//! `<data_dir>/wallet.json`: the encrypted key of the wallet in this data folder.

use crate::keystore::{KeystoreError, KeystoreFile, generate_mnemonic, key_from_mnemonic};
use ezchain_protocol::{Address, SigningKey};
use std::path::{Path, PathBuf};
use thiserror::Error;

pub const WALLET_FILE: &str = "wallet.json";

#[derive(Debug, Error)]
pub enum WalletFileError {
    #[error("a wallet already exists at {0}; pass --force to replace it (back up its mnemonic first)")]
    Exists(PathBuf),
    #[error("no wallet at {0}; create one with `ezchain wallet create` or `wallet import`")]
    Missing(PathBuf),
    #[error("a new wallet's password needs at least {min} characters")]
    PasswordTooShort { min: usize },
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> WalletFileError + '_ {
    move |source| WalletFileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A new wallet: returns its address and the mnemonic, which is shown once and stored nowhere.
/// Characters a new wallet's password needs at least (a keystore another tool wrote is opened
/// with whatever password it has).
pub const MIN_PASSWORD_CHARS: usize = 8;

pub fn create(
    data_dir: &Path,
    name: &str,
    password: &str,
    log_n: u8,
    force: bool,
) -> Result<(Address, String), WalletFileError> {
    let mnemonic = generate_mnemonic()?;
    let address = import_mnemonic(data_dir, name, &mnemonic, password, log_n, force)?;
    Ok((address, mnemonic))
}

pub fn import_mnemonic(
    data_dir: &Path,
    name: &str,
    mnemonic: &str,
    password: &str,
    log_n: u8,
    force: bool,
) -> Result<Address, WalletFileError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(WalletFileError::PasswordTooShort {
            min: MIN_PASSWORD_CHARS,
        });
    }
    let key = key_from_mnemonic(mnemonic)?;
    write(data_dir, name, &key, password, log_n, force)
}

/// Imports another tool's v3 keystore; `password` must open it.
pub fn import_keystore(
    data_dir: &Path,
    name: &str,
    keystore: &Path,
    password: &str,
    force: bool,
) -> Result<Address, WalletFileError> {
    let text = std::fs::read_to_string(keystore).map_err(io(keystore))?;
    let mut file = KeystoreFile::from_json(&text)?;
    let key = file.decrypt(password)?;
    file.name = Some(name.to_string());
    file.created_at.get_or_insert_with(now_text);
    save(data_dir, &file, force)?;
    Ok(key.address())
}

pub fn write(
    data_dir: &Path,
    name: &str,
    key: &SigningKey,
    password: &str,
    log_n: u8,
    force: bool,
) -> Result<Address, WalletFileError> {
    let path = data_dir.join(WALLET_FILE);
    if path.exists() && !force {
        return Err(WalletFileError::Exists(path));
    }
    let mut file = KeystoreFile::encrypt(key, password, log_n)?;
    file.name = Some(name.to_string());
    file.created_at = Some(now_text());
    save(data_dir, &file, force)?;
    Ok(key.address())
}

/// Now, RFC 3339 in UTC (wallets made before this hold seconds since the epoch instead).
fn now_text() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    crate::history::rfc3339(ms)
}

/// Writes the keystore 0600 through a temporary file, so a crash leaves the old file or the new.
fn save(data_dir: &Path, file: &KeystoreFile, force: bool) -> Result<(), WalletFileError> {
    let path = data_dir.join(WALLET_FILE);
    if path.exists() && !force {
        return Err(WalletFileError::Exists(path));
    }
    std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
    let temp = data_dir.join(format!("{WALLET_FILE}.tmp"));
    let _ = std::fs::remove_file(&temp);
    let text = serde_json::to_string_pretty(file).map_err(|e| io(&path)(std::io::Error::other(e)))?;
    {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut handle = options.open(&temp).map_err(io(&temp))?;
        handle.write_all(text.as_bytes()).map_err(io(&temp))?;
        handle.sync_all().map_err(io(&temp))?;
    }
    std::fs::rename(&temp, &path).map_err(io(&path))
}

pub fn load(data_dir: &Path) -> Result<KeystoreFile, WalletFileError> {
    let path = data_dir.join(WALLET_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(WalletFileError::Missing(path)),
        Err(e) => return Err(io(&path)(e)),
    };
    Ok(KeystoreFile::from_json(&text)?)
}

/// The wallet's key, decrypted with `password`.
pub fn unlock(data_dir: &Path, password: &str) -> Result<SigningKey, WalletFileError> {
    Ok(load(data_dir)?.decrypt(password)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_refuses_to_overwrite_without_force() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (address, mnemonic) = create(dir.path(), "main", "password-1", 4, false).expect("create");
        assert!(matches!(
            create(dir.path(), "main", "password-1", 4, false),
            Err(WalletFileError::Exists(_))
        ));
        assert_eq!(unlock(dir.path(), "password-1").expect("unlock").address(), address);
        let text = std::fs::read_to_string(dir.path().join(WALLET_FILE)).expect("read");
        assert!(!text.contains(mnemonic.split(' ').next().expect("a word")) || !text.contains(&mnemonic));
        assert!(!text.contains(&mnemonic), "the mnemonic is never stored");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(WALLET_FILE))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // The mnemonic restores the same address; --force replaces.
        let other = create(dir.path(), "other", "password-2", 4, true).expect("force").0;
        assert_ne!(other, address);
        let restored = import_mnemonic(dir.path(), "main", &mnemonic, "password-3", 4, true).expect("import");
        assert_eq!(restored, address);
        assert!(matches!(
            unlock(dir.path(), "password-1"),
            Err(WalletFileError::Keystore(KeystoreError::WrongPassword))
        ));
    }

    #[test]
    fn a_new_wallet_needs_a_password_of_eight_characters() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(matches!(
            create(dir.path(), "main", "seven77", 4, false),
            Err(WalletFileError::PasswordTooShort { min: 8 })
        ));
        assert!(
            matches!(load(dir.path()), Err(WalletFileError::Missing(_))),
            "nothing written"
        );
        // Characters, not bytes: eight non-ASCII characters are enough.
        create(dir.path(), "main", "éééééééé", 4, false).expect("eight characters");
    }

    #[test]
    fn keystore_import_checks_the_password() {
        let source = tempfile::tempdir().expect("temp dir");
        let (address, _) = create(source.path(), "a", "password-1", 4, false).expect("create");
        let target = tempfile::tempdir().expect("temp dir");
        let file = source.path().join(WALLET_FILE);
        assert!(matches!(
            import_keystore(target.path(), "b", &file, "nope", false),
            Err(WalletFileError::Keystore(KeystoreError::WrongPassword))
        ));
        assert!(matches!(load(target.path()), Err(WalletFileError::Missing(_))));
        assert_eq!(
            import_keystore(target.path(), "b", &file, "password-1", false).expect("import"),
            address
        );
    }
}
