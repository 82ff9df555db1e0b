//! Passing bundles on to the validators' RPC, so a wallet may submit to any node.
//!
//! A bundle crosses each link at most once per change: a node forwards what a *client* gave it
//! — new, or a fee bump — to every peer in `mempool.forward_to` (which lists every validator),
//! and never forwards what a peer forwarded to it (the request carries
//! [`ezchain_rpc::paths::FORWARDED_HEADER`]). Before this rule a repeat was forwarded too, and
//! validators that list each other bounced every pending bundle between them until a block
//! removed it: thousands of requests per payment.
//!
//! A restarted validator forgets its mempool; the wallet's own retry (every few seconds while
//! its bundle is pending) brings the bundle back: a client's repeat is forwarded again, at most
//! once per [`RESEND_AFTER`] for one bundle.
//!
//! Forwarding is best effort and never blocks the submitting client. Invariant: the queue and
//! the memory of recent forwards are bounded; when the queue is full a bundle is not forwarded
//! (the node that holds it still includes it when it proposes).

use ezchain_protocol::codec::encode;
use ezchain_protocol::mempool::Admission;
use ezchain_protocol::{Hash32, Submission};
use malachitebft_metrics::prometheus::metrics::counter::Counter;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::debug;

const QUEUE: usize = 4096;
/// A client's repeat of a bundle this node forwarded is forwarded again only after this long.
pub const RESEND_AFTER: Duration = Duration::from_secs(10);
/// Recent forwards remembered (oldest forgotten first beyond it).
const REMEMBERED: usize = 65_536;

/// Who handed this node a submission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A wallet or any other client.
    Client,
    /// Another node's forwarder.
    Peer,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Client => "client",
            Origin::Peer => "peer",
        }
    }
}

/// Sends bundles to the forwarding task.
#[derive(Clone)]
pub struct Forwarder {
    queue: Option<mpsc::Sender<Submission>>,
    /// When each recently forwarded envelope was last sent on.
    sent: Arc<Mutex<HashMap<Hash32, Instant>>>,
}

/// Whether a submission this node just admitted goes on to the peers.
pub fn should_forward(admission: &Admission, origin: Origin, last_forwarded: Option<Instant>, now: Instant) -> bool {
    match (origin, admission) {
        (Origin::Peer, _) => false,
        (Origin::Client, Admission::New | Admission::Replace { .. }) => true,
        (Origin::Client, Admission::Duplicate) => {
            last_forwarded.is_none_or(|at| now.saturating_duration_since(at) >= RESEND_AFTER)
        }
    }
}

impl Forwarder {
    /// A forwarder to `peers`, counting every request it sends in `sent_counter`; with no peers
    /// it does nothing.
    pub fn start(peers: Vec<SocketAddr>, sent_counter: Counter) -> (Forwarder, Option<tokio::task::JoinHandle<()>>) {
        let sent = Arc::new(Mutex::new(HashMap::new()));
        if peers.is_empty() {
            return (Forwarder { queue: None, sent }, None);
        }
        let (sender, mut receiver) = mpsc::channel::<Submission>(QUEUE);
        let client = reqwest::Client::builder().timeout(Duration::from_secs(3)).build().ok();
        let task = tokio::spawn(async move {
            let Some(client) = client else { return };
            while let Some(submission) = receiver.recv().await {
                let body = ezchain_rpc::types::SubmitRequest {
                    submission: hex::encode(encode(&submission)),
                };
                for peer in &peers {
                    let url = format!("http://{peer}{}", ezchain_rpc::paths::SUBMIT);
                    sent_counter.inc();
                    let request = client
                        .post(&url)
                        .header(ezchain_rpc::paths::FORWARDED_HEADER, "1")
                        .json(&body);
                    if let Err(error) = request.send().await {
                        debug!(%peer, %error, "forwarding a bundle failed");
                    }
                }
            }
        });
        (
            Forwarder {
                queue: Some(sender),
                sent,
            },
            Some(task),
        )
    }

    /// Passes `submission` on if [`should_forward`] says so.
    pub fn offer(&self, submission: &Submission, admission: &Admission, origin: Origin) {
        let Some(queue) = &self.queue else { return };
        let key = submission.envelope.envelope_hash();
        let now = Instant::now();
        {
            let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
            if !should_forward(admission, origin, sent.get(&key).copied(), now) {
                return;
            }
            if sent.len() >= REMEMBERED {
                // Forget the older half: a forgotten bundle is at worst forwarded once more.
                let mut times: Vec<Instant> = sent.values().copied().collect();
                times.sort_unstable();
                let cutoff = times[times.len() / 2];
                sent.retain(|_, at| *at > cutoff);
            }
            sent.insert(key, now);
        }
        if queue.try_send(submission.clone()).is_err() {
            debug!("forward queue full; bundle stays with this node");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_goes_on_once_per_change_and_a_clients_repeat_only_after_a_while() {
        let now = Instant::now();
        let bump = Admission::Replace { old_fee: 1 };
        assert!(should_forward(&Admission::New, Origin::Client, None, now));
        assert!(should_forward(&bump, Origin::Client, Some(now), now));
        for admission in [Admission::New, bump.clone(), Admission::Duplicate] {
            assert!(
                !should_forward(&admission, Origin::Peer, None, now),
                "what a peer forwarded is never forwarded again"
            );
        }
        assert!(!should_forward(&Admission::Duplicate, Origin::Client, Some(now), now));
        assert!(!should_forward(
            &Admission::Duplicate,
            Origin::Client,
            Some(now),
            now + RESEND_AFTER / 2
        ));
        assert!(should_forward(
            &Admission::Duplicate,
            Origin::Client,
            Some(now),
            now + RESEND_AFTER
        ));
        assert!(
            should_forward(&Admission::Duplicate, Origin::Client, None, now),
            "a repeat of a bundle this node never sent on (it restarted) goes on"
        );
    }
}
