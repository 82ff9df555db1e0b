//! One owner thread per wallet: the wallet (its blocking HTTP client and its database) lives on
//! a thread of its own, and async callers hand it jobs and await their answers. So a handler
//! never blocks the runtime, and two requests never race on the same wallet state. Both the
//! wallet service's worker and the faucet are this actor.

use std::sync::mpsc;
use tokio::sync::oneshot;

type Job<S> = Box<dyn FnOnce(&mut S) + Send>;

/// The handle of a thread that owns an `S` and runs jobs on it, one at a time, in order.
pub struct Actor<S> {
    jobs: mpsc::Sender<Job<S>>,
}

impl<S> Clone for Actor<S> {
    fn clone(&self) -> Self {
        Actor {
            jobs: self.jobs.clone(),
        }
    }
}

impl<S: 'static> Actor<S> {
    /// Starts thread `name`, which builds its state with `open` (on the thread: blocking work
    /// such as opening a database or decrypting a key stays off the runtime) and then serves
    /// jobs until every handle is dropped. `open`'s error is returned here.
    pub fn start<E: Send + 'static>(
        name: &str,
        open: impl FnOnce() -> Result<S, E> + Send + 'static,
    ) -> Result<Self, ActorError<E>> {
        let (jobs, queue) = mpsc::channel::<Job<S>>();
        let (opened, outcome) = mpsc::channel::<Result<(), E>>();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let mut state = match open() {
                    Ok(state) => {
                        let _ = opened.send(Ok(()));
                        state
                    }
                    Err(error) => {
                        let _ = opened.send(Err(error));
                        return;
                    }
                };
                while let Ok(job) = queue.recv() {
                    job(&mut state);
                }
            })
            .map_err(ActorError::Spawn)?;
        match outcome.recv() {
            Ok(Ok(())) => Ok(Actor { jobs }),
            Ok(Err(error)) => Err(ActorError::Open(error)),
            Err(_) => Err(ActorError::Spawn(std::io::Error::other(
                "the thread ended while opening",
            ))),
        }
    }

    /// Runs `job` on the owner thread; `None` if the thread is gone.
    pub async fn run<T: Send + 'static>(&self, job: impl FnOnce(&mut S) -> T + Send + 'static) -> Option<T> {
        let (reply, answer) = oneshot::channel();
        let job: Job<S> = Box::new(move |state| {
            let _ = reply.send(job(state));
        });
        self.jobs.send(job).ok()?;
        answer.await.ok()
    }
}

/// Why an actor did not start.
#[derive(Debug)]
pub enum ActorError<E> {
    /// The thread could not be started.
    Spawn(std::io::Error),
    /// Its state could not be built.
    Open(E),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_in_order_on_the_owner_thread_and_an_open_error_comes_back() {
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let counter = Actor::start("counter", || Ok::<_, String>(Vec::new())).expect("starts");
        let other_handle = counter.clone();
        let answers = runtime.block_on(async {
            let first = counter.run(|seen: &mut Vec<u32>| {
                seen.push(1);
                seen.len()
            });
            let second = other_handle.run(|seen: &mut Vec<u32>| {
                seen.push(2);
                seen.clone()
            });
            (first.await, second.await)
        });
        assert_eq!(answers, (Some(1), Some(vec![1, 2])));
        let refused = Actor::<Vec<u32>>::start("refused", || Err("no database".to_string()));
        assert!(matches!(refused, Err(ActorError::Open(reason)) if reason == "no database"));
    }
}
