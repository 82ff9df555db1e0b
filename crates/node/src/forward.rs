//! Passing newly admitted bundles on to the validators' RPC, so a wallet may submit to any node.
//!
//! Each node forwards a bundle only when its own mempool admitted it as new or as a fee bump;
//! a peer that already holds it answers `already_pending` and forwards nothing, so a bundle
//! crosses each link at most once per change. Forwarding is best effort and never blocks the
//! submitting client.
//!
//! Invariant: the queue is bounded; when it is full a bundle is not forwarded (the node that
//! holds it still includes it when it proposes).

use ezchain_protocol::Submission;
use ezchain_protocol::codec::encode;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::debug;

const QUEUE: usize = 4096;

/// Sends bundles to the forwarding task.
#[derive(Clone)]
pub struct Forwarder {
    queue: Option<mpsc::Sender<Submission>>,
}

impl Forwarder {
    /// A forwarder to `peers`; with no peers it does nothing.
    pub fn start(peers: Vec<SocketAddr>) -> (Forwarder, Option<tokio::task::JoinHandle<()>>) {
        if peers.is_empty() {
            return (Forwarder { queue: None }, None);
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
                    if let Err(error) = client.post(&url).json(&body).send().await {
                        debug!(%peer, %error, "forwarding a bundle failed");
                    }
                }
            }
        });
        (Forwarder { queue: Some(sender) }, Some(task))
    }

    pub fn forward(&self, submission: Submission) {
        if let Some(queue) = &self.queue
            && queue.try_send(submission).is_err()
        {
            debug!("forward queue full; bundle stays with this node");
        }
    }
}
