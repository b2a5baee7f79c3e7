//! Fast leader election (FLE, `FastLeaderElection.lookForLeader`) as a pure sub-state machine.
//!
//! A LOOKING server proposes a vote, broadcasts it, and adopts any better vote it hears in the
//! same round (logical clock). When the votes it holds for the current round make a quorum for
//! its proposal, it waits `finalize_ticks` for a better vote; if none comes, the round is decided.
//! The wait is skipped when every voter it can still hear from has voted for the proposal: the
//! others are reported lost (their connection is gone, `forget`), so no better vote can come
//! from them until they speak again (issue 17: the survivors of a dead leader elect in one
//! round trip). ZooKeeper 3.3's `lookForLeader` likewise ended at once on hearing from all.
//! Notifications from servers that already follow or lead an established leader let a newcomer
//! join that leader without a new round (the "out of election" set). A leader elected here
//! but not yet established keeps a [`Backing`]: when the voters that could still follow it no
//! longer make a quorum, or a vote shows that a quorum acknowledged a later epoch than its own,
//! it steps down at once rather than after `initLimit` (seeds 27555, 65160).
//!
//! Invariants:
//! - the proposal only ever gets better within a round (`beats`), and a new round starts from
//!   the server's own vote unless a better one is already known;
//! - a decision needs a quorum of voters agreeing on the exact same vote in one round, or a quorum
//!   of out-of-election reports naming a leader that itself claims to lead (`checkLeader`).

use std::collections::{BTreeMap, BTreeSet};

use crate::types::ServerId;
use crate::zab::message::{PeerState, Vote, ZabMessage};
use crate::zab::quorum::Quorum;

/// How long a quorum for a proposal must hold before the round is decided, ms (ZooKeeper's
/// `finalizeWait`). The node draws the actual wait from `[1, 2] ×` this, in ticks; it is also
/// the first notification resend timeout, which doubles up to [`MAX_NOTIFICATION_TIMEOUT_MS`].
pub const FINALIZE_WAIT_MS: u64 = 200;

/// The longest notification resend timeout, ms (ZooKeeper's `maxNotificationInterval`).
pub const MAX_NOTIFICATION_TIMEOUT_MS: u64 = 60_000;

/// What the election asks the node to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElectionAction {
    /// Send this notification to every other member.
    Broadcast(ZabMessage),
    /// Send this notification to one member.
    Send(ServerId, ZabMessage),
    /// The round is decided: follow or lead `leader`.
    Decided {
        /// The elected leader.
        leader: ServerId,
        /// The vote that won (its zxid and epoch).
        vote: Vote,
        /// The round it was decided in.
        election_epoch: u64,
    },
}

/// One election in progress.
#[derive(Clone, Debug)]
pub struct Election {
    me: ServerId,
    quorum: Quorum,
    own_vote: Vote,
    logical_clock: u64,
    proposal: Vote,
    received: BTreeMap<ServerId, (Vote, u64)>,
    out_of_election: BTreeMap<ServerId, (Vote, u64, PeerState)>,
    /// Peers whose connection was reported lost and that have not spoken since.
    lost: BTreeSet<ServerId>,
    finalize_at: Option<u64>,
    resend_at: u64,
    backoff_ticks: u64,
    finalize_ticks: u64,
    max_backoff_ticks: u64,
}

impl Election {
    /// Starts a new round after `last_round`, proposing `own_vote` (this server, its current epoch
    /// and last logged zxid). Returns the election and the first broadcast.
    pub fn start(
        me: ServerId,
        quorum: Quorum,
        own_vote: Vote,
        last_round: u64,
        now: u64,
        finalize_ticks: u64,
        max_backoff_ticks: u64,
    ) -> (Election, Vec<ElectionAction>) {
        assert_eq!(own_vote.leader, me, "a server starts by voting for itself");
        assert!(finalize_ticks > 0 && max_backoff_ticks >= finalize_ticks);
        let mut election = Election {
            me,
            quorum,
            own_vote,
            logical_clock: last_round + 1,
            proposal: own_vote,
            received: BTreeMap::new(),
            out_of_election: BTreeMap::new(),
            lost: BTreeSet::new(),
            finalize_at: None,
            resend_at: now + finalize_ticks,
            backoff_ticks: finalize_ticks,
            finalize_ticks,
            max_backoff_ticks,
        };
        let voter = election.quorum.is_voter(me);
        if voter {
            election.received.insert(me, (own_vote, election.logical_clock));
        }
        let first = vec![ElectionAction::Broadcast(election.notification())];
        (election, first)
    }

    /// The current round.
    pub fn logical_clock(&self) -> u64 {
        self.logical_clock
    }

