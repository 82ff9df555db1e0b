//! Wire and WAL encoding of the engine's messages: each engine type is mapped to a borsh
//! record of plain fields, so the bytes on the network and in the WAL are defined here, not by
//! the engine's in-memory layout.
//!
//! Invariant: `decode(encode(x)) == x` for every message (tested), and decoding hostile bytes
//! returns an error — never a panic — with input capped at [`MAX_MESSAGE_BYTES`].

use super::context::{Address, BlockId, EzContext, Height, Proposal, ProposalPart, Vote};
use borsh::{BorshDeserialize, BorshSerialize};
use bytes::Bytes;
use ezchain_protocol::Hash32;
use ezchain_protocol::codec::{decode, encode};
use ezchain_protocol::finality::ValidatorAddress;
use malachitebft_app_channel::app::consensus::{LivenessMsg, ProposedValue, SignedConsensusMsg};
use malachitebft_app_channel::app::streaming::{StreamContent, StreamId, StreamMessage};
use malachitebft_app_channel::app::types::PeerId;
use malachitebft_app_channel::app::types::codec::{Codec, HasEncodedLen};
use malachitebft_app_channel::app::types::core::{
    CommitSignature, ExtendedCommitCertificate, ExtendedCommitSignature, NilOrVal, PolkaCertificate, PolkaSignature,
    Round, RoundCertificate, RoundCertificateType, RoundSignature, SignedExtension, SignedMessage, ValidatorProof,
    Validity, VoteType,
};
use malachitebft_app_channel::app::types::sync::{RawDecidedValue, Request, Response, Status};
use malachitebft_signing_ed25519::Signature;
use std::fmt;

/// Largest message accepted from a peer or the WAL.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug)]
pub struct CodecError(pub String);

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "consensus message encoding: {}", self.0)
    }
}

impl std::error::Error for CodecError {}

/// The one codec used for the network, sync and the WAL.
#[derive(Clone, Copy, Debug, Default)]
pub struct WireCodec;

type Sig = [u8; 64];

fn round_to_wire(round: Round) -> Option<u32> {
    round.as_u32()
}

fn round_from_wire(round: Option<u32>) -> Round {
    round.map_or(Round::Nil, Round::new)
}

fn sig_to_wire(signature: &Signature) -> Sig {
    signature.to_bytes()
}

fn sig_from_wire(bytes: Sig) -> Signature {
    Signature::from_bytes(bytes)
}

fn addr(address: &Address) -> [u8; 20] {
    address.0.0
}

fn addr_from(bytes: [u8; 20]) -> Address {
    Address(ValidatorAddress(bytes))
}

fn vote_type_to_wire(kind: VoteType) -> u8 {
    match kind {
        VoteType::Prevote => 0,
        VoteType::Precommit => 1,
    }
}

fn vote_type_from_wire(kind: u8) -> Result<VoteType, CodecError> {
    match kind {
        0 => Ok(VoteType::Prevote),
        1 => Ok(VoteType::Precommit),
        other => Err(CodecError(format!("unknown vote type {other}"))),
    }
}

fn nil_or_val_to_wire(value: &NilOrVal<BlockId>) -> Option<Hash32> {
    match value {
        NilOrVal::Nil => None,
        NilOrVal::Val(id) => Some(id.0),
    }
}

