//! Stopping a repository's work when the run gives up on it.
//!
//! A repository's work runs on a blocking thread; dropping its task handle does not stop it. Every
//! long step of that work therefore checks a [`Cancellation`] — between the chunks of a transfer,
//! between the objects and chunks the pack indexer rebuilds, around every AWS call a target makes —
//! and ends with [`Cancelled`] once the run has abandoned the repository or the repository's deadline
//! has passed. The run waits for abandoned work to end before it reports, so nothing outlives the
//! report: in Lambda nothing carries into the next invocation, and the command line exits right after
//! its report.
//!
//! [`active_repositories`] counts the repositories whose work is running in this process; a run that
//! starts while it is not zero logs it (work left over from an earlier run would be a bug).

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::runtime::Handle;
use tokio::sync::Notify;

/// Why a repository's work stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Cancelled {
    /// The run gave up on the repository (its deadline came while the work was running).
    #[error("the run abandoned this repository at its deadline")]
    Abandoned,
    /// The repository's own deadline passed.
    #[error("the repository's deadline passed")]
    DeadlinePassed,
}

#[derive(Debug, Default)]
struct Shared {
    cancelled: AtomicBool,
    woken: Notify,
}

/// One repository's cancellation: set by the run, checked by the work. Clones share it.
#[derive(Debug, Clone, Default)]
pub struct Cancellation {
    shared: Arc<Shared>,
    deadline: Option<Instant>,
}

impl Cancellation {
    /// A cancellation that also counts as set once `deadline` has passed.
    pub fn with_deadline(deadline: Option<Instant>) -> Cancellation {
        Cancellation {
            shared: Arc::default(),
            deadline,
        }
    }

    /// The same cancellation, also set once `deadline` has passed (the earlier deadline wins).
    pub fn until(&self, deadline: Option<Instant>) -> Cancellation {
        let deadline = match (self.deadline, deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Cancellation {
            shared: Arc::clone(&self.shared),
            deadline,
        }
    }

    /// Abandons the work: every check from now on fails, and every wait in [`Cancellation::block_on`]
    /// ends.
    pub fn cancel(&self) {
        self.shared.cancelled.store(true, Ordering::SeqCst);
        self.shared.woken.notify_waiters();
    }

    /// Whether the work was abandoned (the deadline aside).
    pub fn is_abandoned(&self) -> bool {
        self.shared.cancelled.load(Ordering::SeqCst)
    }

    /// `Err` once the work was abandoned or its deadline has passed.
    pub fn check(&self) -> Result<(), Cancelled> {
        if self.is_abandoned() {
            return Err(Cancelled::Abandoned);
        }
        match self.deadline {
            Some(deadline) if Instant::now() >= deadline => Err(Cancelled::DeadlinePassed),
            _ => Ok(()),
        }
    }

    /// Resolves when the work is abandoned (never, if it is not).
    async fn abandoned(&self) {
        loop {
            let woken = self.shared.woken.notified();
            tokio::pin!(woken);
            // Registered before the flag is read, so a `cancel` in between is not missed.
            woken.as_mut().enable();
            if self.is_abandoned() {
                return;
            }
            woken.await;
        }
    }

    /// Runs `work` to completion on `handle` from a blocking thread, unless the work is abandoned
    /// first. (The deadline is left to the work's own timeouts, which name what timed out.)
    pub fn block_on<T>(
        &self,
        handle: &Handle,
        work: impl Future<Output = T>,
    ) -> Result<T, Cancelled> {
        self.check_abandoned()?;
        handle.block_on(async {
            tokio::select! {
                done = work => Ok(done),
                () = self.abandoned() => Err(Cancelled::Abandoned),
            }
        })
    }

    fn check_abandoned(&self) -> Result<(), Cancelled> {
        if self.is_abandoned() {
            Err(Cancelled::Abandoned)
        } else {
            Ok(())
        }
    }
}

static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// How many repositories' work is running in this process right now.
pub fn active_repositories() -> usize {
    ACTIVE.load(Ordering::SeqCst)
}

/// Counts one repository's work as running in this process while it is held.
#[derive(Debug)]
pub struct ActiveRepository(());

impl ActiveRepository {
    pub fn enter() -> ActiveRepository {
        ACTIVE.fetch_add(1, Ordering::SeqCst);
        ActiveRepository(())
    }
}

impl Drop for ActiveRepository {
    fn drop(&mut self) {
        ACTIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_cancellation_is_shared_by_its_clones_and_counts_its_deadline() {
        let cancellation = Cancellation::default();
        let clone = cancellation.clone();
        assert_eq!(clone.check(), Ok(()));
        cancellation.cancel();
        assert_eq!(clone.check(), Err(Cancelled::Abandoned));

        let past = Cancellation::default().until(Some(Instant::now()));
        assert_eq!(past.check(), Err(Cancelled::DeadlinePassed));
        let later = Cancellation::with_deadline(Some(Instant::now() + Duration::from_secs(3600)));
        assert_eq!(later.check(), Ok(()));
        assert_eq!(
            later.until(Some(Instant::now())).check(),
            Err(Cancelled::DeadlinePassed)
        );
    }

    #[test]
    fn an_abandoned_wait_ends_and_a_finished_one_returns_its_value() {
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(err) => panic!("a runtime: {err}"),
        };
        let handle = runtime.handle().clone();
        let cancellation = Cancellation::default();
        assert_eq!(cancellation.block_on(&handle, async { 7 }), Ok(7));

        let waiting = cancellation.clone();
        let blocked =
            std::thread::spawn(move || waiting.block_on(&handle, std::future::pending::<()>()));
        // The waiter may or may not have started waiting yet: either way it must end.
        cancellation.cancel();
        let ended = blocked.join().map_err(|_| "the waiting thread panicked");
        assert_eq!(ended, Ok(Err(Cancelled::Abandoned)));
    }
}
