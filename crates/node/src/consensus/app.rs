//! The application side of consensus: the loop that answers the engine's `AppMsg`s with EZchain
//! blocks.
//!
//! - `GetValue`: the proposer builds a block from a mempool snapshot (`build_block_verified`:
//!   the signatures admission verified are not recovered again) — at once
//!   when bundles wait, else when the first arrives (plus `batch_window`) or the block interval
//!   is up — streams its body as proposal parts and proposes its header hash.
//! - `ReceivedProposalPart`: parts are reassembled; a complete block must carry the proposer's
//!   stream signature and is re-executed with `apply_block_verified` on this node's own state —
//!   entries this node's mempool verified are reused, the others are verified in parallel on
//!   every core — and any mismatch makes the proposal `Invalid`, never a crash.
//! - `Decided`: block, commit certificate, changed leaves and receipts are committed to the
//!   chain store in one transaction before the reply; included bundles leave the mempool.
//! - `Finalized` is always answered (`Next::Start` of the next height), or the chain would stall.
//! - Sync: decided blocks are served from the store and synced ones are re-executed like
//!   proposals.
//!
//! Invariant: the state this loop holds is always the store's tip state; nothing is committed
//! that `apply_block` has not accepted.

use super::codec::commit_signature_bytes;
use super::context::{Address, BlockId, EzContext, Height, ValidatorSet};
use super::signing::stream_bytes;
use super::streaming::{PartStreams, ReceivedProposal, body_hash, stream_messages};
use crate::metrics::NodeMetrics;
use crate::sign_guard::{SignGuard, SigningAlarm};
use crate::store::{ChainStore, CommitOutcome};
use bytes::Bytes;
use ezchain_host::files::replace_file;
use ezchain_protocol::bundle::VerifiedSubmission;
use ezchain_protocol::codec::{decode, encode};
use ezchain_protocol::finality::{
    CommitCertificate as FinalityCertificate, CommitSignature as FinalitySignature, ValidatorAddress,
};
use ezchain_protocol::mempool::PendingPool;
use ezchain_protocol::snapshot::SnapshotRules;
use ezchain_protocol::state::{AppliedBlock, BlockError};
use ezchain_protocol::{Block, ChainState, Genesis, apply_block_verified, build_block_verified};
use malachitebft_app_channel::app::engine::host::{Next, SyncedValueOutcome};
use malachitebft_app_channel::app::types::core::{
    CommitCertificate, ExtendedCommitCertificate, ExtendedCommitSignature, HeightParams, LinearTimeouts, Round,
    ValidatorSet as _, Validity,
};
use malachitebft_app_channel::app::types::sync::RawDecidedValue;
use malachitebft_app_channel::app::types::{LocallyProposedValue, ProposedValue};
use malachitebft_app_channel::{AppMsg, Channels, NetworkMsg};
use malachitebft_signing_ed25519::{PrivateKey, Signature};
use rayon::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tracing::{debug, error, info, warn};

/// Largest block accepted from a peer.
pub const MAX_BLOCK_BYTES: usize = 16 * 1024 * 1024;
/// Decided values served per sync request.
const MAX_SYNC_BATCH: u64 = 50;
/// How often an idle proposer looks at the mempool.
const MEMPOOL_POLL: Duration = Duration::from_millis(5);
/// A proposer answers this long before the engine's own deadline for a value.
const PROPOSE_MARGIN: Duration = Duration::from_millis(500);

/// The node's view of the chain, shared with RPC: the tip state (read-mostly), the store and
/// the genesis.
pub struct ChainView {
    pub store: ChainStore,
    pub state: RwLock<ChainState>,
    pub genesis: Genesis,
    /// Every committed height, for subscribers (RPC server-sent events).
    pub commits: tokio::sync::broadcast::Sender<Arc<CommittedHeight>>,
}

impl ChainView {
    pub fn new(store: ChainStore, state: ChainState, genesis: Genesis) -> Self {
        let (commits, _) = tokio::sync::broadcast::channel(256);
        ChainView {
            store,
            state: RwLock::new(state),
            genesis,
            commits,
        }
    }

    /// What snapshot bundles are checked against: this node's genesis and finalized headers.
    pub fn snapshot_rules(&self) -> SnapshotRules<'_> {
        SnapshotRules {
            genesis: &self.genesis,
            headers: &self.store,
        }
    }
}

/// What a subscriber learns when a height is committed.
#[derive(Clone, Debug)]
pub struct CommittedHeight {
    pub header: ezchain_protocol::BlockHeader,
    pub certificate: FinalityCertificate,
    pub receipts: Vec<(ezchain_protocol::Address, ezchain_protocol::Receipt)>,
}

