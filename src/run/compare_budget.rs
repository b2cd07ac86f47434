//! GitHub's compare API asked within a repository's time: each question ends by the repository's
//! deadline, and all of one repository's questions together within `MIRROR_COMPARE_BUDGET`. Once the
//! time is spent no more questions are asked; what stays unanswered is undecided, which the plan treats
//! as diverged (so `MIRROR_DIVERGED` decides, never a guess).

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::runtime::Handle;

/// `MIRROR_COMPARE_BUDGET`'s default: seconds one repository's compare questions may take together.
pub const DEFAULT_COMPARE_BUDGET: Duration = Duration::from_secs(60);

/// The time one repository's compare questions have left.
pub struct CompareBudget {
    until: Instant,
    spent: bool,
}

impl CompareBudget {
    /// `budget` from now, but never past `deadline`.
    pub fn new(budget: Duration, deadline: Option<Instant>) -> CompareBudget {
        let until = Instant::now() + budget;
        CompareBudget {
            until: deadline.map_or(until, |deadline| deadline.min(until)),
            spent: false,
        }
    }

    /// Waits (on `handle`, from a blocking thread) for `question`'s answer while the budget lasts;
    /// `None` once it is spent.
    pub fn ask(
        &mut self,
        handle: &Handle,
        question: impl Future<Output = Option<bool>>,
    ) -> Option<bool> {
        if self.spent || Instant::now() >= self.until {
            self.spent = true;
            return None;
        }
        let until = tokio::time::Instant::from_std(self.until);
        // The timer is made inside `block_on`, where the runtime's clock is at hand.
        match handle.block_on(async { tokio::time::timeout_at(until, question).await }) {
            Ok(answer) => answer,
            Err(_elapsed) => {
                self.spent = true;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_end_with_the_budget_and_none_is_asked_after() {
        // As in the product: a multi-thread runtime, whose workers drive the timers `block_on` waits on.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_time()
            .build()
            .unwrap();
        let handle = runtime.handle();
        let mut budget = CompareBudget::new(Duration::from_millis(200), None);
        assert_eq!(budget.ask(handle, async { Some(true) }), Some(true));
        let started = Instant::now();
        let never = std::future::pending::<Option<bool>>();
        assert_eq!(budget.ask(handle, never), None);
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(budget.ask(handle, async { Some(true) }), None, "not asked");

        let past = Instant::now();
        let mut at_deadline = CompareBudget::new(Duration::from_secs(60), Some(past));
        assert_eq!(at_deadline.ask(handle, async { Some(true) }), None);
    }
}
