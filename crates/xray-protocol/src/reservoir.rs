//! The reservoir arithmetic of X-Ray sampling.
//!
//! Each rule has a reservoir: `ReservoirSize` traces per second for the whole fleet, which X-Ray shares among the
//! clients that report the rule ([`fleet_quota`]); each client takes its share (`ReservoirQuota`) of each second's
//! requests first, then the rule's `FixedRate` of the rest ([`Reservoir`]). A rule without a quota yet borrows one
//! trace a second, as the X-Ray SDKs do. What each rule decided is counted ([`Statistics`]) and reported.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// What a rule decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// From the reservoir (the rule's quota).
    Reserved,
    /// From the one trace a second a rule may take before X-Ray has given it a quota.
    Borrowed,
    /// By the rule's rate.
    ByRate,
    Declined,
}

impl Decision {
    pub fn sampled(self) -> bool {
        self != Self::Declined
    }
}

/// A rule's traces per second (fixed for a local rule; the quota X-Ray assigns, for as long as it holds, for a
/// centralized one), then its rate. Shared by the threads deciding, without a lock.
#[derive(Debug)]
pub struct Reservoir {
    quota: AtomicU32,
    /// The epoch second the quota holds until: `u64::MAX` for a fixed reservoir; 0 before X-Ray has assigned one,
    /// when the rule borrows.
    quota_until: AtomicU64,
    /// The epoch second being counted (high 32 bits, enough until 2106) and the traces taken in it (low 32 bits).
    taken: AtomicU64,
    /// The rate's `f64` bits.
    rate: AtomicU64,
}

impl Reservoir {
    /// `per_second` traces each second for good, then `rate` (a local rule, or one client holding a whole reservoir).
    pub fn fixed(per_second: u32, rate: f64) -> Self {
        Self::with(per_second, u64::MAX, rate)
    }

    /// A centralized rule's, until X-Ray assigns it a quota.
    pub fn borrowing(rate: f64) -> Self {
        Self::with(0, 0, rate)
    }

    fn with(quota: u32, quota_until: u64, rate: f64) -> Self {
        Self {
            quota: AtomicU32::new(quota),
            quota_until: AtomicU64::new(quota_until),
            taken: AtomicU64::new(0),
            rate: AtomicU64::new(rate.to_bits()),
        }
    }

    /// A `SamplingTargets` answer: the quota until epoch second `until` (when given), and the rate.
    pub fn assign(&self, quota: Option<(u32, u64)>, rate: f64) {
        if let Some((quota, until)) = quota {
            self.quota.store(quota, Ordering::Relaxed);
            self.quota_until.store(until, Ordering::Relaxed);
        }
        self.rate.store(rate.to_bits(), Ordering::Relaxed);
    }

    /// Takes over `previous`'s quota and how long it holds (the same rule, fetched again); a fixed reservoir is no
    /// quota X-Ray gave.
    pub fn keep_quota_of(&self, previous: &Reservoir) {
        let until = previous.quota_until.load(Ordering::Relaxed);
        if until != u64::MAX {
            self.quota.store(previous.quota.load(Ordering::Relaxed), Ordering::Relaxed);
            self.quota_until.store(until, Ordering::Relaxed);
        }
    }

    /// The decision for a request in epoch second `now`: a place in this second's quota (or the borrowed one), else
    /// whatever `by_rate` says of the rate.
    pub fn decide(&self, now: u64, by_rate: impl FnOnce(f64) -> bool) -> Decision {
        if now < self.quota_until.load(Ordering::Relaxed) {
            if self.take(now, self.quota.load(Ordering::Relaxed)) {
                return Decision::Reserved;
            }
        } else if self.take(now, 1) {
            return Decision::Borrowed;
        }
        if by_rate(f64::from_bits(self.rate.load(Ordering::Relaxed))) { Decision::ByRate } else { Decision::Declined }
    }

    /// Takes one of second `now`'s `limit` places, if one is left.
    fn take(&self, now: u64, limit: u32) -> bool {
        let mut current = self.taken.load(Ordering::Relaxed);
        loop {
            let (second, taken) = (current >> 32, current & u64::from(u32::MAX));
            let taken = if second == now { taken } else { 0 };
            if taken >= u64::from(limit) {
                return false;
            }
            let next = (now << 32) | (taken + 1);
            match self.taken.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }
}

/// Requests a rule saw since the last report, as `SamplingTargets` takes them.
#[derive(Debug, Default)]
pub struct Statistics {
    requests: AtomicU64,
    sampled: AtomicU64,
    borrowed: AtomicU64,
}

/// The counts of one interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub requests: u64,
    pub sampled: u64,
    pub borrowed: u64,
}