/// A block this node has checked for the current height, by header hash.
struct Candidate {
    applied: AppliedBlock,
    round: Round,
    valid_round: Round,
    proposer: Address,
    /// Encoded block and its stream signature, to re-stream or serve.
    body: Bytes,
    signature: [u8; 64],
}

pub struct ConsensusApp {
    pub chain_id: u64,
    pub validator_set: ValidatorSet,
    pub timeouts: LinearTimeouts,
    pub block_interval: Duration,
    /// See `ConsensusConfig::batch_window_ms`.
    pub batch_window: Duration,
    pub max_bundles_per_block: usize,
    pub chain: Arc<ChainView>,
    pub mempool: Arc<Mutex<PendingPool>>,
    /// This node's address and key when it is a validator.
    pub signer: Option<(Address, PrivateKey)>,
    pub metrics: NodeMetrics,
    streams: PartStreams,
    candidates: HashMap<BlockId, Candidate>,
    /// A validator's own key, watched in every commit (sign_guard rule 2).
    key_watch: Option<KeyWatch>,
    /// Where this validator keeps the block it last proposed, so that after a restart it
    /// proposes the same block again for the same height and round (never a second one).
    proposal_log: Option<std::path::PathBuf>,
    /// Where every block this node judged valid is kept until its height is committed, so a
    /// restart between voting for a block and committing it can still commit that block
    /// (instead of running the height again and voting a second time).
    candidate_dir: Option<std::path::PathBuf>,
    /// Proposals for the next heights that arrived before this node committed the current one
    /// (a full node a moment behind the validators). They are judged when their height starts;
    /// dropping them left such a node to sync every height and fall further behind.
    early: std::collections::BTreeMap<u64, Vec<ReceivedProposal>>,
}

/// Heights ahead of the next one whose proposals are kept for later.
const EARLY_HEIGHTS: u64 = 2;
/// Proposals kept per early height (one per round is the norm).
const EARLY_PER_HEIGHT: usize = 8;

/// What a validator node checks its commits against.
pub struct KeyWatch {
    pub me: ValidatorAddress,
    pub guard: Arc<SignGuard>,
    /// `None` for a follower: it signs nothing, so the other copy's signatures are expected.
    pub alarms: Option<tokio::sync::mpsc::UnboundedSender<SigningAlarm>>,
}

impl ConsensusApp {
    /// Keeps this validator's last proposal in `path` (see the field).
    pub fn with_proposal_log(mut self, path: std::path::PathBuf) -> Self {
        self.proposal_log = Some(path);
        self
    }

    /// The block this validator proposed before for `(height, round)`, if it did (a restart
    /// between proposing and deciding), re-executed on the current parent.
    fn logged_proposal(&self, parent: &ChainState, height: u64, round: u32) -> Option<AppliedBlock> {
        let bytes = std::fs::read(self.proposal_log.as_ref()?).ok()?;
        let (logged_height, logged_round, block): (u64, u32, Block) = decode(&bytes, MAX_BLOCK_BYTES + 64).ok()?;
        if (logged_height, logged_round) != (height, round) {
            return None;
        }
        self.apply(parent, &block).ok()
    }

    /// Re-executes `block` on `parent`, reusing the verifications this node's mempool holds for
    /// its entries and verifying the rest in parallel (rayon's pool, one thread per core; the
    /// results are in entry order, so the outcome is the sequential one).
    fn apply(&self, parent: &ChainState, block: &Block) -> Result<AppliedBlock, BlockError> {
        let known: Vec<Option<VerifiedSubmission>> = {
            let mempool = self.mempool.lock().unwrap_or_else(|p| p.into_inner());
            block
                .entries
                .iter()
                .map(|entry| mempool.verified(entry).cloned())
                .collect()
        };
        let chain_id = parent.chain_id;
        let known = block
            .entries
            .par_iter()
            .zip(known)
            .map(|(entry, known)| known.or_else(|| entry.verify(chain_id).ok()))
            .collect();
        apply_block_verified(parent, block, known, Some(&self.chain.snapshot_rules()))
    }