    /// The current proposal.
    pub fn proposal(&self) -> Vote {
        self.proposal
    }

    /// Peers reported lost that have not spoken since, in id order: a leader elected here
    /// starts its [`Backing`] with them.
    pub fn lost_peers(&self) -> Vec<ServerId> {
        self.lost.iter().copied().collect()
    }

    fn notification(&self) -> ZabMessage {
        let state =
            if self.quorum.is_voter(self.me) { PeerState::Looking } else { PeerState::Observing };
        ZabMessage::Notification { vote: self.proposal, election_epoch: self.logical_clock, state }
    }

    fn adopt(&mut self, vote: Vote) {
        assert!(vote.beats(&self.proposal) || vote == self.proposal);
        self.proposal = vote;
        if self.quorum.is_voter(self.me) {
            self.received.insert(self.me, (vote, self.logical_clock));
        }
        // A changed proposal restarts the finalize wait: a quorum for the old one says nothing.
        self.finalize_at = None;
        let own = self.received.get(&self.me).map(|(v, _)| *v);
        assert!(own.is_none_or(|v| v == vote), "our own vote counts for what we propose");
    }

    /// Handles a notification from `from`.
    pub fn on_notification(
        &mut self,
        now: u64,
        from: ServerId,
        vote: Vote,
        election_epoch: u64,
        state: PeerState,
    ) -> Vec<ElectionAction> {
        // A vote for a non-voter could never be followed by a quorum (FLE's `validVoter`):
        // counting it could decide a round for a server that will not lead.
        if from == self.me || !self.quorum.is_voter(vote.leader) {
            return Vec::new();
        }
        let round = self.logical_clock;
        // It speaks, so it may yet send a better vote: wait for it again.
        self.lost.remove(&from);
        let actions = match state {
            PeerState::Looking => self.on_looking(now, from, vote, election_epoch),
            PeerState::Following | PeerState::Leading => {
                self.on_established(from, vote, election_epoch, state)
            }
            // An observer's vote never counts: observers neither vote nor lead.
            PeerState::Observing => Vec::new(),
        };
        // Rounds only move forward (FLE's logicalclock): a straggler's older round is answered,
        // never adopted, or two servers could each count a quorum in different rounds. The one
        // way back ends the election: joining an established leader takes its (maybe older)
        // round, as FLE's out-of-election case sets logicalclock to the leader's.
        let decided = actions.iter().any(|a| matches!(a, ElectionAction::Decided { .. }));
        assert!(self.logical_clock >= round || decided, "the logical clock never goes back");
        assert!(!self.lost.contains(&from), "a peer that spoke is waited for again");
        actions
    }

    fn on_looking(
        &mut self,
        now: u64,
        from: ServerId,
        vote: Vote,
        epoch: u64,
    ) -> Vec<ElectionAction> {
        let mut actions = Vec::new();
        if !self.quorum.is_voter(from) {
            // An observer looking: tell it what we think, it never counts.
            return vec![ElectionAction::Send(from, self.notification())];
        }
        if epoch > self.logical_clock {
            self.logical_clock = epoch;
            self.received.clear();
            let best = if vote.beats(&self.own_vote) { vote } else { self.own_vote };
            self.proposal = best;
            self.adopt(best);
            actions.push(ElectionAction::Broadcast(self.notification()));
        } else if epoch < self.logical_clock {
            // A server behind us: answer so it catches up.
            return vec![ElectionAction::Send(from, self.notification())];
        } else if vote.beats(&self.proposal) {
            self.adopt(vote);
            actions.push(ElectionAction::Broadcast(self.notification()));
        } else if vote != self.proposal {
            // It has not heard our better proposal: it would have adopted it. Typically our
            // first notification reached it while it still followed the leader we both lost,
            // and was answered, not counted; without this it waits for a resend (issue 17).
            actions.push(ElectionAction::Send(from, self.notification()));
        }
        self.received.insert(from, (vote, epoch));
        let agreeing = self.agreeing(self.proposal);
        if self.quorum.contains(agreeing.iter()) {
            if self.finalize_at.is_none() {
                self.finalize_at = Some(now + self.finalize_ticks);
            }
            if self.all_reachable_agree() {
                // After the broadcast, so the others learn the proposal we settle on.
                let proposal = self.proposal;
                actions.push(self.decide(proposal, self.logical_clock));
            }
        } else {
            self.finalize_at = None;
        }
        // FLE's rounds only move forward; a finalize wait runs only while a quorum agrees.
        assert!(epoch <= self.logical_clock, "an older round was answered, not counted");
        let held = self.quorum.contains(self.agreeing(self.proposal).iter());
        assert!(self.finalize_at.is_none() || held, "finalizing only over a quorum");
        actions
    }