impl Statistics {
    pub fn count(&self, decision: Decision) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if decision.sampled() {
            self.sampled.fetch_add(1, Ordering::Relaxed);
        }
        if decision == Decision::Borrowed {
            self.borrowed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counts since the last call.
    pub fn take(&self) -> Counts {
        let take = |counter: &AtomicU64| counter.swap(0, Ordering::Relaxed);
        Counts { requests: take(&self.requests), sampled: take(&self.sampled), borrowed: take(&self.borrowed) }
    }
}

/// One client's share of a rule's `reservoir` traces per second, among `clients` (the ids of those that reported
/// it lately, sorted): an equal part each, the remainder one each to the first clients by id, so the shares add up
/// to the reservoir exactly.
pub fn fleet_quota<'a>(reservoir: u32, clients: impl ExactSizeIterator<Item = &'a str>, client: &str) -> u32 {
    let count = u32::try_from(clients.len().max(1)).unwrap_or(u32::MAX);
    let mut clients = clients;
    let rank = clients.position(|id| id == client).map_or(0, |rank| u32::try_from(rank).unwrap_or(u32::MAX));
    reservoir / count + u32::from(rank < reservoir % count)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEVER: fn(f64) -> bool = |_| false;

    #[test]
    fn a_fixed_reservoir_takes_its_traces_each_second_then_the_rate() {
        let reservoir = Reservoir::fixed(2, 0.0);
        let decisions: Vec<Decision> = (0..3).map(|_| reservoir.decide(100, NEVER)).collect();
        assert_eq!(decisions, [Decision::Reserved, Decision::Reserved, Decision::Declined]);
        let next_second: Vec<Decision> = (0..2).map(|_| reservoir.decide(101, NEVER)).collect();
        assert_eq!(next_second, [Decision::Reserved, Decision::Reserved], "a new second, new places");
        assert_eq!(reservoir.decide(101, |rate| rate == 0.0), Decision::ByRate, "the rate is asked with its value");
    }

    #[test]
    fn a_rule_without_a_quota_borrows_one_a_second_and_keeps_its_quota_while_it_holds() {
        let reservoir = Reservoir::borrowing(0.0);
        assert_eq!(reservoir.decide(100, NEVER), Decision::Borrowed);
        assert_eq!(reservoir.decide(100, NEVER), Decision::Declined);
        reservoir.assign(Some((2, 110)), 0.0);
        assert_eq!(
            (reservoir.decide(101, NEVER), reservoir.decide(101, NEVER)),
            (Decision::Reserved, Decision::Reserved)
        );
        assert_eq!(reservoir.decide(101, NEVER), Decision::Declined, "a quota of 2 a second");
        assert_eq!(reservoir.decide(110, NEVER), Decision::Borrowed, "the quota expired: borrowing again");
        reservoir.assign(None, 1.0);
        assert_eq!(reservoir.decide(110, |rate| rate == 1.0), Decision::ByRate);

        reservoir.assign(Some((1, 200)), 0.0);
        let fetched_again = Reservoir::borrowing(0.0);
        fetched_again.keep_quota_of(&reservoir);
        assert_eq!(
            (fetched_again.decide(120, NEVER), fetched_again.decide(120, NEVER)),
            (Decision::Reserved, Decision::Declined)
        );
        let after_a_fixed_one = Reservoir::borrowing(0.0);
        after_a_fixed_one.keep_quota_of(&Reservoir::fixed(5, 0.0));
        assert_eq!(
            (after_a_fixed_one.decide(120, NEVER), after_a_fixed_one.decide(120, NEVER)),
            (Decision::Borrowed, Decision::Declined)
        );
    }

    #[test]
    fn statistics_count_requests_sampled_and_borrowed_until_taken() {
        let statistics = Statistics::default();
        for decision in [Decision::Reserved, Decision::Borrowed, Decision::ByRate, Decision::Declined] {
            statistics.count(decision);
        }
        assert_eq!(statistics.take(), Counts { requests: 4, sampled: 3, borrowed: 1 });
        assert_eq!(statistics.take(), Counts::default());
    }

    #[test]
    fn a_reservoir_is_shared_exactly_among_the_clients() {
        let clients = ["a", "b"];
        let shares: Vec<u32> = clients.iter().map(|client| fleet_quota(5, clients.into_iter(), client)).collect();
        assert_eq!(shares, [3, 2]);
        assert_eq!(fleet_quota(5, ["a"].into_iter(), "a"), 5);
        assert_eq!(fleet_quota(1, ["a", "b", "c"].into_iter(), "c"), 0);
        assert_eq!(fleet_quota(5, std::iter::empty(), "a"), 5, "a client not yet listed has it all");
    }
}
