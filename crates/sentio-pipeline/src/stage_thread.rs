//! A stage's own OS thread: a small current-thread tokio runtime on a thread of its own, so
//! that the stage's work (scoring a batch, building a commit, the store's maintenance) never
//! holds one of the node's runtime workers, where the broker's acceptors and connection tasks
//! run. The pipeline runs its writer and detectors on such threads; the node its store's
//! background work.
//!
//! The stage is still joined to the rest by the same bounded channels: a `tokio::sync::mpsc`
//! channel or a oneshot wakes its receiver whichever runtime it runs on. Store calls made on
//! the stage (`spawn_blocking` inside the store) go to this runtime's own blocking pool, whose
//! threads run at the stage's priority too.

use std::future::Future;
use std::thread;

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::warn;

/// One stage thread. Dropping it lets the thread stop (its runtime cancels what is still
/// running on it); [`StageThread::stop`] also waits for the thread to end.
pub struct StageThread {
    handle: Handle,
    /// Dropped to let the thread leave its runtime.
    stop: Option<oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl StageThread {
    /// Starts the thread `name`, lowered by `nice` steps of OS priority (0 keeps the node's
    /// own; Linux only: elsewhere the thread keeps the process's priority). The threads of its
    /// blocking pool (`<name>-blocking`) run at the same priority.
    pub fn start(name: &str, nice: i32) -> std::io::Result<Self> {
        let target = (nice != 0).then(|| current_priority().map(|now| now.saturating_add(nice)));
        let blocking = name.to_string();
        let runtime = Builder::new_current_thread()
            .enable_all()
            .thread_name(format!("{name}-blocking"))
            .on_thread_start(move || {
                // A blocking thread inherits the priority of the thread that spawned it, which
                // need not be the stage's: set it here, whoever spawned it.
                if let Some(Ok(target)) = target
                    && let Err(e) = lower_priority_to(target)
                {
                    warn!(stage = blocking, target, error = %e, "blocking thread keeps its priority");
                }
            })
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stop_rx) = oneshot::channel::<()>();
        let stage = name.to_string();
        let (ready, is_ready) = std::sync::mpsc::sync_channel(1);
        let thread = thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                if nice != 0
                    && let Err(e) = lower_priority(nice)
                {
                    warn!(stage, nice, error = %e, "stage keeps the node's priority");
                }
                let _ = ready.send(());
                // Drives every task spawned on the stage until told to stop.
                runtime.block_on(async {
                    let _ = stop_rx.await;
                });
            })?;
        // Its priority is set before anything runs on it.
        let _ = is_ready.recv();
        Ok(Self {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Runs `task` on the stage's thread.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(task)
    }

    /// The stage's runtime (tests start blocking work on it from elsewhere).
    #[cfg(test)]
    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Stops the thread once its tasks are done (the caller awaits them first) and waits until
    /// it has ended.
    pub async fn stop(mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// Lowers the calling thread's scheduling priority by `nice` steps.
fn lower_priority(nice: i32) -> std::io::Result<()> {
    lower_priority_to(current_priority()?.saturating_add(nice))
}

/// The calling thread's nice value (0 where threads have none of their own).
#[cfg(target_os = "linux")]
fn current_priority() -> std::io::Result<i32> {
    // On Linux the nice value is a per-thread attribute: this thread's id names the thread.
    Ok(rustix::process::getpriority_process(Some(
        rustix::thread::gettid(),
    ))?)
}

#[cfg(not(target_os = "linux"))]
fn current_priority() -> std::io::Result<i32> {
    Ok(0)
}

/// Sets the calling thread's nice value to `target` if it is below it (never raises priority).
#[cfg(target_os = "linux")]
fn lower_priority_to(target: i32) -> std::io::Result<()> {
    let me = rustix::thread::gettid();
    if rustix::process::getpriority_process(Some(me))? < target {
        rustix::process::setpriority_process(Some(me), target)?;
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn lower_priority_to(_target: i32) -> std::io::Result<()> {
    Ok(())
}

/// The nice value of the calling thread (Linux); `None` elsewhere.
#[cfg(all(test, target_os = "linux"))]
pub(crate) fn current_nice() -> Option<i32> {
    rustix::process::getpriority_process(Some(rustix::thread::gettid())).ok()
}
