//! The validator's double-sign guard: what its key has signed, kept on disk, so that neither a
//! restart nor a second copy of its home makes it sign two different messages for one step.
//!
//! Rules (CometBFT's `priv_validator_state.json` and `double_sign_check_height` are the models):
//! 1. **Monotonic.** The last signed `(height, round, step)` — step order propose < prevote <
//!    precommit — and the hash of every message signed at that height are written and fsynced
//!    to `<data_dir>/sign_state.json` *before* a signature leaves the signer. A request at or
//!    below it is refused, except the very same bytes of a step already signed at this height
//!    (their signature is the same: a restarted engine re-deriving the vote it lost from its WAL).
//! 2. **Remembered precommits.** The recent precommits (height, round, value) are kept too, from
//!    `remembered_from` on, so a commit certificate can be checked for our key's signatures:
//!    one we did not make (a height above our record, or a precommit we never signed) means
//!    another process holds this key.
//! 3. **Look before signing.** At start ([`crate::runner`]) the node checks the last
//!    `consensus.double_sign_check_heights` commits — its own store's and its peers' — for such
//!    signatures; finding one, it runs as a non-signing follower. While signing, a commit with
//!    such a signature stops the node (`key_used_elsewhere`): better no vote than two.
//!
//! Invariant: a signature is produced only after the record that allows it is on disk.

use ezchain_protocol::finality::{CommitCertificate, ValidatorAddress};
use ezchain_protocol::hash::keccak256;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use thiserror::Error;

pub const SIGN_STATE_FILE: &str = "sign_state.json";
/// Precommits remembered (the oldest heights go first).
const REMEMBERED_PRECOMMITS: usize = 64;

/// A consensus step, in the order a round takes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Propose,
    Prevote,
    Precommit,
}

/// The last signed step and the recent precommits, as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignRecord {
    pub height: u64,
    pub round: u32,
    pub step: Option<Step>,
    /// Keccak-256 (hex) of every message signed at `height`, by `"<round>:<step>"`, to tell a
    /// re-sign of the same message from a different one.
    #[serde(default)]
    pub signed_at_height: std::collections::BTreeMap<String, String>,
    /// Precommits are remembered completely from this height on.
    pub remembered_from: u64,
    /// `(height, round, value hex)` of recent precommits; value `None` is a nil precommit.
    pub precommits: BTreeSet<(u64, u32, Option<String>)>,
}

#[derive(Debug, Error)]
pub enum SignGuardError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "{path} is damaged ({reason}); a validator never signs without its record — restore it, or see docs/NODE.md"
    )]
    Corrupt { path: PathBuf, reason: String },
}

/// Why a signature was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum SignRefusal {
    #[error(
        "refusing to sign {step:?} at height {height} round {round}: this key already signed up to height {last_height} round {last_round} {last_step:?} (sign_state.json)"
    )]
    Regression {
        height: u64,
        round: u32,
        step: Step,
        last_height: u64,
        last_round: u32,
        last_step: Option<Step>,
    },
    #[error("refusing to sign a second, different {step:?} at height {height} round {round}")]
    Conflict { height: u64, round: u32, step: Step },
    #[error("cannot record the signature before it leaves: {0}")]
    NotRecorded(String),
}

/// What makes a validator stop signing, reported to the node's runner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SigningAlarm {
    /// The signer refused a signature (rule 1): the engine cannot go on without it.
    Refused(SignRefusal),
    /// A commit holds a precommit by this key that this node did not sign (rule 2).
    KeyUsedElsewhere { height: u64, round: u32 },
}

pub struct SignGuard {
    path: PathBuf,
    record: Mutex<SignRecord>,
}

fn bytes_hash(bytes: &[u8]) -> String {
    hex::encode(keccak256(bytes))
}

fn write_record(path: &Path, record: &SignRecord) -> std::io::Result<()> {
    let temp = path.with_extension("json.tmp");
    {
        let mut file = std::fs::File::create(&temp)?;
        std::io::Write::write_all(
            &mut file,
            serde_json::to_string(record).map_err(std::io::Error::other)?.as_bytes(),
        )?;
        file.sync_all()?;
    }
    // The record's bytes are on disk before the rename publishes them; the folder itself is not
    // synced (one fsync per signature). After a power loss the previous record may come back,
    // and then the engine's write-ahead log, synced before every message it sends, still holds
    // what was signed since.
    std::fs::rename(&temp, path)
}

