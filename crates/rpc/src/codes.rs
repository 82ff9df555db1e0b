//! The node's stable error codes: what a refusal's `error.code` says.

macro_rules! error_codes {
    ($($(#[doc = $doc:literal])* $variant:ident = $text:literal,)*) => {
        /// A refusal's stable code. Clients match on these, never on messages.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[doc = $doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in the order docs/NODE.md lists them.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as it travels.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $text,)*
                }
            }

            /// What the code means (its doc comment here; docs/NODE.md's table is made of these).
            pub const fn meaning(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => concat!($($doc),*).trim_ascii(),)*
                }
            }

            /// The code a node sent, if this client knows it (a newer node may send others).
            pub fn parse(text: &str) -> Option<ErrorCode> {
                match text {
                    $($text => Some(ErrorCode::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

error_codes! {
    /// No route with that path.
    NotFound = "not_found",
    /// The body, query or path is not what the route takes.
    MalformedRequest = "malformed_request",
    /// A `submission` that is hex but no borsh `Submission`.
    MalformedSubmission = "malformed_submission",
    /// A batch submit of more entries than a request may carry (256): split it.
    BatchTooLarge = "batch_too_large",
    /// Not `0x` + 40 hex digits, or a wrong EIP-55 checksum.
    MalformedAddress = "malformed_address",
    /// A mailbox `package` that is hex but no borsh `TransferPackage`.
    MalformedPackage = "malformed_package",
    /// A mailbox signature that is not 65 bytes of hex.
    MalformedSignature = "malformed_signature",
    /// The bundle breaks a bundle rule.
    InvalidBundle = "invalid_bundle",
    /// A transfer pays its own sender.
    SelfTransfer = "self_transfer",
    /// The bundle's expiry height has passed.
    BundleExpired = "bundle_expired",
    /// The sender's sequence number was already used.
    StaleSeq = "stale_seq",
    /// The sender's sequence number skips one.
    SeqGap = "seq_gap",
    /// Two bundles of one sender in one block.
    DuplicateSender = "duplicate_sender",
    /// Another bundle of this sender is pending (a replacement must raise the fee).
    PendingBundleExists = "pending_bundle_exists",
    /// A replacement that does not raise the fee.
    FeeNotHigher = "fee_not_higher",
    /// A snapshot whose claimed holdings are not what its evidence proves.
    SnapshotUnsound = "snapshot_unsound",
    /// A snapshot that would show more own bundles than one snapshot may.
    SnapshotHistoryTooLong = "snapshot_history_too_long",
    /// A snapshot's evidence over its limits, or a block already full of snapshots (transient).
    SnapshotTooLarge = "snapshot_too_large",
    /// A snapshot whose evidence does not check (basis, own bundles or an incoming package).
    SnapshotEvidenceInvalid = "snapshot_evidence_invalid",
    /// The mempool is full; retry later (transient).
    MempoolFull = "mempool_full",
    /// No finalized block at that height (yet).
    BlockNotFound = "block_not_found",
    /// No receipt for that account and sequence number (yet).
    ReceiptNotFound = "receipt_not_found",
    /// A subscription to more addresses than a node follows.
    TooManyAddresses = "too_many_addresses",
    /// An ack of more packages than one request may name.
    TooManyIds = "too_many_ids",
    /// A package that pays someone else than the mailbox's address.
    WrongRecipient = "wrong_recipient",
    /// A package whose newest bundle is not a finalized payment of that value here.
    PackageNotBacked = "package_not_backed",
    /// The package's block is not finalized on this node yet (transient).
    PackageBlockUnknown = "package_block_unknown",
    /// A package over the mailbox's size limit.
    PackageTooLarge = "package_too_large",
    /// The recipient's mailbox, or all mailboxes, are at their caps.
    MailboxFull = "mailbox_full",
    /// An unknown, used, expired or foreign challenge.
    ChallengeInvalid = "challenge_invalid",
    /// The signature is not the address's over this request.
    SignatureInvalid = "signature_invalid",
    /// This node hosts no faucet.
    FaucetUnavailable = "faucet_unavailable",
    /// An amount outside the faucet's per-request range.
    FaucetAmountInvalid = "faucet_amount_invalid",
    /// Over the faucet's per-address limit for the last hour.
    FaucetRateLimited = "faucet_rate_limited",
    /// Over the faucet's limit for all addresses for the last hour.
    FaucetHourlyLimit = "faucet_hourly_limit",
    /// The faucet wallet holds too little.
    FaucetEmpty = "faucet_empty",
    /// The faucet's own payment is not final yet (transient).
    FaucetPaymentPending = "faucet_payment_pending",
    /// The faucet's payment is final but its package is not delivered yet (transient).
    FaucetDeliveryPending = "faucet_delivery_pending",
    /// The faucet's payment was refused by the chain.
    FaucetSendFailed = "faucet_send_failed",
    /// The faucet wallet failed otherwise.
    FaucetError = "faucet_error",
    /// Missing or wrong admin token.
    Unauthorized = "unauthorized",
    /// An administration request that did not come from this host (loopback).
    AdminLocalOnly = "admin_local_only",
    /// An export of a database this node does not have.
    UnknownDatabase = "unknown_database",
    /// The export's target file exists.
    AlreadyExists = "already_exists",
    /// The export failed.
    ExportFailed = "export_failed",
    /// Not ready (the `data` says why).
    NotReady = "not_ready",
    /// The node's database failed.
    StoreError = "store_error",
    /// The node could not draw randomness.
    RandomnessUnavailable = "randomness_unavailable",
    /// Anything else on the node's side.
    InternalError = "internal_error",
}

impl ErrorCode {
    /// A code from the faucet (a client reports them as one kind of refusal).
    pub fn is_faucet(self) -> bool {
        self.as_str().starts_with("faucet_")
    }

    /// After this refusal of a submission the bundle can never be included: its values are
    /// the sender's again.
    pub fn is_fatal_for_submission(self) -> bool {
        matches!(
            self,
            ErrorCode::InvalidBundle
                | ErrorCode::SelfTransfer
                | ErrorCode::BundleExpired
                | ErrorCode::MalformedSubmission
                | ErrorCode::SeqGap
                | ErrorCode::SnapshotUnsound
                | ErrorCode::SnapshotHistoryTooLong
                | ErrorCode::SnapshotEvidenceInvalid
        )
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_parses_back_and_is_unique() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(*code));
            assert!(seen.insert(code.as_str()), "{code} twice");
            assert!(code.as_str().chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        }
        assert_eq!(ErrorCode::parse("no_such_code"), None);
    }
}
