//! Proposal streaming: a block travels as `Init`, `Data` chunks of its borsh encoding, and a
//! `Fin` part carrying the proposer's signature over the whole body; receivers reassemble the
//! parts of each stream, in any arrival order.
//!
//! Invariant: a stream yields a proposal only when it is complete (every sequence number up to
//! the end marker present) and within the size cap; a buffer never grows without bound — at most
//! [`MAX_OPEN_STREAMS`] streams of at most [`MAX_STREAM_BYTES`] each are kept.

use super::context::{Address, Height, ProposalPart};
use bytes::Bytes;
use ezchain_protocol::Hash32;
use malachitebft_app_channel::app::streaming::{StreamContent, StreamId, StreamMessage};
use malachitebft_app_channel::app::types::PeerId;
use malachitebft_app_channel::app::types::core::Round;
use std::collections::{BTreeMap, HashMap, VecDeque};

/// Size of one `Data` part.
pub const PART_BYTES: usize = 64 * 1024;
/// Largest block body accepted in a stream.
pub const MAX_STREAM_BYTES: usize = 16 * 1024 * 1024;
/// Streams being reassembled at once; the oldest is dropped beyond this.
pub const MAX_OPEN_STREAMS: usize = 64;

/// A fully received proposal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedProposal {
    pub height: Height,
    pub round: Round,
    pub valid_round: Round,
    pub proposer: Address,
    pub body: Bytes,
    pub signature: [u8; 64],
}

/// Stream id of a proposal: unique per (height, round).
pub fn stream_id(height: Height, round: Round) -> StreamId {
    let mut bytes = height.0.to_be_bytes().to_vec();
    bytes.extend_from_slice(&round.as_i64().to_be_bytes());
    StreamId::new(Bytes::from(bytes))
}

/// The stream messages for one proposal, in order, ending with the end marker.
pub fn stream_messages(
    height: Height,
    round: Round,
    valid_round: Round,
    proposer: Address,
    body: &[u8],
    signature: [u8; 64],
) -> Vec<StreamMessage<ProposalPart>> {
    let id = stream_id(height, round);
    let mut parts = vec![ProposalPart::Init {
        height,
        round,
        valid_round,
        proposer,
    }];
    parts.extend(
        body.chunks(PART_BYTES)
            .map(|chunk| ProposalPart::Data(Bytes::copy_from_slice(chunk))),
    );
    parts.push(ProposalPart::Fin { signature });
    let mut messages: Vec<StreamMessage<ProposalPart>> = parts
        .into_iter()
        .enumerate()
        .map(|(seq, part)| StreamMessage::new(id.clone(), seq as u64, StreamContent::Data(part)))
        .collect();
    let end = messages.len() as u64;
    messages.push(StreamMessage::new(id, end, StreamContent::Fin));
    messages
}

/// Keccak of a body, as signed in `Fin`.
pub fn body_hash(body: &[u8]) -> Hash32 {
    Hash32(ezchain_protocol::hash::keccak256(body))
}

#[derive(Default)]
struct StreamBuffer {
    parts: BTreeMap<u64, ProposalPart>,
    end: Option<u64>,
    bytes: usize,
}

/// Reassembles streams keyed by (publisher, stream id).
#[derive(Default)]
pub struct PartStreams {
    streams: HashMap<(PeerId, StreamId), StreamBuffer>,
    order: VecDeque<(PeerId, StreamId)>,
}

impl PartStreams {
    /// Adds one message; returns the proposal when its stream is complete. Malformed or
    /// oversized streams are dropped.
    pub fn insert(&mut self, publisher: PeerId, message: StreamMessage<ProposalPart>) -> Option<ReceivedProposal> {
        let key = (publisher, message.stream_id.clone());
        if !self.streams.contains_key(&key) {
            if self.order.len() >= MAX_OPEN_STREAMS
                && let Some(oldest) = self.order.pop_front()
            {
                self.streams.remove(&oldest);
            }
            self.order.push_back(key.clone());
        }
        let buffer = self.streams.entry(key.clone()).or_default();
        match message.content {
            StreamContent::Fin => buffer.end = Some(message.sequence),
            StreamContent::Data(part) => {
                if let ProposalPart::Data(bytes) = &part {
                    buffer.bytes = buffer.bytes.saturating_add(bytes.len());
                }
                buffer.parts.insert(message.sequence, part);
            }
        }
        if buffer.bytes > MAX_STREAM_BYTES {
            self.remove(&key);
            return None;
        }
        let end = buffer.end?;
        if buffer.parts.len() as u64 != end || buffer.parts.keys().next_back() != Some(&(end - 1)) {
            return None;
        }
        let buffer = self.remove(&key)?;
        assemble(buffer)
    }