fn nil_or_val_from_wire(value: Option<Hash32>) -> NilOrVal<BlockId> {
    value.map_or(NilOrVal::Nil, |hash| NilOrVal::Val(BlockId(hash)))
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WireExtension {
    extension: Vec<u8>,
    signature: Sig,
}

impl WireExtension {
    fn from_signed(signed: &SignedExtension<EzContext>) -> Self {
        WireExtension {
            extension: signed.message.to_vec(),
            signature: sig_to_wire(&signed.signature),
        }
    }
    fn into_signed(self) -> SignedExtension<EzContext> {
        SignedMessage::new(Bytes::from(self.extension), sig_from_wire(self.signature))
    }
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WireVote {
    kind: u8,
    height: u64,
    round: Option<u32>,
    value: Option<Hash32>,
    validator: [u8; 20],
    extension: Option<WireExtension>,
}

impl WireVote {
    fn from_vote(vote: &Vote) -> Self {
        WireVote {
            kind: vote_type_to_wire(vote.kind),
            height: vote.height.0,
            round: round_to_wire(vote.round),
            value: nil_or_val_to_wire(&vote.value),
            validator: addr(&vote.validator),
            extension: vote.extension.as_ref().map(WireExtension::from_signed),
        }
    }
    fn into_vote(self) -> Result<Vote, CodecError> {
        Ok(Vote {
            kind: vote_type_from_wire(self.kind)?,
            height: Height(self.height),
            round: round_from_wire(self.round),
            value: nil_or_val_from_wire(self.value),
            validator: addr_from(self.validator),
            extension: self.extension.map(WireExtension::into_signed),
        })
    }
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WireProposal {
    height: u64,
    round: Option<u32>,
    value: Hash32,
    pol_round: Option<u32>,
    proposer: [u8; 20],
}

impl WireProposal {
    fn from_proposal(p: &Proposal) -> Self {
        WireProposal {
            height: p.height.0,
            round: round_to_wire(p.round),
            value: p.value.0,
            pol_round: round_to_wire(p.pol_round),
            proposer: addr(&p.proposer),
        }
    }
    fn into_proposal(self) -> Proposal {
        Proposal {
            height: Height(self.height),
            round: round_from_wire(self.round),
            value: BlockId(self.value),
            pol_round: round_from_wire(self.pol_round),
            proposer: addr_from(self.proposer),
        }
    }
}

#[derive(BorshSerialize, BorshDeserialize)]
enum WireSignedMsg {
    Vote(WireVote, Sig),
    Proposal(WireProposal, Sig),
}

impl WireSignedMsg {
    fn from_msg(msg: &SignedConsensusMsg<EzContext>) -> Self {
        match msg {
            SignedConsensusMsg::Vote(v) => {
                WireSignedMsg::Vote(WireVote::from_vote(&v.message), sig_to_wire(&v.signature))
            }
            SignedConsensusMsg::Proposal(p) => {
                WireSignedMsg::Proposal(WireProposal::from_proposal(&p.message), sig_to_wire(&p.signature))
            }
        }
    }
    fn into_msg(self) -> Result<SignedConsensusMsg<EzContext>, CodecError> {
        Ok(match self {
            WireSignedMsg::Vote(v, s) => SignedConsensusMsg::Vote(SignedMessage::new(v.into_vote()?, sig_from_wire(s))),
            WireSignedMsg::Proposal(p, s) => {
                SignedConsensusMsg::Proposal(SignedMessage::new(p.into_proposal(), sig_from_wire(s)))
            }
        })
    }
}

#[derive(BorshSerialize, BorshDeserialize)]
enum WirePart {
    Init {
        height: u64,
        round: Option<u32>,
        valid_round: Option<u32>,
        proposer: [u8; 20],
    },
    Data(Vec<u8>),
    Fin(Sig),
}

impl WirePart {
    fn from_part(part: &ProposalPart) -> Self {
        match part {
            ProposalPart::Init {
                height,
                round,
                valid_round,
                proposer,
            } => WirePart::Init {
                height: height.0,
                round: round_to_wire(*round),
                valid_round: round_to_wire(*valid_round),
                proposer: addr(proposer),
            },
            ProposalPart::Data(bytes) => WirePart::Data(bytes.to_vec()),
            ProposalPart::Fin { signature } => WirePart::Fin(*signature),
        }
    }
    fn into_part(self) -> ProposalPart {
        match self {
            WirePart::Init {
                height,
                round,
                valid_round,
                proposer,
            } => ProposalPart::Init {
                height: Height(height),
                round: round_from_wire(round),
                valid_round: round_from_wire(valid_round),
                proposer: addr_from(proposer),
            },
            WirePart::Data(bytes) => ProposalPart::Data(Bytes::from(bytes)),
            WirePart::Fin(signature) => ProposalPart::Fin { signature },
        }
    }
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WireStream {
    stream_id: Vec<u8>,
    sequence: u64,
    /// `None` is the end-of-stream marker.
    content: Option<WirePart>,
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WireSigned {
    address: [u8; 20],
    signature: Sig,
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WirePolka {
    height: u64,
    round: Option<u32>,
    value_id: Hash32,
    signatures: Vec<WireSigned>,
}

impl WirePolka {
    fn from_cert(c: &PolkaCertificate<EzContext>) -> Self {
        WirePolka {
            height: c.height.0,
            round: round_to_wire(c.round),
            value_id: c.value_id.0,
            signatures: c
                .polka_signatures
                .iter()
                .map(|s| WireSigned {
                    address: addr(&s.address),
                    signature: sig_to_wire(&s.signature),
                })
                .collect(),
        }
    }
    fn into_cert(self) -> PolkaCertificate<EzContext> {
        PolkaCertificate {
            height: Height(self.height),
            round: round_from_wire(self.round),
            value_id: BlockId(self.value_id),
            polka_signatures: self
                .signatures
                .into_iter()
                .map(|s| PolkaSignature::new(addr_from(s.address), sig_from_wire(s.signature)))
                .collect(),
        }
    }
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WireRoundSig {
    vote_type: u8,
    value_id: Option<Hash32>,
    address: [u8; 20],
    signature: Sig,
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WireRoundCert {
    height: u64,
    round: Option<u32>,
    skip: bool,
    signatures: Vec<WireRoundSig>,
}

impl WireRoundCert {
    fn from_cert(c: &RoundCertificate<EzContext>) -> Self {
        WireRoundCert {
            height: c.height.0,
            round: round_to_wire(c.round),
            skip: matches!(c.cert_type, RoundCertificateType::Skip),
            signatures: c
                .round_signatures
                .iter()
                .map(|s| WireRoundSig {
                    vote_type: vote_type_to_wire(s.vote_type),
                    value_id: nil_or_val_to_wire(&s.value_id),
                    address: addr(&s.address),
                    signature: sig_to_wire(&s.signature),
                })
                .collect(),
        }
    }
    fn into_cert(self) -> Result<RoundCertificate<EzContext>, CodecError> {
        Ok(RoundCertificate {
            height: Height(self.height),
            round: round_from_wire(self.round),
            cert_type: if self.skip {
                RoundCertificateType::Skip
            } else {
                RoundCertificateType::Precommit
            },
            round_signatures: self
                .signatures
                .into_iter()
                .map(|s| {
                    Ok(RoundSignature::new(
                        vote_type_from_wire(s.vote_type)?,
                        nil_or_val_from_wire(s.value_id),
                        addr_from(s.address),
                        sig_from_wire(s.signature),
                    ))
                })
                .collect::<Result<_, CodecError>>()?,
        })
    }
}

#[derive(BorshSerialize, BorshDeserialize)]
enum WireLiveness {
    Vote(WireVote, Sig),
    Polka(WirePolka),
    SkipRound(WireRoundCert),
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WireValidatorProof {
    public_key: Vec<u8>,
    peer_id: Vec<u8>,
    signature: Sig,
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WireProposedValue {
    height: u64,
    round: Option<u32>,
    valid_round: Option<u32>,
    proposer: [u8; 20],
    value: Hash32,
    valid: bool,
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WireStatus {
    peer_id: Vec<u8>,
    tip_height: u64,
    history_min_height: u64,
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WireRequest {
    from: u64,
    to: u64,
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WireExtCommitSig {
    address: [u8; 20],
    signature: Sig,
    extension: Option<WireExtension>,
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WireExtCommitCert {
    height: u64,
    round: Option<u32>,
    value_id: Hash32,
    signatures: Vec<WireExtCommitSig>,
}

impl WireExtCommitCert {
    fn from_cert(c: &ExtendedCommitCertificate<EzContext>) -> Self {
        WireExtCommitCert {
            height: c.height.0,
            round: round_to_wire(c.round),
            value_id: c.value_id.0,
            signatures: c
                .commit_signatures
                .iter()
                .map(|s| WireExtCommitSig {
                    address: addr(&s.address),
                    signature: sig_to_wire(&s.signature),
                    extension: s.extension.as_ref().map(WireExtension::from_signed),
                })
                .collect(),
        }
    }
    fn into_cert(self) -> ExtendedCommitCertificate<EzContext> {
        ExtendedCommitCertificate {
            height: Height(self.height),
            round: round_from_wire(self.round),
            value_id: BlockId(self.value_id),
            commit_signatures: self
                .signatures
                .into_iter()
                .map(|s| {
                    ExtendedCommitSignature::new(
                        addr_from(s.address),
                        sig_from_wire(s.signature),
                        s.extension.map(WireExtension::into_signed),
                    )
                })
                .collect(),
        }
    }
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WireRawDecided {
    value_bytes: Vec<u8>,
    certificate: WireExtCommitCert,
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WireResponse {
    start_height: u64,
    values: Vec<WireRawDecided>,
}

fn peer_from(bytes: &[u8]) -> Result<PeerId, CodecError> {
    PeerId::from_bytes(bytes).map_err(|e| CodecError(format!("bad peer id: {e}")))
}

fn read<T: BorshDeserialize>(bytes: &Bytes) -> Result<T, CodecError> {
    decode(bytes, MAX_MESSAGE_BYTES).map_err(|e| CodecError(e.to_string()))
}

fn write<T: BorshSerialize>(value: &T) -> Result<Bytes, CodecError> {
    Ok(Bytes::from(encode(value)))
}

/// Implements `Codec<$engine>` through a wire record and two conversion closures.
macro_rules! wire_codec {
    ($engine:ty, $wire:ty, |$e:ident| $to:expr, |$w:ident| $from:expr) => {
        impl Codec<$engine> for WireCodec {
            type Error = CodecError;

            fn encode(&self, $e: &$engine) -> Result<Bytes, CodecError> {
                let wire: $wire = $to;
                write(&wire)
            }

            fn decode(&self, bytes: Bytes) -> Result<$engine, CodecError> {
                let $w: $wire = read(&bytes)?;
                $from
            }
        }
    };
}

wire_codec!(ProposalPart, WirePart, |part| WirePart::from_part(part), |wire| Ok(
    wire.into_part()
));

wire_codec!(
    SignedConsensusMsg<EzContext>,
    WireSignedMsg,
    |msg| WireSignedMsg::from_msg(msg),
    |wire| wire.into_msg()
);

wire_codec!(
    StreamMessage<ProposalPart>,
    WireStream,
    |msg| WireStream {
        stream_id: msg.stream_id.to_bytes().to_vec(),
        sequence: msg.sequence,
        content: match &msg.content {
            StreamContent::Data(part) => Some(WirePart::from_part(part)),
            StreamContent::Fin => None,
        },
    },
    |wire| Ok(StreamMessage::new(
        StreamId::new(Bytes::from(wire.stream_id)),
        wire.sequence,
        match wire.content {
            Some(part) => StreamContent::Data(part.into_part()),
            None => StreamContent::Fin,
        },
    ))
);

wire_codec!(
    LivenessMsg<EzContext>,
    WireLiveness,
    |msg| match msg {
        LivenessMsg::Vote(v) => WireLiveness::Vote(WireVote::from_vote(&v.message), sig_to_wire(&v.signature)),
        LivenessMsg::PolkaCertificate(c) => WireLiveness::Polka(WirePolka::from_cert(c)),
        LivenessMsg::SkipRoundCertificate(c) => WireLiveness::SkipRound(WireRoundCert::from_cert(c)),
    },
    |wire| Ok(match wire {
        WireLiveness::Vote(v, s) => LivenessMsg::Vote(SignedMessage::new(v.into_vote()?, sig_from_wire(s))),
        WireLiveness::Polka(c) => LivenessMsg::PolkaCertificate(c.into_cert()),
        WireLiveness::SkipRound(c) => LivenessMsg::SkipRoundCertificate(c.into_cert()?),
    })
);

wire_codec!(
    ValidatorProof<EzContext>,
    WireValidatorProof,
    |proof| WireValidatorProof {
        public_key: proof.public_key.clone(),
        peer_id: proof.peer_id.clone(),
        signature: sig_to_wire(&proof.signature),
    },
    |wire| Ok(ValidatorProof::new(
        wire.public_key,
        wire.peer_id,
        sig_from_wire(wire.signature)
    ))
);

wire_codec!(
    PolkaCertificate<EzContext>,
    WirePolka,
    |cert| WirePolka::from_cert(cert),
    |wire| Ok(wire.into_cert())
);

wire_codec!(
    ProposedValue<EzContext>,
    WireProposedValue,
    |value| WireProposedValue {
        height: value.height.0,
        round: round_to_wire(value.round),
        valid_round: round_to_wire(value.valid_round),
        proposer: addr(&value.proposer),
        value: value.value.0,
        valid: value.validity.is_valid(),
    },
    |wire| Ok(ProposedValue {
        height: Height(wire.height),
        round: round_from_wire(wire.round),
        valid_round: round_from_wire(wire.valid_round),
        proposer: addr_from(wire.proposer),
        value: BlockId(wire.value),
        validity: Validity::from_bool(wire.valid),
    })
);

wire_codec!(
    Status<EzContext>,
    WireStatus,
    |status| WireStatus {
        peer_id: status.peer_id.to_bytes(),
        tip_height: status.tip_height.0,
        history_min_height: status.history_min_height.0,
    },
    |wire| Ok(Status {
        peer_id: peer_from(&wire.peer_id)?,
        tip_height: Height(wire.tip_height),
        history_min_height: Height(wire.history_min_height),
    })
);

wire_codec!(
    Request<EzContext>,
    WireRequest,
    |request| match request {
        Request::ValueRequest(r) => WireRequest {
            from: r.range.start().0,
            to: r.range.end().0
        },
    },
    |wire| Ok(Request::ValueRequest(malachitebft_sync::ValueRequest::new(
        Height(wire.from)..=Height(wire.to)
    )))
);

wire_codec!(
    Response<EzContext>,
    WireResponse,
    |response| match response {
        Response::ValueResponse(r) => WireResponse {
            start_height: r.start_height.0,
            values: r
                .values
                .iter()
                .map(|v| WireRawDecided {
                    value_bytes: v.value_bytes.to_vec(),
                    certificate: WireExtCommitCert::from_cert(&v.certificate),
                })
                .collect(),
        },
    },
    |wire| Ok(Response::ValueResponse(malachitebft_sync::ValueResponse::new(
        Height(wire.start_height),
        wire.values
            .into_iter()
            .map(|v| RawDecidedValue::new(Bytes::from(v.value_bytes), v.certificate.into_cert()))
            .collect(),
    )))
);

impl HasEncodedLen<Response<EzContext>> for WireCodec {
    fn encoded_len(&self, msg: &Response<EzContext>) -> Result<usize, CodecError> {
        Ok(Codec::<Response<EzContext>>::encode(self, msg)?.len())
    }
}

/// A commit signature in the engine's certificate, for converting to the protocol's form.
pub fn commit_signature_bytes(signature: &CommitSignature<EzContext>) -> ([u8; 20], Sig) {
    (addr(&signature.address), sig_to_wire(&signature.signature))
}

#[cfg(test)]
mod tests {
    use super::*;
    use malachitebft_sync::{ValueRequest, ValueResponse};

    fn round_trip<T>(value: T)
    where
        WireCodec: Codec<T, Error = CodecError>,
        T: PartialEq + fmt::Debug,
    {
        let bytes = WireCodec.encode(&value).expect("encodes");
        assert_eq!(WireCodec.decode(bytes).expect("decodes"), value);
    }

    fn address(n: u8) -> Address {
        addr_from([n; 20])
    }

    fn sig(n: u8) -> Signature {
        Signature::from_bytes([n; 64])
    }

    fn vote(kind: VoteType, value: NilOrVal<BlockId>) -> Vote {
        Vote {
            kind,
            height: Height(7),
            round: Round::new(2),
            value,
            validator: address(1),
            extension: Some(SignedMessage::new(Bytes::from_static(b"ext"), sig(3))),
        }
    }

    fn peer() -> PeerId {
        let keypair = malachitebft_app_channel::app::types::Keypair::ed25519_from_bytes([4u8; 32]).expect("key");
        PeerId::from_bytes(&keypair.public().to_peer_id().to_bytes()).expect("peer")
    }

    #[test]
    fn every_engine_message_round_trips() {
        let proposal = Proposal {
            height: Height(7),
            round: Round::new(1),
            value: BlockId(Hash32([5; 32])),
            pol_round: Round::Nil,
            proposer: address(2),
        };
        round_trip(SignedConsensusMsg::Vote(SignedMessage::new(
            vote(VoteType::Precommit, NilOrVal::Val(BlockId(Hash32([9; 32])))),
            sig(1),
        )));
        round_trip(SignedConsensusMsg::Vote(SignedMessage::new(
            vote(VoteType::Prevote, NilOrVal::Nil),
            sig(2),
        )));
        round_trip(SignedConsensusMsg::<EzContext>::Proposal(SignedMessage::new(
            proposal,
            sig(4),
        )));
        for part in [
            ProposalPart::Init {
                height: Height(1),
                round: Round::new(0),
                valid_round: Round::Nil,
                proposer: address(3),
            },
            ProposalPart::Data(Bytes::from_static(b"body")),
            ProposalPart::Fin { signature: [6; 64] },
        ] {
            round_trip(part.clone());
            round_trip(StreamMessage::new(
                StreamId::new(Bytes::from_static(b"id")),
                3,
                StreamContent::Data(part),
            ));
        }
        round_trip(StreamMessage::<ProposalPart>::new(
            StreamId::new(Bytes::from_static(b"id")),
            4,
            StreamContent::Fin,
        ));
        let polka = PolkaCertificate::<EzContext> {
            height: Height(7),
            round: Round::new(0),
            value_id: BlockId(Hash32([8; 32])),
            polka_signatures: vec![
                PolkaSignature::new(address(1), sig(1)),
                PolkaSignature::new(address(2), sig(2)),
            ],
        };
        round_trip(polka.clone());
        round_trip(LivenessMsg::PolkaCertificate(polka));
        round_trip(LivenessMsg::Vote(SignedMessage::new(
            vote(VoteType::Prevote, NilOrVal::Nil),
            sig(5),
        )));
        round_trip(LivenessMsg::<EzContext>::SkipRoundCertificate(RoundCertificate {
            height: Height(7),
            round: Round::new(3),
            cert_type: RoundCertificateType::Skip,
            round_signatures: vec![RoundSignature::new(
                VoteType::Prevote,
                NilOrVal::Nil,
                address(1),
                sig(7),
            )],
        }));
        round_trip(ValidatorProof::<EzContext>::new(vec![1; 32], vec![2; 38], sig(9)));
        round_trip(ProposedValue::<EzContext> {
            height: Height(7),
            round: Round::new(0),
            valid_round: Round::Nil,
            proposer: address(1),
            value: BlockId(Hash32([1; 32])),
            validity: Validity::Invalid,
        });
        round_trip(Status::<EzContext> {
            peer_id: peer(),
            tip_height: Height(9),
            history_min_height: Height(1),
        });
        round_trip(Request::<EzContext>::ValueRequest(ValueRequest::new(
            Height(2)..=Height(5),
        )));
        let certificate = ExtendedCommitCertificate::<EzContext> {
            height: Height(2),
            round: Round::new(0),
            value_id: BlockId(Hash32([2; 32])),
            commit_signatures: vec![ExtendedCommitSignature::new(address(1), sig(1), None)],
        };
        round_trip(Response::ValueResponse(ValueResponse::new(
            Height(2),
            vec![RawDecidedValue::new(Bytes::from_static(b"block"), certificate)],
        )));
    }

    #[test]
    fn hostile_bytes_are_errors() {
        for bytes in [vec![], vec![9u8; 3], vec![0xff; 64]] {
            assert!(Codec::<SignedConsensusMsg<EzContext>>::decode(&WireCodec, Bytes::from(bytes.clone())).is_err());
            assert!(Codec::<Response<EzContext>>::decode(&WireCodec, Bytes::from(bytes.clone())).is_err());
            assert!(Codec::<StreamMessage<ProposalPart>>::decode(&WireCodec, Bytes::from(bytes)).is_err());
        }
        // An unknown vote type is refused, not mapped.
        let mut bytes = Codec::<SignedConsensusMsg<EzContext>>::encode(
            &WireCodec,
            &SignedConsensusMsg::Vote(SignedMessage::new(vote(VoteType::Prevote, NilOrVal::Nil), sig(1))),
        )
        .expect("encodes")
        .to_vec();
        bytes[1] = 7;
        assert!(Codec::<SignedConsensusMsg<EzContext>>::decode(&WireCodec, Bytes::from(bytes)).is_err());
    }
}