    /// True when every voter not reported lost has voted for the proposal in this round: no
    /// better vote can come before the finalize wait ends, so there is no reason to wait it.
    /// Never without a quorum: the lost ones are not counted as agreeing.
    fn all_reachable_agree(&self) -> bool {
        let agreeing = self.agreeing(self.proposal);
        if !self.quorum.contains(agreeing.iter()) {
            return false;
        }
        assert!(agreeing.len() >= self.quorum.majority());
        let voters = self.quorum.voters();
        let waited_for = voters.iter().filter(|id| !self.lost.contains(id));
        let silent = waited_for.filter(|id| !agreeing.contains(id)).count();
        assert!(silent + agreeing.len() <= voters.len());
        silent == 0
    }

    fn agreeing(&self, vote: Vote) -> Vec<ServerId> {
        // Only this round's votes count: a vote from an older round was cast before its voter
        // saw what this round knows, so it may already have moved on (FLE's `recvset` is
        // cleared on a new round for the same reason).
        let agreeing: Vec<ServerId> = self
            .received
            .iter()
            .filter(|(_, (v, e))| *v == vote && *e == self.logical_clock)
            .map(|(id, _)| *id)
            .collect();
        // `received` holds only voters' votes (observers are answered, never counted), so
        // a quorum of `agreeing` is a quorum of voters; ids come once each, in order.
        assert!(agreeing.len() <= self.quorum.voters().len(), "at most every voter agrees");
        assert!(agreeing.iter().all(|id| self.quorum.is_voter(*id)), "only voters agree");
        agreeing
    }

    fn on_established(
        &mut self,
        from: ServerId,
        vote: Vote,
        epoch: u64,
        state: PeerState,
    ) -> Vec<ElectionAction> {
        assert!(matches!(state, PeerState::Following | PeerState::Leading), "established");
        if vote.leader == self.me && epoch > self.logical_clock {
            return self.led_before_restart(from, vote, epoch, state);
        }
        // Two ways in, as FLE's FOLLOWING/LEADING case: a report from our own round counts as
        // a vote of this round; a report from any round goes in the out-of-election set, which
        // lets a server that restarted join a leader established without it. The report is
        // recorded before either check, so that the leader's own LEADING report confirms it
        // when it is the one that completes the quorum (FLE's `checkLeader` reads the set the
        // report was just put in). Recorded after the in-round check, it did not: a restarted
        // server whose vote was needed for the quorum waited for its next notification resend,
        // backed off to seconds (tier 1 seed 2823: 3.2 s, after the three reports had come).
        self.out_of_election.insert(from, (vote, epoch, state));
        if epoch == self.logical_clock && self.quorum.is_voter(from) {
            self.received.insert(from, (vote, epoch));
            let agreeing = self.agreeing(vote);
            if self.quorum.contains(agreeing.iter()) && self.leader_confirmed(vote, epoch, false) {
                return vec![self.decide(vote, epoch)];
            }
        }
        assert!(self.out_of_election.contains_key(&from), "every report is kept");
        let agreeing: Vec<ServerId> = self
            .out_of_election
            .iter()
            .filter(|(_, (v, e, _))| v.leader == vote.leader && *e == epoch)
            .map(|(id, _)| *id)
            .collect();
        if self.quorum.contains(agreeing.iter()) && self.leader_confirmed(vote, epoch, true) {
            // Join the leader's round, so our notifications report the round it leads in.
            self.logical_clock = epoch;
            // We lead only from a round we voted in: a quorum of reports naming us is stale
            // (a leadership of ours before a restart), never a reason to lead again.
            assert_ne!(vote.leader, self.me, "never elected from outside the election");
            return vec![self.decide(vote, epoch)];
        }
        Vec::new()
    }

