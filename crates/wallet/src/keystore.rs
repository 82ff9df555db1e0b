//! The wallet key: a BIP-39 mnemonic, the secp256k1 key it derives, and the encrypted
//! keystore file that holds that key on disk.
//!
//! Derivation follows the Ethereum wallets' convention (BIP-32 path `m/44'/60'/0'/0/0` from the
//! BIP-39 seed with an empty passphrase), so a mnemonic backed up from EZchain restores the same
//! address in any such wallet and the reverse. The file is a Web3 Secret Storage v3 keystore
//! (scrypt + AES-128-CTR, MAC = Keccak-256(dk[16..32] ‖ ciphertext)); the mnemonic itself is
//! never written anywhere.

use ezchain_protocol::hash::keccak256;
use ezchain_protocol::{Address, SigningKey};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The derivation path of the first Ethereum account.
pub const DERIVATION_PATH: &str = "m/44'/60'/0'/0/0";
/// scrypt cost of new keystores (N = 2^18, r = 8, p = 1: the Web3 default).
pub const DEFAULT_SCRYPT_LOG_N: u8 = 18;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum KeystoreError {
    #[error("the mnemonic is not a valid BIP-39 phrase: {0}")]
    BadMnemonic(String),
    #[error("wrong password for this keystore")]
    WrongPassword,
    #[error("the keystore file is not a usable Web3 v3 keystore: {0}")]
    Malformed(String),
    #[error("the system random number generator failed: {0}")]
    Randomness(String),
    #[error("scrypt cost log_n = {0} is outside 1..=20")]
    BadCost(u8),
}

/// A freshly generated 12-word English mnemonic.
pub fn generate_mnemonic() -> Result<String, KeystoreError> {
    let mut entropy = [0u8; 16];
    getrandom::fill(&mut entropy).map_err(|e| KeystoreError::Randomness(e.to_string()))?;
    let mnemonic = bip39::Mnemonic::from_entropy(&entropy).map_err(|e| KeystoreError::BadMnemonic(e.to_string()))?;
    Ok(mnemonic.to_string())
}