impl SignGuard {
    /// Opens the record at `path`. Without one (a new validator, or one from before the guard),
    /// it starts above `committed_tip`: heights this node has already committed are never signed
    /// again, and precommits are remembered from the next height on.
    pub fn open(path: &Path, committed_tip: u64) -> Result<Self, SignGuardError> {
        let record = match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str::<SignRecord>(&text).map_err(|e| SignGuardError::Corrupt {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Past the last step of the committed tip: nothing at or below it is signed.
                let record = SignRecord {
                    height: committed_tip,
                    round: u32::MAX,
                    step: Some(Step::Precommit),
                    remembered_from: committed_tip + 1,
                    ..SignRecord::default()
                };
                write_record(path, &record).map_err(|source| SignGuardError::Io {
                    path: path.to_path_buf(),
                    source,
                })?;
                record
            }
            Err(source) => {
                return Err(SignGuardError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        Ok(SignGuard {
            path: path.to_path_buf(),
            record: Mutex::new(record),
        })
    }

    pub fn record(&self) -> SignRecord {
        self.record.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Allows signing `bytes` as `step` of `(height, round)` — recording it durably first — or
    /// refuses (rule 1). `precommit_value` is the value of a precommit (`Some(None)` for nil).
    pub fn permit(
        &self,
        height: u64,
        round: u32,
        step: Step,
        bytes: &[u8],
        precommit_value: Option<Option<[u8; 32]>>,
    ) -> Result<(), SignRefusal> {
        let mut record = self.record.lock().unwrap_or_else(|p| p.into_inner());
        let hash = bytes_hash(bytes);
        let slot = format!("{round}:{step:?}");
        if height == record.height
            && let Some(signed) = record.signed_at_height.get(&slot)
        {
            return if *signed == hash {
                Ok(())
            } else {
                Err(SignRefusal::Conflict { height, round, step })
            };
        }
        if (height, round, Some(step)) <= (record.height, record.round, record.step) {
            return Err(SignRefusal::Regression {
                height,
                round,
                step,
                last_height: record.height,
                last_round: record.round,
                last_step: record.step,
            });
        }
        let mut next = record.clone();
        if height != record.height {
            next.signed_at_height.clear();
        }
        next.height = height;
        next.round = round;
        next.step = Some(step);
        next.signed_at_height.insert(slot, hash);
        if let Some(value) = precommit_value {
            next.precommits.insert((height, round, value.map(hex::encode)));
            while next.precommits.len() > REMEMBERED_PRECOMMITS {
                let oldest = next.precommits.iter().next().map_or(0, |p| p.0);
                next.precommits.retain(|p| p.0 > oldest);
                next.remembered_from = next.remembered_from.max(oldest + 1);
            }
        }
        write_record(&self.path, &next).map_err(|e| SignRefusal::NotRecorded(e.to_string()))?;
        *record = next;
        Ok(())
    }

    /// Rule 2 on a whole commit: does it hold a precommit by `me` that this node did not sign?
    pub fn signed_elsewhere(&self, me: ValidatorAddress, certificate: &CommitCertificate) -> bool {
        certificate.signatures.iter().any(|s| {
            s.validator == me && !self.is_ours(certificate.height, certificate.round, certificate.header_hash.0)
        })
    }

    /// Rule 2: is a precommit by our key at `(height, round)` for `value`, seen in a commit
    /// certificate, one this node signed? Heights before the remembered range cannot be told
    /// and count as ours.
    pub fn is_ours(&self, height: u64, round: u32, value: [u8; 32]) -> bool {
        let record = self.record.lock().unwrap_or_else(|p| p.into_inner());
        height < record.remembered_from || record.precommits.contains(&(height, round, Some(hex::encode(value))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> (tempfile::TempDir, SignGuard) {
        let dir = tempfile::tempdir().expect("temp dir");
        let guard = SignGuard::open(&dir.path().join(SIGN_STATE_FILE), 0).expect("open");
        (dir, guard)
    }

    #[test]
    fn steps_only_move_forward_and_the_same_message_may_be_signed_again() {
        let (_dir, guard) = guard();
        guard.permit(1, 0, Step::Propose, b"p", None).expect("propose");
        guard.permit(1, 0, Step::Prevote, b"a", None).expect("prevote");
        guard
            .permit(1, 0, Step::Prevote, b"a", None)
            .expect("the same prevote again");
        assert_eq!(
            guard.permit(1, 0, Step::Prevote, b"b", None),
            Err(SignRefusal::Conflict {
                height: 1,
                round: 0,
                step: Step::Prevote
            })
        );
        guard
            .permit(1, 0, Step::Precommit, b"c", Some(Some([7; 32])))
            .expect("precommit");
        // A restarted engine re-deriving an earlier step of this height: the same bytes only.
        guard
            .permit(1, 0, Step::Propose, b"p", None)
            .expect("the same proposal again");
        assert_eq!(
            guard.permit(1, 0, Step::Propose, b"q", None),
            Err(SignRefusal::Conflict {
                height: 1,
                round: 0,
                step: Step::Propose
            })
        );
        guard.permit(1, 1, Step::Prevote, b"d", None).expect("next round");
        guard.permit(2, 0, Step::Prevote, b"e", None).expect("next height");
        assert!(matches!(
            guard.permit(1, 5, Step::Precommit, b"f", Some(None)),
            Err(SignRefusal::Regression { .. })
        ));
    }

    #[test]
    fn the_record_survives_a_restart_and_a_copy_knows_what_it_did_not_sign() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(SIGN_STATE_FILE);
        {
            let guard = SignGuard::open(&path, 0).expect("open");
            guard
                .permit(3, 1, Step::Precommit, b"x", Some(Some([1; 32])))
                .expect("precommit");
        }
        let restarted = SignGuard::open(&path, 0).expect("reopen");
        assert!(matches!(
            restarted.permit(3, 0, Step::Precommit, b"y", Some(Some([2; 32]))),
            Err(SignRefusal::Regression { .. })
        ));
        assert!(restarted.is_ours(3, 1, [1; 32]), "its own precommit");
        assert!(!restarted.is_ours(3, 1, [2; 32]), "another value at that step");
        assert!(!restarted.is_ours(4, 0, [1; 32]), "a height it never signed");
    }

    #[test]
    fn a_validator_from_before_the_guard_starts_above_its_committed_tip() {
        let dir = tempfile::tempdir().expect("temp dir");
        let guard = SignGuard::open(&dir.path().join(SIGN_STATE_FILE), 40).expect("open");
        assert!(matches!(
            guard.permit(40, 3, Step::Precommit, b"x", Some(None)),
            Err(SignRefusal::Regression { .. })
        ));
        assert!(
            guard.is_ours(40, 0, [9; 32]),
            "committed before the guard: cannot be told"
        );
        assert!(!guard.is_ours(41, 0, [9; 32]));
        guard.permit(41, 0, Step::Prevote, b"y", None).expect("signs on");
    }

    #[test]
    fn a_damaged_record_stops_the_validator_instead_of_starting_blank() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(SIGN_STATE_FILE);
        std::fs::write(&path, "{ not json").expect("write");
        assert!(matches!(SignGuard::open(&path, 0), Err(SignGuardError::Corrupt { .. })));
    }

    #[test]
    fn old_precommits_are_forgotten_from_the_oldest_height() {
        let (_dir, guard) = guard();
        for height in 1..=(REMEMBERED_PRECOMMITS as u64 + 10) {
            guard
                .permit(height, 0, Step::Precommit, &height.to_le_bytes(), Some(Some([1; 32])))
                .expect("precommit");
        }
        let record = guard.record();
        assert_eq!(record.precommits.len(), REMEMBERED_PRECOMMITS);
        assert_eq!(record.remembered_from, 11);
        assert!(guard.is_ours(5, 0, [2; 32]), "forgotten heights cannot be told");
    }
}