    /// `from` reports that it follows us (or, stale, leads with our vote) in round `epoch`, a
    /// round this election never reached. Rounds only move forward within one run of a
    /// server, and a server goes looking in a round after the one it led, so that leadership
    /// was ours before a restart (our round counter started again from 1), and `from` still
    /// waits on it. ZooKeeper's learner would have left when the old process's socket closed;
    /// a leader that restarts faster than a learner's reconnect finds no closed connection
    /// (tier 2 seed 56306: power lost at the leader's epoch adoption, restarted 1 ms later;
    /// its learners took its LOOKING notifications of round 1 and epoch 2 for stale against
    /// round 3 and LEADERINFO's epoch 3, and waited `initLimit`, 12 s without a leader). So we
    /// move to the round after it and say so: a learner leaves a leader that looks in a later
    /// round than the one it followed it in (`Learner::left_by_leader`). Only rounds move;
    /// votes are counted as before, so this can cost one election round (a reordered report
    /// of a round we are about to join), never safety.
    fn led_before_restart(
        &mut self,
        from: ServerId,
        vote: Vote,
        epoch: u64,
        state: PeerState,
    ) -> Vec<ElectionAction> {
        assert!(vote.leader == self.me && epoch > self.logical_clock, "a round we never reached");
        self.out_of_election.insert(from, (vote, epoch, state));
        self.logical_clock = epoch + 1;
        self.received.clear();
        let proposal = self.proposal;
        self.adopt(proposal);
        // Our own vote is the only one of the new round: nothing is decided yet.
        assert!(self.finalize_at.is_none(), "a new round starts without a quorum");
        vec![ElectionAction::Broadcast(self.notification())]
    }

    /// `checkLeader`: never join a leader we have not heard claim leadership (unless it is us).
    fn leader_confirmed(&self, vote: Vote, epoch: u64, out_of_election: bool) -> bool {
        // `on_notification` drops votes for non-voters; in-round confirmation is for this
        // round only (the out-of-election path is the one that crosses rounds).
        assert!(self.quorum.is_voter(vote.leader), "only voters lead");
        assert!(out_of_election || epoch == self.logical_clock, "in-round means this round");
        // Without this check a quorum of stale FOLLOWING reports (followers of a leader that
        // has since crashed) would send us to a leader that is gone, and we would wait
        // initLimit for nothing.
        if vote.leader == self.me {
            return epoch == self.logical_clock && !out_of_election;
        }
        matches!(
            self.out_of_election.get(&vote.leader),
            Some((_, e, PeerState::Leading)) if *e == epoch
        )
    }

    fn decide(&mut self, vote: Vote, election_epoch: u64) -> ElectionAction {
        assert!(self.quorum.is_voter(vote.leader), "only voters lead");
        ElectionAction::Decided { leader: vote.leader, vote, election_epoch }
    }

    /// Forgets what `peer` told this round (its connection is gone): a vote or a leader report
    /// only a dead server still backs must not complete a quorum. A quorum that no longer
    /// holds cancels the finalize wait; one that holds need not wait for `peer` any more (until
    /// it speaks again), which the next tick acts on.
    pub fn forget(&mut self, peer: ServerId) {
        assert_ne!(peer, self.me, "a server does not lose itself");
        self.received.remove(&peer);
        self.out_of_election.remove(&peer);
        self.lost.insert(peer);
        if !self.quorum.contains(self.agreeing(self.proposal).iter()) {
            self.finalize_at = None;
        }
        assert!(!self.received.contains_key(&peer));
    }

    /// Advances time: finalizes a quorum that held for `finalize_ticks`, and re-sends the
    /// proposal with exponential backoff when nothing is decided.
    pub fn on_tick(&mut self, now: u64) -> Vec<ElectionAction> {
        if let Some(at) = self.finalize_at {
            let waited = now >= at || self.all_reachable_agree();
            if waited && self.quorum.contains(self.agreeing(self.proposal).iter()) {
                let vote = self.proposal;
                return vec![self.decide(vote, self.logical_clock)];
            }
        }
        if now >= self.resend_at {
            // Exponential backoff (FastLeaderElection doubles its notification timeout up to
            // maxNotificationInterval): a partitioned server does not flood the others.
            self.backoff_ticks = (self.backoff_ticks * 2).min(self.max_backoff_ticks);
            self.resend_at = now + self.backoff_ticks;
            assert!(self.backoff_ticks <= self.max_backoff_ticks, "the backoff is capped");
            assert!(self.resend_at >= now, "the next resend is not in the past");
            return vec![ElectionAction::Broadcast(self.notification())];
        }
        Vec::new()
    }
}