/// The wallet key a mnemonic derives. Checks the word list and checksum.
pub fn key_from_mnemonic(words: &str) -> Result<SigningKey, KeystoreError> {
    let normalized = words.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
    let mnemonic =
        bip39::Mnemonic::parse(normalized.as_str()).map_err(|e| KeystoreError::BadMnemonic(e.to_string()))?;
    let seed = mnemonic.to_seed("");
    let path: bip32::DerivationPath = DERIVATION_PATH
        .parse()
        .map_err(|e: bip32::Error| KeystoreError::BadMnemonic(e.to_string()))?;
    let child = bip32::XPrv::derive_from_path(&seed, &path).map_err(|e| KeystoreError::BadMnemonic(e.to_string()))?;
    let secret: [u8; 32] = child.to_bytes();
    SigningKey::from_bytes(&secret).map_err(|e| KeystoreError::BadMnemonic(e.to_string()))
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeystoreFile {
    pub version: u32,
    pub id: String,
    /// Lower-case hex without `0x`, as Web3 tools write it.
    pub address: String,
    pub crypto: KeystoreCrypto,
    /// EZchain's label for the wallet (other tools ignore it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeystoreCrypto {
    pub cipher: String,
    pub ciphertext: String,
    pub cipherparams: CipherParams,
    pub kdf: String,
    pub kdfparams: ScryptParams,
    pub mac: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CipherParams {
    pub iv: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScryptParams {
    pub dklen: u32,
    pub n: u64,
    pub r: u32,
    pub p: u32,
    pub salt: String,
}

fn random<const N: usize>() -> Result<[u8; N], KeystoreError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| KeystoreError::Randomness(e.to_string()))?;
    Ok(bytes)
}

fn derive(password: &str, salt: &[u8], log_n: u8, r: u32, p: u32) -> Result<[u8; 32], KeystoreError> {
    let params =
        scrypt::Params::new(log_n, r, p).map_err(|e| KeystoreError::Malformed(format!("scrypt parameters: {e}")))?;
    let mut derived = [0u8; 32];
    scrypt::scrypt(password.as_bytes(), salt, &params, &mut derived)
        .map_err(|e| KeystoreError::Malformed(format!("scrypt: {e}")))?;
    Ok(derived)
}

fn aes_ctr(key: &[u8], iv: &[u8], data: &mut [u8]) -> Result<(), KeystoreError> {
    use ctr::cipher::{KeyIvInit, StreamCipher};
    let mut cipher = ctr::Ctr128BE::<aes::Aes128>::new_from_slices(key, iv)
        .map_err(|_| KeystoreError::Malformed("cipher key or iv has the wrong length".into()))?;
    cipher.apply_keystream(data);
    Ok(())
}

fn mac(derived: &[u8; 32], ciphertext: &[u8]) -> [u8; 32] {
    let mut input = derived[16..32].to_vec();
    input.extend_from_slice(ciphertext);
    keccak256(&input)
}

/// UUID v4 text for the keystore's `id` field.
fn uuid_v4(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

impl KeystoreFile {
    /// Encrypts `key` under `password` with scrypt cost 2^`log_n`.
    pub fn encrypt(key: &SigningKey, password: &str, log_n: u8) -> Result<Self, KeystoreError> {
        if !(1..=20).contains(&log_n) {
            return Err(KeystoreError::BadCost(log_n));
        }
        let salt: [u8; 32] = random()?;
        let iv: [u8; 16] = random()?;
        let derived = derive(password, &salt, log_n, 8, 1)?;
        let mut ciphertext = key.secret_bytes().to_vec();
        aes_ctr(&derived[..16], &iv, &mut ciphertext)?;
        Ok(KeystoreFile {
            version: 3,
            id: uuid_v4(random()?),
            address: hex::encode(key.address().0),
            crypto: KeystoreCrypto {
                cipher: "aes-128-ctr".into(),
                ciphertext: hex::encode(&ciphertext),
                cipherparams: CipherParams { iv: hex::encode(iv) },
                kdf: "scrypt".into(),
                kdfparams: ScryptParams {
                    dklen: 32,
                    n: 1u64 << log_n,
                    r: 8,
                    p: 1,
                    salt: hex::encode(salt),
                },
                mac: hex::encode(mac(&derived, &ciphertext)),
            },
            name: None,
            created_at: None,
        })
    }

    pub fn from_json(text: &str) -> Result<Self, KeystoreError> {
        let file: KeystoreFile = serde_json::from_str(text).map_err(|e| KeystoreError::Malformed(e.to_string()))?;
        if file.version != 3 {
            return Err(KeystoreError::Malformed(format!(
                "version {} (only 3 is supported)",
                file.version
            )));
        }
        Ok(file)
    }

    /// The address this keystore claims to hold (checked against the key on decryption).
    pub fn address(&self) -> Result<Address, KeystoreError> {
        format!("0x{}", self.address.trim_start_matches("0x").to_lowercase())
            .parse()
            .map_err(|e| KeystoreError::Malformed(format!("address: {e}")))
    }

    /// Decrypts the key; a wrong password is [`KeystoreError::WrongPassword`].
    pub fn decrypt(&self, password: &str) -> Result<SigningKey, KeystoreError> {
        let crypto = &self.crypto;
        if crypto.kdf != "scrypt" || crypto.cipher != "aes-128-ctr" {
            return Err(KeystoreError::Malformed(format!(
                "kdf {} / cipher {} (supported: scrypt / aes-128-ctr)",
                crypto.kdf, crypto.cipher
            )));
        }
        let params = &crypto.kdfparams;
        if params.dklen != 32 || !params.n.is_power_of_two() || params.n < 2 || params.n > 1 << 20 {
            return Err(KeystoreError::Malformed(format!(
                "scrypt n = {}, dklen = {} (need a power of two up to 2^20, dklen 32)",
                params.n, params.dklen
            )));
        }
        if params.r == 0 || params.r > 32 || params.p == 0 || params.p > 16 {
            return Err(KeystoreError::Malformed(format!(
                "scrypt r = {}, p = {}",
                params.r, params.p
            )));
        }
        let bad_hex = |field: &str| KeystoreError::Malformed(format!("{field} is not hex"));
        let salt = hex::decode(&params.salt).map_err(|_| bad_hex("salt"))?;
        let iv = hex::decode(&crypto.cipherparams.iv).map_err(|_| bad_hex("iv"))?;
        let mut ciphertext = hex::decode(&crypto.ciphertext).map_err(|_| bad_hex("ciphertext"))?;
        let expected_mac = hex::decode(&crypto.mac).map_err(|_| bad_hex("mac"))?;
        let derived = derive(password, &salt, params.n.trailing_zeros() as u8, params.r, params.p)?;
        if mac(&derived, &ciphertext).as_slice() != expected_mac.as_slice() {
            return Err(KeystoreError::WrongPassword);
        }
        aes_ctr(&derived[..16], &iv, &mut ciphertext)?;
        let secret: [u8; 32] = ciphertext
            .try_into()
            .map_err(|_| KeystoreError::Malformed("the key is not 32 bytes".into()))?;
        let key = SigningKey::from_bytes(&secret).map_err(|e| KeystoreError::Malformed(e.to_string()))?;
        if key.address() != self.address()? {
            return Err(KeystoreError::Malformed(
                "the key does not match the file's address".into(),
            ));
        }
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The BIP-39 test mnemonic and the address every Ethereum wallet derives from it.
    const TEST_MNEMONIC: &str = "test test test test test test test test test test test junk";
    const TEST_ADDRESS: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";

    #[test]
    fn mnemonic_derives_the_standard_ethereum_account() {
        let key = key_from_mnemonic(TEST_MNEMONIC).expect("valid mnemonic");
        assert_eq!(key.address().to_string(), TEST_ADDRESS);
        // Case and spacing do not matter.
        let loud = format!("  {}  ", TEST_MNEMONIC.to_uppercase().replace(' ', "   "));
        assert_eq!(key_from_mnemonic(&loud).expect("normalized").address(), key.address());
    }

    #[test]
    fn bad_mnemonics_are_refused() {
        let bad_checksum = "test test test test test test test test test test test test";
        assert!(matches!(
            key_from_mnemonic(bad_checksum),
            Err(KeystoreError::BadMnemonic(_))
        ));
        assert!(matches!(
            key_from_mnemonic("not a phrase"),
            Err(KeystoreError::BadMnemonic(_))
        ));
        assert!(matches!(key_from_mnemonic(""), Err(KeystoreError::BadMnemonic(_))));
    }

    #[test]
    fn generated_mnemonics_are_valid_and_distinct() {
        let a = generate_mnemonic().expect("mnemonic");
        let b = generate_mnemonic().expect("mnemonic");
        assert_eq!(a.split(' ').count(), 12);
        assert_ne!(a, b);
        key_from_mnemonic(&a).expect("a generated mnemonic parses");
    }

    #[test]
    fn keystore_round_trip_and_wrong_password() {
        let key = key_from_mnemonic(TEST_MNEMONIC).expect("key");
        let file = KeystoreFile::encrypt(&key, "correct horse", 4).expect("encrypt");
        let text = serde_json::to_string(&file).expect("json");
        assert!(
            !text.contains(&hex::encode(key.secret_bytes())),
            "the secret is not stored in clear"
        );
        let read = KeystoreFile::from_json(&text).expect("parse");
        assert_eq!(read.decrypt("correct horse").expect("decrypt").address(), key.address());
        assert_eq!(read.decrypt("wrong").unwrap_err(), KeystoreError::WrongPassword);
        let mut tampered = read.clone();
        tampered.crypto.ciphertext.replace_range(0..2, "00");
        assert!(tampered.decrypt("correct horse").is_err());
    }

    /// The scrypt test vector of the Web3 Secret Storage definition (password `testpassword`).
    #[test]
    fn decrypts_the_web3_specification_vector() {
        let text = r#"{
            "crypto": {
                "cipher": "aes-128-ctr",
                "cipherparams": {"iv": "83dbcc02d8ccb40e466191a123791e0e"},
                "ciphertext": "d172bf743a674da9cdad04534d56926ef8358534d458fffccd4e6ad2fbde479c",
                "kdf": "scrypt",
                "kdfparams": {"dklen": 32, "n": 262144, "p": 8, "r": 1,
                    "salt": "ab0c7876052600dd703518d6fc3fe8984592145b591fc8fb5c6d43190334ba19"},
                "mac": "2103ac29920d71da29f15d75b4a16dbe95cfd7ff8faea1056c33131d846e3097"
            },
            "id": "3198bc9c-6672-5ab3-d995-4942343ae5b6",
            "version": 3,
            "address": "008aeeda4d805471df9b2a5b0f38a0c3bcba786b"
        }"#;
        let file = KeystoreFile::from_json(text).expect("parse");
        let key = file.decrypt("testpassword").expect("decrypt");
        assert_eq!(
            hex::encode(key.secret_bytes()),
            "7a28b5ba57c53603b0b07b56bba752f7784bf506fa95edc395f5cf6c7514fe9d"
        );
    }

    #[test]
    fn hostile_files_are_errors() {
        for text in ["", "{}", "[]", r#"{"version": 4}"#] {
            assert!(KeystoreFile::from_json(text).is_err(), "{text}");
        }
        let key = key_from_mnemonic(TEST_MNEMONIC).expect("key");
        let mut file = KeystoreFile::encrypt(&key, "pw", 4).expect("encrypt");
        file.crypto.kdfparams.n = 1 << 30;
        assert!(matches!(file.decrypt("pw"), Err(KeystoreError::Malformed(_))));
        assert_eq!(
            KeystoreFile::encrypt(&key, "pw", 0).unwrap_err(),
            KeystoreError::BadCost(0)
        );
    }
}
