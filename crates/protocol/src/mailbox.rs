//! Mailbox authentication: what a recipient signs to fetch or acknowledge the transfer packages
//! a node keeps for it.
//!
//! A node hands out a fresh random challenge; the recipient signs the digest of (chain, action,
//! its address, the challenge, the package ids it acknowledges) with its wallet key. The node
//! recovers the signer and serves only the address that signed. Binding the chain and the
//! action keeps a signature from being replayed on another chain or as another request.

use crate::address::Address;
use crate::hash::{Hash32, tag, tagged_hash};
use crate::signature::{RecoverableSignature, SignatureError, SigningKey};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MailboxAction {
    Fetch,
    Ack,
}

impl MailboxAction {
    fn tag(self) -> &'static [u8] {
        match self {
            MailboxAction::Fetch => b"fetch",
            MailboxAction::Ack => b"ack",
        }
    }
}

/// The digest a recipient signs for one mailbox request.
pub fn mailbox_auth_digest(
    genesis_hash: &Hash32,
    action: MailboxAction,
    recipient: &Address,
    challenge: &Hash32,
    package_ids: &[Hash32],
) -> Hash32 {
    let ids: Vec<u8> = package_ids.iter().flat_map(|id| id.0).collect();
    tagged_hash(
        tag::MAILBOX_AUTH,
        &[
            genesis_hash.as_bytes(),
            action.tag(),
            &recipient.0,
            challenge.as_bytes(),
            &(package_ids.len() as u64).to_be_bytes(),
            &ids,
        ],
    )
}

/// Signs a mailbox request as `key`'s address.
pub fn sign_mailbox_request(
    key: &SigningKey,
    genesis_hash: &Hash32,
    action: MailboxAction,
    challenge: &Hash32,
    package_ids: &[Hash32],
) -> RecoverableSignature {
    key.sign(&mailbox_auth_digest(
        genesis_hash,
        action,
        &key.address(),
        challenge,
        package_ids,
    ))
}

/// True when `signature` is `recipient`'s over exactly this request.
pub fn verify_mailbox_request(
    genesis_hash: &Hash32,
    action: MailboxAction,
    recipient: &Address,
    challenge: &Hash32,
    package_ids: &[Hash32],
    signature: &RecoverableSignature,
) -> Result<bool, SignatureError> {
    let digest = mailbox_auth_digest(genesis_hash, action, recipient, challenge, package_ids);
    Ok(signature.recover_signer(&digest)? == *recipient)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SigningKey {
        SigningKey::from_bytes(&[byte; 32]).expect("valid test key")
    }

    #[test]
    fn only_the_signed_request_verifies() {
        let genesis = Hash32([9; 32]);
        let challenge = Hash32([1; 32]);
        let ids = [Hash32([2; 32]), Hash32([3; 32])];
        let alice = key(7);
        let sig = sign_mailbox_request(&alice, &genesis, MailboxAction::Ack, &challenge, &ids);
        let me = alice.address();
        assert_eq!(
            verify_mailbox_request(&genesis, MailboxAction::Ack, &me, &challenge, &ids, &sig),
            Ok(true)
        );
        // Another action, challenge, id list, chain or address does not verify.
        let checks = [
            verify_mailbox_request(&genesis, MailboxAction::Fetch, &me, &challenge, &ids, &sig),
            verify_mailbox_request(&genesis, MailboxAction::Ack, &me, &Hash32([4; 32]), &ids, &sig),
            verify_mailbox_request(&genesis, MailboxAction::Ack, &me, &challenge, &ids[..1], &sig),
            verify_mailbox_request(&Hash32([8; 32]), MailboxAction::Ack, &me, &challenge, &ids, &sig),
            verify_mailbox_request(&genesis, MailboxAction::Ack, &key(8).address(), &challenge, &ids, &sig),
        ];
        for check in checks {
            assert_ne!(check, Ok(true));
        }
    }
}