    /// Keeps the proposal before it is signed and sent.
    fn log_proposal(&self, height: u64, round: u32, block: &Block) {
        let Some(path) = &self.proposal_log else {
            return;
        };
        // Not synced: it must survive the process, not a power loss (after which the sign guard
        // refuses a different proposal and the node stops rather than propose twice).
        let written = replace_file(path, &encode(&(height, round, block.clone())));
        if let Err(e) = written {
            // Without it a restart at this height makes the engine ask for a second proposal,
            // which the sign guard refuses (the node then stops instead of equivocating).
            warn!(error = %e, path = %path.display(), "cannot keep this proposal on disk");
        }
    }

    /// Watches every committed certificate for precommits by `watch.me` this node did not sign.
    pub fn with_key_watch(mut self, watch: KeyWatch) -> Self {
        self.key_watch = Some(watch);
        self
    }

    #[allow(clippy::too_many_arguments)]
    pub fn new(
        chain_id: u64,
        validator_set: ValidatorSet,
        timeouts: LinearTimeouts,
        block_interval: Duration,
        batch_window: Duration,
        max_bundles_per_block: usize,
        chain: Arc<ChainView>,
        mempool: Arc<Mutex<PendingPool>>,
        signer: Option<(Address, PrivateKey)>,
        metrics: NodeMetrics,
    ) -> Self {
        ConsensusApp {
            chain_id,
            validator_set,
            timeouts,
            block_interval,
            batch_window,
            max_bundles_per_block,
            chain,
            mempool,
            signer,
            metrics,
            streams: PartStreams::default(),
            candidates: HashMap::new(),
            key_watch: None,
            proposal_log: None,
            candidate_dir: None,
            early: std::collections::BTreeMap::new(),
        }
    }

    /// Keeps validated blocks in `dir` until committed (see the field).
    pub fn with_candidate_dir(mut self, dir: std::path::PathBuf) -> Self {
        self.candidate_dir = Some(dir);
        self
    }

    fn candidate_file(&self, height: u64, id: &BlockId) -> Option<std::path::PathBuf> {
        Some(
            self.candidate_dir
                .as_ref()?
                .join(format!("{height}-{}.borsh", hex::encode(id.0.0))),
        )
    }