/// What a leader that is not yet established knows of the voters that can no longer follow it
/// in the round that elected it (issue 17, tier 1 seed 27555).
///
/// A leader elected in round `r` with vote `won` gains a follower only in two ways: a voter of
/// round `r` that proposes `won` counts it in that round's quorum, or a voter sees a quorum of
/// FOLLOWING/LEADING reports naming it (the out-of-election path, which needs a quorum of its
/// followers already). Nobody proposes `won` in a later round while its leader leads (only its
/// own looking notifications carry it there), and a proposal only gets better within a round.
/// So a voter whose latest notification shows it looking in a round after `r`, or in `r` with
/// a vote that beats `won`, or following or leading another server from round `r` on (it looks
/// again only in a later round), will never follow this leader. Neither will a voter whose
/// connection is gone, until it speaks again. When the others no longer make a quorum, waiting
/// `initLimit` for them is wasted, and worse, this leader and its followers keep out of the
/// election the very voters its rivals need: after a clean crash of the established leader, its
/// survivors could not elect without them. ZooKeeper's leader waits `initLimit` here; ours
/// steps down at once. Stepping down an unestablished leader never risks safety (it is what
/// `initLimit` does), and a wrong judgement (a voter that restarted since, a link that
/// recovered) costs one election round.
///
/// A leader whose new epoch is decided also steps down when a notification names a vote of a
/// later epoch (tier 1 seed 65160): a vote's `peer_epoch` is its leader's current epoch, set
/// only once a quorum acknowledged that epoch, and by Zab's promise (paper §4, phase 1;
/// ZooKeeper's learner refuses a LEADERINFO below its accepted epoch) that quorum will never
/// acknowledge our NEWLEADER. The voters that moved on may still look in rounds older than
/// ours, which the round rules above cannot count out. ZooKeeper's leader gives up the same
/// way when a follower turns out to be ahead of it (`Leader.waitForEpochAck`), but it learns
/// that only from a learner; notifications are how we hear from the voters that moved on.
#[derive(Clone, Debug, Default)]
pub struct Backing {
    /// Voters that will never follow this leader in its round, by the last thing they said.
    elsewhere: BTreeSet<ServerId>,
    /// Voters whose connection was reported lost and that have not spoken since.
    lost: BTreeSet<ServerId>,
    /// A later epoch than ours was seen in a vote: a quorum has moved past us.
    superseded: bool,
}

impl Backing {
    /// Records the vote of a notification (any sender, any state) to a leader elected with
    /// `won` that leads `epoch`, once decided in Zab phase 1.
    pub fn saw_vote(&mut self, won: Vote, epoch: Option<u32>, vote: Vote) {
        let Some(epoch) = epoch else { return };
        assert!(epoch > won.peer_epoch, "the new epoch comes after our current one");
        let before = self.superseded;
        // The vote proves its leader's epoch was acknowledged by a quorum.
        if vote.peer_epoch > epoch {
            self.superseded = true;
        }
        // A quorum that moved past our epoch never comes back to it: nothing clears the flag.
        assert!(!before || self.superseded, "once superseded, hopeless for good");
    }

    /// Records a notification from `from` to a leader elected in `round` with `won`.
    pub fn on_notification(
        &mut self,
        won: Vote,
        round: u64,
        from: ServerId,
        vote: Vote,
        election_epoch: u64,
        state: PeerState,
    ) {
        self.lost.remove(&from);
        let gone = match state {
            PeerState::Looking => {
                election_epoch > round || (election_epoch == round && vote.beats(&won))
            }
            PeerState::Following | PeerState::Leading => {
                election_epoch >= round && vote.leader != won.leader
            }
            PeerState::Observing => false,
        };
        if gone {
            self.elsewhere.insert(from);
        } else {
            self.elsewhere.remove(&from);
        }
        assert!(!self.lost.contains(&from));
        assert_eq!(self.elsewhere.contains(&from), gone);
    }

    /// `from` sent this leader a learner message: it follows us.
    pub fn heard(&mut self, from: ServerId) {
        // Both sets are empty while every learner follows (this runs for every message a
        // learner sends): nothing to remove then.
        if !self.lost.is_empty() {
            self.lost.remove(&from);
        }
        if !self.elsewhere.is_empty() {
            self.elsewhere.remove(&from);
        }
        assert!(!self.lost.contains(&from), "a learner we hear from is not lost");
        assert!(!self.elsewhere.contains(&from), "a learner we hear from follows us");
    }

    /// The connection to `peer` is gone.
    pub fn lost(&mut self, peer: ServerId) {
        self.lost.insert(peer);
        assert!(self.lost.contains(&peer));
    }

