//! The wallet's decisions, kept pure: the pending bundle's way to finality as a state
//! machine, and which rejection records a receive pass keeps.
//!
//! The driver ([`crate::wallet::Wallet`]) reports what happened — a poll of a node, an event
//! the node pushed on `/v1/subscribe`, the answer to a submission, time passing — and carries
//! out the one [`Effect`] the machine answers with. The machine does no I/O and reads no clock
//! (time comes in as `Instant`s), so every path below is unit-tested without a node.
//!
//! Why the decisions are safe:
//! - Values are released only on the answer of a poll (a receipt lookup that found none), never
//!   on a pushed header alone: a subscription opened late or lagging may have missed the
//!   receipt of an earlier block, so a pushed height past the expiry only triggers a poll.
//! - A fatal refusal (`seq_gap`, `expired`, …) is also checked by one more poll first: the
//!   bundle may have been included between the lookup and the refusal.
//! - The bundle is offered again every `resubmit_every` (a restarted node forgets its mempool)
//!   and always at least once, however short the wait.

use ezchain_protocol::Receipt;
use std::time::{Duration, Instant};

/// What the driver does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Ask a node for its tip and for the receipt of the pending bundle; answer with
    /// [`PendingProgress::polled`].
    Poll,
    /// Offer the bundle to the nodes; answer with [`PendingProgress::submitted`].
    Submit,
    /// A node accepted the bundle: record the send as `submitted`; answer with
    /// [`PendingProgress::recorded`].
    RecordSubmitted,
    /// The bundle is final: apply its receipt. The machine is done.
    Finalize(Box<Receipt>),
    /// The bundle can never be included: release its values, for this reason. Done.
    Release(String),
    /// Wait for a pushed event until this instant; answer with a `pushed_*` call or
    /// [`PendingProgress::woke`].
    Wait(Instant),
    /// The wait is over with the bundle still pending; a later resume continues it. Done.
    Stop,
}

/// A node's answer to a submission, as the machine needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubmitResult {
    Accepted,
    /// A refusal after which the bundle can never be included (`code: message`).
    Fatal(String),
    /// Anything else (no node reachable, a full mempool, already included): try again later.
    Transient,
}

/// The state of one drive of the pending bundle.
#[derive(Clone, Debug)]
pub struct PendingProgress {
    seq: u64,
    expiry_height: u64,
    deadline: Instant,
    resubmit_every: Duration,
    /// How long to wait between polls when no event arrives.
    poll_every: Duration,
    last_submit: Option<Instant>,
    /// A fatal refusal waiting for the last poll that confirms no receipt exists.
    refusal: Option<String>,
    waiting_until: Option<Instant>,
}

impl PendingProgress {
    /// Starts driving bundle `seq` (valid up to `expiry_height`) until `deadline`; the first
    /// effect is always [`Effect::Poll`].
    pub fn new(
        seq: u64,
        expiry_height: u64,
        deadline: Instant,
        resubmit_every: Duration,
        poll_every: Duration,
    ) -> Self {
        PendingProgress {
            seq,
            expiry_height,
            deadline,
            resubmit_every,
            poll_every,
            last_submit: None,
            refusal: None,
            waiting_until: None,
        }
    }

    /// The answer of a poll: the node's tip (`None`: no node reachable) and the bundle's
    /// receipt if the node has one.
    pub fn polled(&mut self, now: Instant, tip: Option<u64>, receipt: Option<Receipt>) -> Effect {
        if let Some(receipt) = receipt {
            return Effect::Finalize(Box::new(receipt));
        }
        if let Some(reason) = self.refusal.take() {
            return Effect::Release(reason);
        }
        if let Some(tip) = tip
            && tip > self.expiry_height
        {
            return Effect::Release(format!(
                "expired at height {} before any block included it",
                self.expiry_height
            ));
        }
        if self
            .last_submit
            .is_none_or(|at| now.saturating_duration_since(at) >= self.resubmit_every)
        {
            return Effect::Submit;
        }
        self.wait_or_stop(now)
    }

    pub fn submitted(&mut self, now: Instant, result: SubmitResult) -> Effect {
        match result {
            SubmitResult::Accepted => {
                self.last_submit = Some(now);
                Effect::RecordSubmitted
            }
            SubmitResult::Fatal(reason) => {
                self.refusal = Some(reason);
                Effect::Poll
            }
            SubmitResult::Transient => {
                self.last_submit = Some(now);
                self.wait_or_stop(now)
            }
        }
    }