    /// Keeps a validated block before this node votes for it.
    fn keep_candidate(&self, block: &Block, body: &[u8]) {
        let Some(path) = self.candidate_file(block.header.height, &BlockId(block.hash())) else {
            return;
        };
        // Not synced, as the own proposal above: a kill keeps it, and a power loss only loses
        // the shortcut (the height then runs again, under the sign guard).
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| replace_file(&path, body));
        if let Err(e) = written {
            warn!(error = %e, path = %path.display(), "cannot keep a validated block on disk");
        }
    }

    /// A block this node validated before a restart, re-executed on the tip.
    fn kept_candidate(&self, height: u64, id: &BlockId, round: Round) -> Option<Candidate> {
        let path = self.candidate_file(height, id)?;
        let body = std::fs::read(&path).ok()?;
        let block: Block = decode(&body, MAX_BLOCK_BYTES).ok()?;
        if BlockId(block.hash()) != *id {
            return None;
        }
        let applied = self.apply(&self.tip_state(), &block).ok()?;
        info!(height, block = %id, "committing a block validated before the restart");
        Some(Candidate {
            applied,
            round,
            valid_round: Round::Nil,
            proposer: Address(ValidatorAddress([0; 20])),
            body: Bytes::from(body),
            signature: [0u8; 64],
        })
    }

    /// Drops the kept blocks of committed heights.
    fn forget_candidates(&self, committed: u64) {
        let Some(dir) = &self.candidate_dir else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let height = name.split('-').next().and_then(|h| h.parse::<u64>().ok());
            if height.is_some_and(|h| h <= committed) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    fn tip_state(&self) -> ChainState {
        self.chain.state.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// No height waits after its decision: the proposer paces the chain instead (`propose`
    /// builds at once when bundles wait, else when one arrives or the block interval is up).
    /// A fixed target time made every payment wait for the next slot (≈ 0.77 s of a 1.05 s
    /// payment) and let a late node fall further behind.
    fn height_params(&self) -> HeightParams<EzContext> {
        HeightParams::new(self.validator_set.clone(), self.timeouts, None)
    }

    fn next_height(&self) -> Height {
        Height(self.tip_state().height + 1)
    }

    /// Runs until the engine closes its channel.
    pub async fn run(mut self, mut channels: Channels<EzContext>) {
        while let Some(msg) = channels.consensus.recv().await {
            self.handle(msg, &channels).await;
        }
        info!("consensus channel closed; application loop stops");
    }

    async fn handle(&mut self, msg: AppMsg<EzContext>, channels: &Channels<EzContext>) {
        match msg {
            AppMsg::ConsensusReady { reply } => {
                let start = self.next_height();
                info!(height = start.0, "consensus ready");
                let _ = reply.send((start, self.height_params()));
            }
            AppMsg::StartedRound {
                height,
                round,
                reply_value,
                ..
            } => {
                // Proposals that came before this height started are judged now.
                let next = self.next_height().0;
                self.early.retain(|h, _| *h >= next);
                for received in self.early.remove(&height.0).unwrap_or_default() {
                    let _ = self.check_received(received);
                }
                let known = self
                    .candidates
                    .iter()
                    .filter(|(_, c)| c.applied.block.header.height == height.0 && c.round == round)
                    .map(|(id, c)| self.proposed_value(height, c, *id, Validity::Valid))
                    .collect();
                let _ = reply_value.send(known);
            }
            AppMsg::GetValue {
                height,
                round,
                timeout,
                reply,
            } => match self.propose(height, round, timeout, channels).await {
                Some(value) => {
                    let _ = reply.send(LocallyProposedValue::new(height, round, value));
                }
                None => warn!(height = height.0, "could not build a proposal"),
            },
            AppMsg::ExtendVote { reply, .. } => {
                let _ = reply.send(None);
            }
            AppMsg::VerifyVoteExtensions { extensions, reply, .. } => {
                let _ = reply.send(extensions.into_iter().map(|(address, _)| (address, Ok(()))).collect());
            }
            AppMsg::RestreamProposal {
                height,
                round,
                value_id,
                ..
            } => {
                if let Some(candidate) = self.candidates.get(&value_id)
                    && self.signer.as_ref().is_some_and(|(me, _)| *me == candidate.proposer)
                {
                    for message in stream_messages(
                        height,
                        round,
                        candidate.valid_round,
                        candidate.proposer,
                        &candidate.body,
                        candidate.signature,
                    ) {
                        let _ = channels.network.send(NetworkMsg::PublishProposalPart(message)).await;
                    }
                }
            }
            AppMsg::GetHistoryMinHeight { reply } => {
                let min = if self.tip_state().height == 0 {
                    Height(0)
                } else {
                    Height(1)
                };
                let _ = reply.send(min);
            }
            AppMsg::ReceivedProposalPart {
                from,
                published_by,
                part,
                reply,
            } => {
                let publisher = published_by.unwrap_or(from);
                let value = self
                    .streams
                    .insert(publisher, part)
                    .and_then(|received| self.check_received(received));
                let _ = reply.send(value);
            }
            AppMsg::Decided { certificate, reply, .. } => {
                self.commit(&certificate);
                let _ = reply.send(());
            }
            AppMsg::Finalized {
                certificate,
                evidence,
                reply,
                ..
            } => {
                // Equivocation by any validator that this node saw with its own eyes.
                let (mut proposals, mut votes) = (0u64, 0u64);
                for validator in self.validator_set.validators.iter() {
                    proposals += evidence.proposals.get(&validator.address).map_or(0, Vec::len) as u64;
                    votes += evidence.votes.get(&validator.address).map_or(0, Vec::len) as u64;
                }
                if proposals + votes > 0 {
                    warn!(
                        height = certificate.height.0,
                        proposals, votes, "equivocation evidence observed"
                    );
                    self.metrics.equivocation_evidence.inc_by(proposals + votes);
                }
                // Move on only if the decided height is really committed here; otherwise run the
                // height again, and sync brings the block this node is missing.
                let next = if self.tip_state().height >= certificate.height.0 {
                    Next::Start(self.next_height(), self.height_params())
                } else {
                    warn!(
                        height = certificate.height.0,
                        "decided height not committed locally; restarting it"
                    );
                    Next::Restart(certificate.height, self.height_params())
                };
                let _ = reply.send(next);
            }
            AppMsg::GetDecidedValues { range, reply } => {
                let _ = reply.send(self.decided_values(range.start().0, range.end().0));
            }
            AppMsg::ProcessSyncedValue {
                height,
                round,
                proposer,
                value_bytes,
                reply,
            } => {
                let _ = reply.send(self.check_synced(height, round, proposer, value_bytes));
            }
        }
    }

    fn proposed_value(
        &self,
        height: Height,
        candidate: &Candidate,
        id: BlockId,
        validity: Validity,
    ) -> ProposedValue<EzContext> {
        ProposedValue {
            height,
            round: candidate.round,
            valid_round: candidate.valid_round,
            proposer: candidate.proposer,
            value: id,
            validity,
        }
    }

    /// Builds a block from the mempool: at once when it holds bundles to include; otherwise it
    /// waits for one to arrive (then `batch_window` more, to batch with it) or for the block
    /// interval, whichever comes first, so an idle chain makes one empty block per interval.
    /// Rounds after the first never wait: they follow a timeout already.
    async fn build_when_worth_it(
        &self,
        parent: &ChainState,
        height: u64,
        round: u32,
        timeout: Duration,
    ) -> Option<AppliedBlock> {
        let deadline = Instant::now() + self.block_interval.min(timeout.saturating_sub(PROPOSE_MARGIN));
        loop {
            let (candidates, changes) = {
                let mempool = self.mempool.lock().unwrap_or_else(|p| p.into_inner());
                (mempool.snapshot(self.max_bundles_per_block), mempool.changes())
            };
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            let built = match build_block_verified(
                parent,
                candidates,
                height,
                now_ms.max(parent.timestamp_ms),
                Some(&self.chain.snapshot_rules()),
            ) {
                Ok(built) => built,
                Err(e) => {
                    error!(error = %e, "building a block failed");
                    return None;
                }
            };
            if !built.rejected.is_empty() {
                debug!(count = built.rejected.len(), "left invalid bundles out of the proposal");
            }
            if !built.applied.block.entries.is_empty() || round > 0 || Instant::now() >= deadline {
                return Some(built.applied);
            }
            // Nothing to include: wait for the pool to change, or for the interval.
            let moved = loop {
                let now = Instant::now();
                if now >= deadline {
                    break false;
                }
                if self.mempool.lock().unwrap_or_else(|p| p.into_inner()).changes() != changes {
                    break true;
                }
                tokio::time::sleep(MEMPOOL_POLL.min(deadline - now)).await;
            };
            if moved {
                tokio::time::sleep(
                    self.batch_window
                        .min(deadline.saturating_duration_since(Instant::now())),
                )
                .await;
            }
        }
    }

    /// Builds, records and streams this node's proposal for (height, round).
    async fn propose(
        &mut self,
        height: Height,
        round: Round,
        timeout: Duration,
        channels: &Channels<EzContext>,
    ) -> Option<BlockId> {
        let (proposer, key) = self.signer.clone()?;
        let parent = self.tip_state();
        if parent.height + 1 != height.0 {
            return None;
        }
        let round_number = round.as_u32().unwrap_or(0);
        let applied = match self.logged_proposal(&parent, height.0, round_number) {
            Some(applied) => {
                info!(height = height.0, round = %round, "proposing again the block proposed before the restart");
                applied
            }
            None => {
                let applied = self
                    .build_when_worth_it(&parent, height.0, round_number, timeout)
                    .await?;
                // A block decided meanwhile (through sync) makes this one useless.
                if self.tip_state().height + 1 != height.0 {
                    return None;
                }
                self.log_proposal(height.0, round_number, &applied.block);
                applied
            }
        };
        let id = BlockId(applied.block.hash());
        let body = Bytes::from(encode(&applied.block));
        self.keep_candidate(&applied.block, &body);
        let signature = key
            .sign(&stream_bytes(
                self.chain_id,
                height.0,
                round.as_u32().unwrap_or(0),
                &proposer,
                &body_hash(&body),
            ))
            .to_bytes();
        for message in stream_messages(height, round, Round::Nil, proposer, &body, signature) {
            if channels
                .network
                .send(NetworkMsg::PublishProposalPart(message))
                .await
                .is_err()
            {
                warn!("network channel closed while streaming a proposal");
            }
        }
        info!(height = height.0, round = %round, bundles = applied.block.entries.len(), block = %id, "proposed");
        self.candidates.insert(
            id,
            Candidate {
                applied,
                round,
                valid_round: Round::Nil,
                proposer,
                body,
                signature,
            },
        );
        Some(id)
    }

    /// Checks a reassembled proposal: proposer, stream signature, then full re-execution.
    fn check_received(&mut self, received: ReceivedProposal) -> Option<ProposedValue<EzContext>> {
        let validator = self.validator_set.get_by_address(&received.proposer)?;
        let round = received.round.as_u32()?;
        let signed = stream_bytes(
            self.chain_id,
            received.height.0,
            round,
            &received.proposer,
            &body_hash(&received.body),
        );
        if validator
            .public_key
            .verify(&signed, &Signature::from_bytes(received.signature))
            .is_err()
        {
            warn!(proposer = %received.proposer, "proposal stream with a bad signature dropped");
            return None;
        }
        let next = self.next_height().0;
        if received.height.0 > next && received.height.0 <= next + EARLY_HEIGHTS {
            let kept = self.early.entry(received.height.0).or_default();
            if kept.len() < EARLY_PER_HEIGHT {
                debug!(
                    height = received.height.0,
                    "proposal for a coming height kept until it starts"
                );
                kept.push(received);
            }
            return None;
        }
        if received.height.0 != next {
            debug!(height = received.height.0, "proposal for another height ignored");
            return None;
        }
        let block: Block = match decode(&received.body, MAX_BLOCK_BYTES) {
            Ok(block) => block,
            Err(e) => {
                warn!(error = %e, "undecodable proposal from a validator");
                return None;
            }
        };
        let id = BlockId(block.hash());
        let validity = self.validate(
            &block,
            received.round,
            received.valid_round,
            received.proposer,
            received.body.clone(),
            received.signature,
        );
        Some(ProposedValue {
            height: received.height,
            round: received.round,
            valid_round: received.valid_round,
            proposer: received.proposer,
            value: id,
            validity,
        })
    }

    /// Re-executes `block` on the tip state; a valid one becomes a commit candidate.
    fn validate(
        &mut self,
        block: &Block,
        round: Round,
        valid_round: Round,
        proposer: Address,
        body: Bytes,
        signature: [u8; 64],
    ) -> Validity {
        match self.apply(&self.tip_state(), block) {
            Ok(applied) => {
                self.keep_candidate(block, &body);
                self.candidates.insert(
                    BlockId(block.hash()),
                    Candidate {
                        applied,
                        round,
                        valid_round,
                        proposer,
                        body,
                        signature,
                    },
                );
                Validity::Valid
            }
            Err(e) => {
                warn!(height = block.header.height, error = %e, "invalid proposal");
                self.metrics.proposal_validation_failures.inc();
                Validity::Invalid
            }
        }
    }

    fn check_synced(
        &mut self,
        height: Height,
        round: Round,
        proposer: Address,
        bytes: Bytes,
    ) -> SyncedValueOutcome<EzContext> {
        let Ok(block) = decode::<Block>(&bytes, MAX_BLOCK_BYTES) else {
            return SyncedValueOutcome::PeerFault;
        };
        if block.header.height != height.0 || height != self.next_height() {
            return SyncedValueOutcome::PeerFault;
        }
        let validity = self.validate(&block, round, Round::Nil, proposer, bytes, [0u8; 64]);
        SyncedValueOutcome::Verdict(ProposedValue {
            height,
            round,
            valid_round: Round::Nil,
            proposer,
            value: BlockId(block.hash()),
            validity,
        })
    }

    /// Commits the decided block with its certificate, then moves the tip.
    fn commit(&mut self, certificate: &CommitCertificate<EzContext>) {
        let candidate = self
            .candidates
            .remove(&certificate.value_id)
            .or_else(|| self.kept_candidate(certificate.height.0, &certificate.value_id, certificate.round));
        let Some(candidate) = candidate else {
            error!(height = certificate.height.0, value = %certificate.value_id, "decided a block this node never validated; sync will fetch it");
            return;
        };
        let finality = FinalityCertificate {
            height: certificate.height.0,
            round: certificate.round.as_u32().unwrap_or(0),
            header_hash: certificate.value_id.0,
            signatures: certificate
                .commit_signatures
                .iter()
                .map(|s| {
                    let (validator, signature) = commit_signature_bytes(s);
                    FinalitySignature {
                        validator: ValidatorAddress(validator),
                        signature,
                    }
                })
                .collect(),
        };
        match self.chain.store.commit_block(&candidate.applied, &finality) {
            Ok(CommitOutcome::Committed) | Ok(CommitOutcome::AlreadyCommitted) => {
                let state = candidate.applied.state.clone();
                let parent_timestamp_ms = self.tip_state().timestamp_ms;
                let interval_ms = candidate
                    .applied
                    .block
                    .header
                    .timestamp_ms
                    .saturating_sub(parent_timestamp_ms);
                self.metrics.block_interval_seconds.observe(interval_ms as f64 / 1000.0);
                self.metrics.height.set(state.height as i64);
                self.metrics
                    .decided_round
                    .set(i64::from(certificate.round.as_u32().unwrap_or(0)));
                self.metrics
                    .bundles_committed
                    .inc_by(candidate.applied.block.entries.len() as u64);
                self.mempool.lock().unwrap_or_else(|p| p.into_inner()).prune(&state);
                info!(height = state.height, block = %certificate.value_id, bundles = candidate.applied.block.entries.len(), "committed");
                *self.chain.state.write().unwrap_or_else(|p| p.into_inner()) = state;
                // Nobody listening is fine: subscribers come and go.
                let _ = self.chain.commits.send(Arc::new(CommittedHeight {
                    header: candidate.applied.block.header.clone(),
                    certificate: finality.clone(),
                    receipts: candidate.applied.receipts.clone(),
                }));
                let committed = certificate.height.0;
                self.candidates.retain(|_, c| c.applied.block.header.height > committed);
                self.forget_candidates(committed);
                self.watch_own_key(&finality);
                self.count_missed_precommits(&finality);
            }
            Err(e) => error!(error = %e, height = certificate.height.0, "committing a decided block failed"),
        }
    }

    /// Sign-guard rule 2 on a committed certificate: a precommit by this validator's key that
    /// this node did not sign means another process signs with it.
    fn watch_own_key(&self, certificate: &FinalityCertificate) {
        let Some(watch) = &self.key_watch else {
            return;
        };
        if watch.guard.signed_elsewhere(watch.me, certificate) {
            self.metrics.own_key_foreign_signatures.inc();
            let Some(alarms) = &watch.alarms else {
                return;
            };
            error!(
                height = certificate.height,
                "a commit holds a precommit by this validator's key that this node did not sign: another process uses this key"
            );
            let _ = alarms.send(SigningAlarm::KeyUsedElsewhere {
                height: certificate.height,
                round: certificate.round,
            });
        }
    }

    /// Per genesis validator: one more height in a row without its precommit, or back to 0.
    /// (A commit holds the precommits that made the quorum, so a live validator's late one can
    /// be missing now and then; a run of them means it is down or cut off.)
    fn count_missed_precommits(&self, certificate: &FinalityCertificate) {
        for validator in &self.chain.genesis.validators {
            let address = ValidatorAddress::from_public_key(&validator.consensus_public_key);
            let run = self
                .metrics
                .validator_missed_commits
                .get_or_create(&crate::metrics::validator_label(&validator.name));
            if certificate.signatures.iter().any(|s| s.validator == address) {
                run.set(0);
            } else {
                run.inc();
            }
        }
    }

    fn decided_values(&self, from: u64, to: u64) -> Vec<RawDecidedValue<EzContext>> {
        let mut values = Vec::new();
        for height in from..=to.min(from.saturating_add(MAX_SYNC_BATCH - 1)) {
            let (Ok(Some(block)), Ok(Some(certificate))) =
                (self.chain.store.block(height), self.chain.store.certificate(height))
            else {
                break;
            };
            let signatures = certificate
                .signatures
                .iter()
                .map(|s| ExtendedCommitSignature::new(Address(s.validator), Signature::from_bytes(s.signature), None))
                .collect();
            let extended = ExtendedCommitCertificate {
                height: Height(height),
                round: Round::new(certificate.round),
                value_id: BlockId(certificate.header_hash),
                commit_signatures: signatures,
            };
            values.push(RawDecidedValue::new(Bytes::from(encode(&block)), extended));
        }
        values
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::streaming::stream_messages;
    use ezchain_protocol::bundle::EnvelopeParams;
    use ezchain_protocol::genesis::{Allocation, GenesisValidator};
    use ezchain_protocol::{BundleSidecar, Genesis, Hash32, OffChainTx, SigningKey, Submission, ValueRange};
    use malachitebft_app_channel::app::types::PeerId;

    struct Fixture {
        app: ConsensusApp,
        genesis_state: ChainState,
        validator: PrivateKey,
        proposer: Address,
        _dir: tempfile::TempDir,
    }

    fn fixture() -> Fixture {
        let validator = PrivateKey::from([5u8; 32]);
        let public = validator.public_key();
        let wallet = SigningKey::from_bytes(&[6u8; 32]).expect("key");
        let genesis = Genesis {
            chain_id: 4,
            genesis_time_ms: 0,
            validators: vec![GenesisValidator {
                name: "v".into(),
                consensus_public_key: *public.as_bytes(),
                voting_power: 1,
            }],
            allocations: vec![Allocation {
                owner: wallet.address(),
                range: ValueRange::new(0, 9).expect("range"),
            }],
            faucet: None,
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let store = ChainStore::open(&dir.path().join("chain.redb"), &genesis).expect("store");
        let state = store.load_state(4).expect("state");
        let chain = Arc::new(ChainView::new(store, state.clone(), genesis.clone()));
        let set = ValidatorSet::from_genesis(&genesis).expect("set");
        let proposer = set.validators[0].address;
        let app = ConsensusApp::new(
            4,
            set,
            LinearTimeouts::default(),
            Duration::from_secs(1),
            Duration::from_millis(20),
            100,
            chain,
            Arc::new(Mutex::new(PendingPool::new(10))),
            None,
            NodeMetrics::register(
                &ezchain_host::build::BuildInfo::unknown(),
                &crate::metrics::NodeFacts {
                    mempool_capacity: 10,
                    validators: &[],
                    hosts_faucet: false,
                },
            ),
        );
        Fixture {
            app,
            genesis_state: state,
            validator,
            proposer,
            _dir: dir,
        }
    }

    fn peer() -> PeerId {
        let keypair = malachitebft_app_channel::app::types::Keypair::ed25519_from_bytes([8u8; 32]).expect("key");
        PeerId::from_bytes(&keypair.public().to_peer_id().to_bytes()).expect("peer id")
    }

    fn block(state: &ChainState) -> Block {
        let wallet = SigningKey::from_bytes(&[6u8; 32]).expect("key");
        let tx = OffChainTx {
            sender: wallet.address(),
            recipient: ezchain_protocol::Address([1; 20]),
            values: vec![ValueRange::new(0, 4).expect("range")],
            local_index: 0,
            tx_time: 1,
            extra_data: vec![],
        };
        let params = EnvelopeParams {
            chain_id: 4,
            seq: 1,
            expiry_height: 10,
            fee: 0,
            anti_spam_nonce: 1,
        };
        let submission = Submission::sign(
            &wallet,
            BundleSidecar {
                sender: wallet.address(),
                txs: vec![tx],
            },
            &params,
        );
        ezchain_protocol::build_block(state, &[submission], 1, 10)
            .expect("build")
            .applied
            .block
    }

    /// Streams `block` as `signer` would and returns what the app makes of it.
    fn deliver(fixture: &mut Fixture, block: &Block, signer: &PrivateKey) -> Option<ProposedValue<EzContext>> {
        let body = encode(block);
        let signature = signer
            .sign(&stream_bytes(4, 1, 0, &fixture.proposer, &body_hash(&body)))
            .to_bytes();
        let mut result = None;
        for message in stream_messages(Height(1), Round::new(0), Round::Nil, fixture.proposer, &body, signature) {
            if let Some(received) = fixture.app.streams.insert(peer(), message) {
                result = fixture.app.check_received(received);
            }
        }
        result
    }

    #[test]
    fn a_proposal_with_a_wrong_state_root_is_invalid_and_never_committed() {
        let mut f = fixture();
        let mut tampered = block(&f.genesis_state);
        tampered.header.state_root = Hash32([9u8; 32]);
        let validator = f.validator.clone();
        let verdict = deliver(&mut f, &tampered, &validator).expect("a complete, signed stream gets a verdict");
        assert_eq!(verdict.validity, Validity::Invalid);
        assert_eq!(verdict.value, BlockId(tampered.hash()));
        assert!(
            f.app.candidates.is_empty(),
            "an invalid block is never a commit candidate"
        );
        assert_eq!(f.app.metrics.proposal_validation_failures.get(), 1);
        // Deciding it anyway (a faulty quorum) commits nothing: the node never validated it.
        let certificate = CommitCertificate {
            height: Height(1),
            round: Round::new(0),
            value_id: BlockId(tampered.hash()),
            commit_signatures: vec![],
        };
        f.app.commit(&certificate);
        assert_eq!(f.app.chain.store.tip().expect("tip").height, 0);
    }

    #[test]
    fn an_honest_proposal_is_valid_and_commits() {
        let mut f = fixture();
        let honest = block(&f.genesis_state);
        let validator = f.validator.clone();
        let verdict = deliver(&mut f, &honest, &validator).expect("verdict");
        assert_eq!(verdict.validity, Validity::Valid);
        let certificate = CommitCertificate {
            height: Height(1),
            round: Round::new(0),
            value_id: BlockId(honest.hash()),
            commit_signatures: vec![],
        };
        f.app.commit(&certificate);
        assert_eq!(f.app.chain.store.tip().expect("tip").hash, honest.hash());
        assert_eq!(f.app.tip_state().height, 1);
    }

    #[test]
    fn a_stream_not_signed_by_the_proposer_is_dropped() {
        let mut f = fixture();
        let honest = block(&f.genesis_state);
        assert!(deliver(&mut f, &honest, &PrivateKey::from([77u8; 32])).is_none());
        assert!(f.app.candidates.is_empty());
    }
}
