//! Mempool admission as a pure function of (chain state, pending set, submission).
//!
//! Rules (DESIGN §4):
//! 1. the submission could enter the next block: [`ChainState::check_submission`] at
//!    `height + 1` (shape, hashes, signature, chain id, expiry, `seq = confirmed + 1`);
//! 2. at most one pending bundle per sender; resubmitting the identical envelope is a no-op;
//! 3. a pending bundle is replaced only by the same seq and the same bundle hash with a strictly
//!    higher fee (a fee bump); anything else is a conflicting replacement and is refused;
//! 4. a full pool refuses new senders (replacements still pass).
//!
//! Invariant: `PendingPool` only ever holds bundles that passed `admit` against some state, and
//! `prune` drops those a newer state has made stale (confirmed seq or expired).

use crate::address::Address;
use crate::bundle::{Submission, VerifiedSubmission};
use crate::hash::Hash32;
use crate::state::{ChainState, EntryError};
use std::collections::BTreeMap;
use thiserror::Error;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingBundle {
    pub verified: VerifiedSubmission,
    pub envelope_hash: Hash32,
    /// Admission order: equal fees are served first come, first served.
    pub arrival: u64,
}

impl PendingBundle {
    pub fn seq(&self) -> u64 {
        self.verified.submission().envelope.seq
    }
    pub fn fee(&self) -> u64 {
        self.verified.submission().envelope.fee
    }
}

/// What admitting a submission would do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// A first pending bundle for this sender.
    New,
    /// A fee bump of the sender's pending bundle.
    Replace { old_fee: u64 },
    /// The identical envelope is already pending; nothing changes.
    Duplicate,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum AdmissionError {
    #[error(transparent)]
    Entry(#[from] EntryError),
    #[error("the sender already has a different pending bundle (seq {pending_seq}); wait for it to be confirmed")]
    ConflictingPending { pending_seq: u64 },
    #[error("a replacement must pay a strictly higher fee than {old_fee} (got {new_fee})")]
    FeeNotHigher { old_fee: u64, new_fee: u64 },
    #[error("the mempool is full ({capacity} senders); retry later")]
    PoolFull { capacity: usize },
}

/// Pending bundles, one per sender.
#[derive(Clone, Debug)]
pub struct PendingPool {
    by_sender: BTreeMap<Address, PendingBundle>,
    capacity: usize,
    next_arrival: u64,
    /// Submissions that changed the pool (new or fee bump), ever.
    changes: u64,
}

impl PendingPool {
    pub fn new(capacity: usize) -> Self {
        PendingPool {
            by_sender: BTreeMap::new(),
            capacity,
            next_arrival: 0,
            changes: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.by_sender.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_sender.is_empty()
    }

    pub fn get(&self, sender: &Address) -> Option<&PendingBundle> {
        self.by_sender.get(sender)
    }

    /// Decides admission of a verified submission without changing anything.
    pub fn admit(&self, chain: &ChainState, verified: &VerifiedSubmission) -> Result<Admission, AdmissionError> {
        chain.check_verified(verified, chain.height + 1)?;
        let envelope = &verified.submission().envelope;
        match self.by_sender.get(&verified.sender()) {
            Some(pending) if pending.envelope_hash == envelope.envelope_hash() => Ok(Admission::Duplicate),
            Some(pending)
                if pending.seq() == envelope.seq && pending.verified.bundle_hash() == verified.bundle_hash() =>
            {
                if envelope.fee > pending.fee() {
                    Ok(Admission::Replace { old_fee: pending.fee() })
                } else {
                    Err(AdmissionError::FeeNotHigher {
                        old_fee: pending.fee(),
                        new_fee: envelope.fee,
                    })
                }
            }
            Some(pending) => Err(AdmissionError::ConflictingPending {
                pending_seq: pending.seq(),
            }),
            None if self.by_sender.len() >= self.capacity => Err(AdmissionError::PoolFull {
                capacity: self.capacity,
            }),
            None => Ok(Admission::New),
        }
    }

    /// Verifies, admits and stores a submission.
    pub fn submit(&mut self, chain: &ChainState, submission: &Submission) -> Result<Admission, AdmissionError> {
        let verified = submission.verify(chain.chain_id).map_err(EntryError::from)?;
        self.submit_verified(chain, verified)
    }

    /// Admits and stores a submission verified beforehand (a node verifies outside the pool's
    /// lock); the verification is kept for the block that includes it.
    pub fn submit_verified(
        &mut self,
        chain: &ChainState,
        verified: VerifiedSubmission,
    ) -> Result<Admission, AdmissionError> {
        let admission = self.admit(chain, &verified)?;
        if admission != Admission::Duplicate {
            self.changes += 1;
            let envelope_hash = verified.submission().envelope.envelope_hash();
            // A fee bump keeps its place in line.
            let arrival = match self.by_sender.get(&verified.sender()) {
                Some(pending) => pending.arrival,
                None => {
                    self.next_arrival += 1;
                    self.next_arrival
                }
            };
            self.by_sender.insert(
                verified.sender(),
                PendingBundle {
                    verified,
                    envelope_hash,
                    arrival,
                },
            );
        }
        Ok(admission)
    }

    /// The pool's verification of exactly `submission`, if it holds that submission.
    pub fn verified(&self, submission: &Submission) -> Option<&VerifiedSubmission> {
        self.by_sender
            .get(&submission.sidecar.sender)
            .map(|pending| &pending.verified)
            .filter(|verified| verified.submission() == submission)
    }

    /// How many submissions changed the pool (new or fee bump) since it was made: a proposer
    /// with nothing to include waits for this to move.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// Up to `limit` pending submissions for the next block: highest fee first, then the
    /// earliest admitted — so at saturation no sender waits behind the same others every block.
    pub fn snapshot(&self, limit: usize) -> Vec<VerifiedSubmission> {
        let mut pending: Vec<&PendingBundle> = self.by_sender.values().collect();
        pending.sort_by(|a, b| b.fee().cmp(&a.fee()).then(a.arrival.cmp(&b.arrival)));
        pending.into_iter().take(limit).map(|p| p.verified.clone()).collect()
    }

    /// Drops bundles that `chain` confirmed or made invalid (stale seq, expired).
    pub fn prune(&mut self, chain: &ChainState) {
        let next_height = chain.height + 1;
        self.by_sender.retain(|sender, pending| {
            pending.seq() == chain.confirmed_seq(sender) + 1
                && pending.verified.submission().envelope.expiry_height >= next_height
        });
    }
}