    /// The `submitted` record is written.
    pub fn recorded(&mut self, now: Instant) -> Effect {
        self.wait_or_stop(now)
    }

    /// The node pushed a receipt of this account's bundle `receipt.seq`.
    pub fn pushed_receipt(&mut self, now: Instant, receipt: Receipt) -> Effect {
        if receipt.seq == self.seq {
            return Effect::Finalize(Box::new(receipt));
        }
        self.keep_waiting(now)
    }

    /// The node pushed a finalized header at `height`.
    pub fn pushed_header(&mut self, now: Instant, height: u64) -> Effect {
        if height > self.expiry_height {
            // Past the expiry, but only a poll may say no receipt exists.
            return Effect::Poll;
        }
        self.keep_waiting(now)
    }

    /// The push subscription ended (or dropped events): poll at the fallback interval from now.
    pub fn push_lost(&mut self, poll_every: Duration) -> Effect {
        self.poll_every = poll_every;
        Effect::Poll
    }

    /// The wait ended without an event.
    pub fn woke(&mut self, _now: Instant) -> Effect {
        self.waiting_until = None;
        Effect::Poll
    }

    fn keep_waiting(&mut self, now: Instant) -> Effect {
        match self.waiting_until {
            Some(until) if until > now => Effect::Wait(until),
            _ => self.woke(now),
        }
    }

    fn wait_or_stop(&mut self, now: Instant) -> Effect {
        if now >= self.deadline {
            self.waiting_until = None;
            return Effect::Stop;
        }
        let until = self.deadline.min(now + self.poll_every);
        self.waiting_until = Some(until);
        Effect::Wait(until)
    }
}

/// Which rejection records go when new ones are written: the oldest first, so at most `keep`
/// remain (junk in a mailbox cannot grow the history).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Record ids to drop: stored ones to remove and new ones not to write.
    pub drop: Vec<u64>,
}

