//! What a command started is stopped on every exit path. A [`Cleanup`] guard runs its action
//! when dropped (a normal return, an error, a panic); a signal ends the process without any
//! drop, so the binary's SIGINT/SIGTERM handler calls [`run_all`], which runs the actions the
//! guards still hold. `ezchain bench`, the gates and the drill start testnets and services of
//! their own; before this, Ctrl-C left those processes running.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

type Action = Box<dyn FnOnce() + Send>;

static ACTIONS: Mutex<Vec<(u64, Action)>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// Runs its action once: when dropped, or from [`run_all`], whichever comes first.
#[must_use = "the action runs when the guard is dropped"]
pub struct Cleanup {
    id: u64,
}

/// Registers `action` to run when the returned guard is dropped or the process is told to stop.
pub fn on_exit(action: impl FnOnce() + Send + 'static) -> Cleanup {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    ACTIONS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((id, Box::new(action)));
    Cleanup { id }
}

fn take(id: u64) -> Option<Action> {
    let mut actions = ACTIONS.lock().unwrap_or_else(|p| p.into_inner());
    let index = actions.iter().position(|(held, _)| *held == id)?;
    Some(actions.remove(index).1)
}

impl Cleanup {
    /// Forgets the action without running it (the caller stopped the thing itself, and running
    /// the action later could hit something else: a reused pid).
    pub fn disarm(self) {
        drop(take(self.id));
        std::mem::forget(self);
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(action) = take(self.id) {
            action();
        }
    }
}

/// Runs every pending action, newest first (what was started last is stopped first).
pub fn run_all() {
    let pending: Vec<(u64, Action)> = std::mem::take(&mut *ACTIONS.lock().unwrap_or_else(|p| p.into_inner()));
    for (_, action) in pending.into_iter().rev() {
        action();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn an_action_runs_once_on_drop_or_on_run_all_never_twice() {
        let count = Arc::new(AtomicUsize::new(0));
        let counted = |count: &Arc<AtomicUsize>| {
            let count = count.clone();
            move || {
                count.fetch_add(1, Ordering::SeqCst);
            }
        };
        drop(on_exit(counted(&count)));
        assert_eq!(count.load(Ordering::SeqCst), 1, "dropping the guard runs it");
        let held = on_exit(counted(&count));
        run_all();
        assert_eq!(count.load(Ordering::SeqCst), 2, "a signal runs what guards still hold");
        drop(held);
        assert_eq!(count.load(Ordering::SeqCst), 2, "and the guard does not run it again");
        on_exit(counted(&count)).disarm();
        run_all();
        assert_eq!(count.load(Ordering::SeqCst), 2, "a disarmed action never runs");
    }
}