    /// True when the voters that may still follow leader `me` (itself included) are short of
    /// a quorum.
    pub fn hopeless(&self, me: ServerId, quorum: &Quorum) -> bool {
        assert!(quorum.is_voter(me), "only voters lead");
        assert!(!self.lost.contains(&me) && !self.elsewhere.contains(&me), "never ourselves");
        if self.superseded {
            return true;
        }
        let voters = quorum.voters().iter();
        let possible: Vec<ServerId> = voters
            .filter(|id| !self.lost.contains(id) && !self.elsewhere.contains(id))
            .copied()
            .collect();
        assert!(possible.contains(&me));
        !quorum.contains(possible.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Zxid;

    fn vote(id: u64, zxid: i64) -> Vote {
        Vote { leader: ServerId(id), zxid: Zxid(zxid), peer_epoch: 1 }
    }

    fn three() -> Quorum {
        Quorum::new([ServerId(1), ServerId(2), ServerId(3)])
    }

    fn start(id: u64, zxid: i64) -> Election {
        Election::start(ServerId(id), three(), vote(id, zxid), 0, 0, 2, 64).0
    }

    #[test]
    fn adopts_better_vote_and_decides_after_finalize_wait() {
        let mut e = start(1, 5);
        let a = e.on_notification(0, ServerId(2), vote(2, 9), 1, PeerState::Looking);
        assert_eq!(e.proposal(), vote(2, 9), "the more up-to-date history wins");
        assert!(matches!(a.as_slice(), [ElectionAction::Broadcast(_)]));
        assert!(e.on_tick(1).is_empty(), "quorum reached but finalize wait not over");
        let decided = e.on_tick(2);
        assert!(matches!(
            decided.as_slice(),
            [ElectionAction::Decided { leader: ServerId(2), election_epoch: 1, .. }]
        ));
    }

    #[test]
    fn better_vote_during_finalize_wait_resets_it() {
        let mut e = start(1, 5);
        e.on_notification(0, ServerId(2), vote(2, 6), 1, PeerState::Looking);
        e.on_notification(1, ServerId(3), vote(3, 7), 1, PeerState::Looking);
        assert_eq!(e.proposal(), vote(3, 7));
        assert!(e.on_tick(2).iter().all(|a| !matches!(a, ElectionAction::Decided { .. })));
        let decided = e.on_tick(4);
        assert!(matches!(
            decided.as_slice(),
            [ElectionAction::Decided { leader: ServerId(3), .. }]
        ));
    }

    #[test]
    fn newer_round_resets_received_votes() {
        let mut e = start(1, 5);
        e.on_notification(0, ServerId(2), vote(2, 1), 1, PeerState::Looking);
        e.on_notification(0, ServerId(3), vote(3, 1), 4, PeerState::Looking);
        assert_eq!(e.logical_clock(), 4);
        assert_eq!(e.proposal(), vote(1, 5), "own vote beats the newer round's weaker vote");
        assert!(e.on_tick(10).iter().all(|a| !matches!(a, ElectionAction::Decided { .. })));
    }

    #[test]
    fn joins_an_established_leader_only_when_it_claims_to_lead() {
        let mut e = start(3, 1);
        let follows = e.on_notification(0, ServerId(2), vote(1, 9), 7, PeerState::Following);
        assert!(follows.is_empty(), "one follower report is not a quorum");
        let follows = e.on_notification(0, ServerId(1), vote(1, 9), 7, PeerState::Following);
        assert!(follows.is_empty(), "no report from the leader itself yet");
        let leads = e.on_notification(0, ServerId(1), vote(1, 9), 7, PeerState::Leading);
        assert!(matches!(leads.as_slice(), [ElectionAction::Decided { leader: ServerId(1), .. }]));
    }

    #[test]
    fn a_report_of_our_leadership_in_a_later_round_moves_past_it() {
        // Tier 2 seed 56306 in small: we restarted (round 1) while servers 2 and 3 still
        // followed us from round 3. Their reports move us to round 4, which they leave for.
        let mut e = start(1, 5);
        assert_eq!(e.logical_clock(), 1);
        let moved = e.on_notification(0, ServerId(2), vote(1, 9), 3, PeerState::Following);
        assert_eq!(e.logical_clock(), 4, "past the round it follows us in");
        let [ElectionAction::Broadcast(ZabMessage::Notification { election_epoch, state, .. })] =
            moved.as_slice()
        else {
            panic!("a new round is announced: {moved:?}")
        };
        assert_eq!((*election_epoch, *state), (4, PeerState::Looking));
        let again = e.on_notification(0, ServerId(3), vote(1, 9), 3, PeerState::Following);
        assert!(again.is_empty(), "an older round's report moves nothing: {again:?}");
        assert_eq!(e.logical_clock(), 4);
        // A report of our leadership in our own round is the usual one (its follower decided
        // before us): it is counted, not moved past.
        let mut e = start(1, 5);
        let in_round = e.on_notification(0, ServerId(2), vote(1, 5), 1, PeerState::Following);
        assert_eq!(e.logical_clock(), 1);
        assert!(in_round.iter().all(|a| !matches!(a, ElectionAction::Broadcast(_))));
    }

    #[test]
    fn decides_when_the_leaders_own_report_completes_the_quorum() {
        // Tier 1 seed 2823 in small: five voters, we are in round 1 with the leader's vote;
        // one follower and then the leader report it leads in our round. With our own vote
        // that is a quorum (3 of 5), the out-of-election reports alone are not (2): the
        // leader's report both completes the quorum and confirms it leads (`checkLeader`).
        let five = Quorum::new((1..=5).map(ServerId));
        let mut e = Election::start(ServerId(3), five, vote(3, 1), 0, 0, 2, 64).0;
        e.on_notification(0, ServerId(1), vote(1, 9), 1, PeerState::Looking);
        assert_eq!(e.proposal(), vote(1, 9));
        let follows = e.on_notification(0, ServerId(2), vote(1, 9), 1, PeerState::Following);
        assert!(follows.is_empty(), "a quorum agrees, but nobody confirmed that 1 leads");
        let leads = e.on_notification(0, ServerId(1), vote(1, 9), 1, PeerState::Leading);
        assert!(matches!(
            leads.as_slice(),
            [ElectionAction::Decided { leader: ServerId(1), election_epoch: 1, .. }]
        ));
    }

    #[test]
    fn a_lost_peer_no_longer_completes_the_quorum() {
        let mut e = start(1, 5);
        e.on_notification(0, ServerId(2), vote(2, 9), 1, PeerState::Looking);
        assert_eq!(e.proposal(), vote(2, 9));
        e.forget(ServerId(2));
        assert!(e.on_tick(5).iter().all(|a| !matches!(a, ElectionAction::Decided { .. })));
        // Server 3 agrees; 2 is lost, so nobody is left to wait for: decided without a
        // broadcast (the same proposal) and without the finalize wait.
        let back = e.on_notification(6, ServerId(3), vote(2, 9), 1, PeerState::Looking);
        assert!(matches!(back.as_slice(), [ElectionAction::Decided { leader: ServerId(2), .. }]));
    }

    #[test]
    fn decides_at_once_when_every_reachable_voter_agrees() {
        // Issue 17: the survivors of a dead leader need not wait for a better vote from it.
        let mut e = start(1, 5);
        e.forget(ServerId(3));
        let a = e.on_notification(0, ServerId(2), vote(2, 9), 1, PeerState::Looking);
        assert!(matches!(
            a.as_slice(),
            [ElectionAction::Broadcast(_), ElectionAction::Decided { leader: ServerId(2), .. }]
        ));
    }

    #[test]
    fn a_peer_lost_during_the_finalize_wait_ends_it() {
        let mut e = start(1, 5);
        e.on_notification(0, ServerId(2), vote(2, 9), 1, PeerState::Looking);
        assert!(e.on_tick(1).is_empty(), "server 3 may still send a better vote");
        e.forget(ServerId(3));
        let decided = e.on_tick(1);
        assert!(matches!(
            decided.as_slice(),
            [ElectionAction::Decided { leader: ServerId(2), .. }]
        ));
    }

    #[test]
    fn a_lost_peer_that_speaks_again_is_waited_for_again() {
        let mut e = start(1, 5);
        e.forget(ServerId(3));
        assert_eq!(e.lost_peers(), vec![ServerId(3)]);
        let a = e.on_notification(0, ServerId(3), vote(3, 1), 1, PeerState::Looking);
        assert!(matches!(a.as_slice(), [ElectionAction::Send(ServerId(3), _)]), "told ours");
        assert!(e.lost_peers().is_empty(), "3 spoke");
        let a = e.on_notification(0, ServerId(2), vote(2, 9), 1, PeerState::Looking);
        assert!(matches!(a.as_slice(), [ElectionAction::Broadcast(_)]), "3 may still answer");
        assert!(e.on_tick(1).is_empty());
        assert!(matches!(
            e.on_tick(2).as_slice(),
            [ElectionAction::Decided { leader: ServerId(2), .. }]
        ));
    }

    #[test]
    fn a_peer_that_votes_worse_in_this_round_is_told_the_proposal() {
        let mut e = start(2, 9);
        let a = e.on_notification(0, ServerId(1), vote(1, 5), 1, PeerState::Looking);
        let ZabMessage::Notification { vote: told, election_epoch, state } = (match a.as_slice() {
            [ElectionAction::Send(ServerId(1), msg)] => msg.clone(),
            other => panic!("expected one notification to server 1, got {other:?}"),
        }) else {
            panic!("a notification")
        };
        assert_eq!((told, election_epoch, state), (vote(2, 9), 1, PeerState::Looking));
        let same = e.on_notification(0, ServerId(3), vote(2, 9), 1, PeerState::Looking);
        assert!(
            same.iter().all(|a| !matches!(a, ElectionAction::Send(..))),
            "one that agrees is not told again"
        );
    }

    #[test]
    fn a_server_alone_with_lost_peers_never_decides() {
        let mut e = start(1, 5);
        e.forget(ServerId(2));
        e.forget(ServerId(3));
        for now in 0..100 {
            assert!(e.on_tick(now).iter().all(|a| matches!(a, ElectionAction::Broadcast(_))));
        }
    }

    #[test]
    fn resends_with_backoff() {
        let mut e = start(1, 5);
        assert!(matches!(e.on_tick(2).as_slice(), [ElectionAction::Broadcast(_)]));
        assert!(e.on_tick(3).is_empty());
        assert!(matches!(e.on_tick(6).as_slice(), [ElectionAction::Broadcast(_)]));
    }

    #[test]
    fn answers_stragglers_in_older_rounds() {
        let mut e = start(1, 5);
        e.on_notification(0, ServerId(3), vote(3, 1), 3, PeerState::Looking);
        let reply = e.on_notification(0, ServerId(2), vote(2, 1), 1, PeerState::Looking);
        assert!(matches!(reply.as_slice(), [ElectionAction::Send(ServerId(2), _)]));
    }

    fn five() -> Quorum {
        Quorum::new((1..=5).map(ServerId))
    }

    #[test]
    fn a_leader_short_of_possible_followers_is_hopeless() {
        // Seed 27555 in small: 5 won round 2 with 4; 1 and 2 look in round 3, 3 is gone.
        let (me, won) = (ServerId(5), vote(5, 1));
        let mut b = Backing::default();
        assert!(!b.hopeless(me, &five()), "nothing heard: anyone may still follow");
        b.on_notification(won, 2, ServerId(1), vote(1, 0), 3, PeerState::Looking);
        b.on_notification(won, 2, ServerId(2), vote(1, 0), 3, PeerState::Looking);
        assert!(!b.hopeless(me, &five()), "5, 4 and 3 are still a quorum");
        b.lost(ServerId(3));
        assert!(b.hopeless(me, &five()), "only 5 and 4 left");
        b.heard(ServerId(3));
        assert!(!b.hopeless(me, &five()), "3 follows after all");
    }

    #[test]
    fn a_vote_of_a_later_epoch_makes_a_leader_hopeless() {
        // Seed 65160 in small: 5 leads epoch 3 (won with its epoch 2), nobody counted out.
        let (me, won) = (ServerId(5), Vote { peer_epoch: 2, ..vote(5, 1) });
        let later = Vote { peer_epoch: 4, ..vote(4, 9) };
        let mut b = Backing::default();
        b.saw_vote(won, None, later);
        assert!(!b.hopeless(me, &five()), "epoch undecided: nothing to compare with");
        b.saw_vote(won, Some(3), Vote { peer_epoch: 3, ..vote(1, 9) });
        assert!(!b.hopeless(me, &five()), "our own epoch is no later one");
        b.saw_vote(won, Some(3), later);
        assert!(b.hopeless(me, &five()), "a quorum acknowledged epoch 4");
    }

    #[test]
    fn only_voters_that_can_never_follow_are_counted_out() {
        let (me, won) = (ServerId(5), vote(5, 4));
        let mut b = Backing::default();
        let hear = |b: &mut Backing, from: u64, v: Vote, round: u64, state: PeerState| {
            b.on_notification(won, 2, ServerId(from), v, round, state);
            b.elsewhere.contains(&ServerId(from))
        };
        // Looking: a later round, or this round with a better vote, is final.
        assert!(hear(&mut b, 1, vote(1, 0), 3, PeerState::Looking), "a later round");
        assert!(hear(&mut b, 1, vote(1, 9), 2, PeerState::Looking), "a better vote");
        assert!(!hear(&mut b, 1, vote(1, 0), 2, PeerState::Looking), "may adopt ours");
        assert!(!hear(&mut b, 1, won, 2, PeerState::Looking), "votes for us");
        assert!(!hear(&mut b, 1, vote(1, 9), 1, PeerState::Looking), "may move to our round");
        // Following or leading: another leader from our round on is final.
        assert!(hear(&mut b, 2, vote(3, 0), 2, PeerState::Following), "follows a rival");
        assert!(hear(&mut b, 3, vote(3, 0), 4, PeerState::Leading), "leads");
        assert!(!hear(&mut b, 2, vote(3, 0), 1, PeerState::Following), "an older round");
        assert!(!hear(&mut b, 2, won, 2, PeerState::Following), "follows us");
        assert!(!b.hopeless(me, &five()), "only 3 is counted out now");
        assert!(!hear(&mut b, 4, vote(4, 0), 9, PeerState::Observing), "observers never count");
    }
}