/// `kept`: the stored rejection records, oldest first; `new`: the ones about to be written, in
/// order (all newer than the stored ones).
pub fn rejection_retention(kept: &[u64], new: &[u64], keep: usize) -> Retention {
    let excess = (kept.len() + new.len()).saturating_sub(keep);
    Retention {
        drop: kept.iter().chain(new).take(excess).copied().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ezchain_protocol::smt::SmtProof;
    use ezchain_protocol::{Hash32, HeaderLite, Receipt};

    const RESUBMIT: Duration = Duration::from_secs(5);
    const POLL: Duration = Duration::from_millis(250);

    fn receipt(seq: u64) -> Receipt {
        Receipt {
            header: HeaderLite {
                height: 3,
                header_hash: Hash32::ZERO,
                state_root: Hash32::ZERO,
            },
            seq,
            prev_ref: None,
            holdings: None,
            proof: SmtProof::default(),
        }
    }

    /// A drive of bundle 7 (valid up to height 10) for `wait`, starting at `start`.
    fn drive(start: Instant, wait: Duration) -> PendingProgress {
        PendingProgress::new(7, 10, start + wait, RESUBMIT, POLL)
    }

    #[test]
    fn a_receipt_on_the_first_poll_finalizes_without_submitting_again() {
        let start = Instant::now();
        let mut machine = drive(start, Duration::from_secs(60));
        assert_eq!(
            machine.polled(start, Some(4), Some(receipt(7))),
            Effect::Finalize(Box::new(receipt(7)))
        );
    }

    #[test]
    fn a_new_bundle_is_submitted_recorded_and_finalized_by_the_pushed_receipt() {
        let start = Instant::now();
        let mut machine = drive(start, Duration::from_secs(60));
        assert_eq!(machine.polled(start, Some(4), None), Effect::Submit);
        assert_eq!(
            machine.submitted(start, SubmitResult::Accepted),
            Effect::RecordSubmitted
        );
        assert_eq!(machine.recorded(start), Effect::Wait(start + POLL));
        assert_eq!(
            machine.pushed_header(start, 5),
            Effect::Wait(start + POLL),
            "a header before the expiry changes nothing"
        );
        assert_eq!(
            machine.pushed_receipt(start, receipt(6)),
            Effect::Wait(start + POLL),
            "another bundle's receipt is not this one's"
        );
        assert_eq!(
            machine.pushed_receipt(start, receipt(7)),
            Effect::Finalize(Box::new(receipt(7)))
        );
    }

    #[test]
    fn the_bundle_is_offered_again_only_after_the_resubmit_interval() {
        let start = Instant::now();
        let mut machine = drive(start, Duration::from_secs(60));
        assert_eq!(machine.polled(start, Some(4), None), Effect::Submit);
        machine.submitted(start, SubmitResult::Transient);
        let soon = start + Duration::from_secs(1);
        assert_eq!(machine.woke(soon), Effect::Poll);
        assert_eq!(machine.polled(soon, Some(4), None), Effect::Wait(soon + POLL));
        let later = start + RESUBMIT;
        assert_eq!(
            machine.polled(later, None, None),
            Effect::Submit,
            "also with no node reachable"
        );
    }

    #[test]
    fn a_tip_past_the_expiry_releases_only_on_a_poll() {
        let start = Instant::now();
        let mut machine = drive(start, Duration::from_secs(60));
        machine.polled(start, Some(4), None);
        machine.submitted(start, SubmitResult::Accepted);
        machine.recorded(start);
        assert_eq!(
            machine.pushed_header(start, 11),
            Effect::Poll,
            "a pushed header may follow a missed receipt: ask first"
        );
        assert_eq!(
            machine.polled(start, Some(11), Some(receipt(7))),
            Effect::Finalize(Box::new(receipt(7))),
            "included at the last valid height"
        );
        let mut machine = drive(start, Duration::from_secs(60));
        assert_eq!(
            machine.polled(start, Some(11), None),
            Effect::Release("expired at height 10 before any block included it".into())
        );
        let mut machine = drive(start, Duration::from_secs(60));
        assert_eq!(
            machine.polled(start, Some(10), None),
            Effect::Submit,
            "still includable at its expiry height"
        );
    }

    #[test]
    fn a_fatal_refusal_is_checked_by_one_more_poll_before_the_values_go_back() {
        let start = Instant::now();
        let mut machine = drive(start, Duration::from_secs(60));
        machine.polled(start, Some(4), None);
        assert_eq!(
            machine.submitted(start, SubmitResult::Fatal("seq_gap: expected 6".into())),
            Effect::Poll
        );
        assert_eq!(
            machine.polled(start, Some(4), Some(receipt(7))),
            Effect::Finalize(Box::new(receipt(7))),
            "included meanwhile"
        );
        let mut machine = drive(start, Duration::from_secs(60));
        machine.polled(start, Some(4), None);
        machine.submitted(start, SubmitResult::Fatal("seq_gap: expected 6".into()));
        assert_eq!(
            machine.polled(start, None, None),
            Effect::Release("seq_gap: expected 6".into())
        );
    }

    #[test]
    fn the_drive_stops_at_its_deadline_and_a_zero_wait_still_submits_once() {
        let start = Instant::now();
        let mut machine = drive(start, Duration::ZERO);
        assert_eq!(machine.polled(start, Some(4), None), Effect::Submit);
        assert_eq!(
            machine.submitted(start, SubmitResult::Accepted),
            Effect::RecordSubmitted
        );
        assert_eq!(machine.recorded(start), Effect::Stop);

        let mut machine = drive(start, Duration::from_millis(100));
        machine.polled(start, Some(4), None);
        machine.submitted(start, SubmitResult::Accepted);
        assert_eq!(
            machine.recorded(start),
            Effect::Wait(start + Duration::from_millis(100)),
            "never waits past the deadline"
        );
        let end = start + Duration::from_millis(100);
        assert_eq!(machine.woke(end), Effect::Poll);
        assert_eq!(machine.polled(end, Some(4), None), Effect::Stop);
    }

    #[test]
    fn a_lost_subscription_falls_back_to_polling() {
        let start = Instant::now();
        let mut machine = PendingProgress::new(7, 10, start + Duration::from_secs(60), RESUBMIT, RESUBMIT);
        machine.polled(start, Some(4), None);
        machine.submitted(start, SubmitResult::Accepted);
        assert_eq!(machine.recorded(start), Effect::Wait(start + RESUBMIT));
        assert_eq!(machine.push_lost(POLL), Effect::Poll);
        assert_eq!(machine.polled(start, Some(4), None), Effect::Wait(start + POLL));
    }

    #[test]
    fn the_oldest_rejections_go_first_and_at_most_the_kept_number_remain() {
        assert_eq!(rejection_retention(&[1, 2], &[3], 5).drop, Vec::<u64>::new());
        assert_eq!(rejection_retention(&[1, 2, 3], &[4, 5], 3).drop, vec![1, 2]);
        assert_eq!(
            rejection_retention(&[1], &[2, 3, 4, 5], 2).drop,
            vec![1, 2, 3],
            "new records beyond the limit are not even written"
        );
        assert_eq!(rejection_retention(&[], &[], 0).drop, Vec::<u64>::new());
    }
}