    fn remove(&mut self, key: &(PeerId, StreamId)) -> Option<StreamBuffer> {
        self.order.retain(|k| k != key);
        self.streams.remove(key)
    }
}

/// Init first, Fin last, Data in between; anything else is a malformed stream.
fn assemble(buffer: StreamBuffer) -> Option<ReceivedProposal> {
    let mut parts = buffer.parts.into_values();
    let ProposalPart::Init {
        height,
        round,
        valid_round,
        proposer,
    } = parts.next()?
    else {
        return None;
    };
    let mut body = Vec::with_capacity(buffer.bytes);
    let mut signature = None;
    for part in parts {
        match (part, signature) {
            (ProposalPart::Data(bytes), None) => body.extend_from_slice(&bytes),
            (ProposalPart::Fin { signature: s }, None) => signature = Some(s),
            _ => return None,
        }
    }
    Some(ReceivedProposal {
        height,
        round,
        valid_round,
        proposer,
        body: Bytes::from(body),
        signature: signature?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ezchain_protocol::finality::ValidatorAddress;

    fn test_peer() -> PeerId {
        let keypair = malachitebft_app_channel::app::types::Keypair::ed25519_from_bytes([3u8; 32]).expect("valid key");
        PeerId::from_bytes(&keypair.public().to_peer_id().to_bytes()).expect("valid peer id")
    }

    fn messages(body: &[u8]) -> Vec<StreamMessage<ProposalPart>> {
        stream_messages(
            Height(2),
            Round::new(0),
            Round::Nil,
            Address(ValidatorAddress([1; 20])),
            body,
            [7; 64],
        )
    }

    #[test]
    fn reassembles_in_any_order() {
        let body: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let mut msgs = messages(&body);
        assert!(msgs.len() > 4, "several data parts");
        msgs.reverse();
        let peer = test_peer();
        let mut streams = PartStreams::default();
        let mut done = None;
        for m in msgs {
            assert!(done.is_none(), "completes only on the last message");
            done = streams.insert(peer, m);
        }
        let proposal = done.expect("complete");
        assert_eq!(proposal.body.as_ref(), body.as_slice());
        assert_eq!(proposal.height, Height(2));
        assert_eq!(proposal.signature, [7; 64]);
    }

    #[test]
    fn incomplete_malformed_and_oversized_streams_yield_nothing() {
        let peer = test_peer();
        let mut streams = PartStreams::default();
        let mut msgs = messages(b"block");
        msgs.remove(1);
        assert!(msgs.into_iter().all(|m| streams.insert(peer, m).is_none()));
        // Two Fin parts: malformed.
        let mut doubled = messages(b"block");
        let fin = doubled[2].clone();
        doubled.insert(2, StreamMessage::new(fin.stream_id.clone(), 2, fin.content.clone()));
        for (seq, m) in doubled.iter_mut().enumerate() {
            m.sequence = seq as u64;
        }
        let mut other = PartStreams::default();
        assert!(doubled.into_iter().all(|m| other.insert(peer, m).is_none()));
        // Too big: dropped before completion.
        let huge = vec![0u8; MAX_STREAM_BYTES + PART_BYTES];
        let mut third = PartStreams::default();
        assert!(messages(&huge).into_iter().all(|m| third.insert(peer, m).is_none()));
        // Open streams are bounded.
        let mut many = PartStreams::default();
        for h in 0..(MAX_OPEN_STREAMS as u64 + 10) {
            let first = stream_messages(
                Height(h),
                Round::new(0),
                Round::Nil,
                Address(ValidatorAddress([1; 20])),
                b"x",
                [0; 64],
            );
            many.insert(peer, first[0].clone());
        }
        assert!(many.streams.len() <= MAX_OPEN_STREAMS);
    }
}
