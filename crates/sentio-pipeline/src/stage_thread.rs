//! A pipeline stage's own OS thread: a small current-thread tokio runtime on a thread of its
//! own, so that the stage's CPU work (scoring a batch, building a commit) never holds one of
//! the node's runtime workers, where the broker's acceptors and connection tasks run.
//!
//! The stage is still joined to the rest by the same bounded channels: a `tokio::sync::mpsc`
//! channel or a oneshot wakes its receiver whichever runtime it runs on. Store calls made on
//! the stage (`spawn_blocking` inside the store) go to this runtime's own blocking pool.

use std::future::Future;
use std::thread;

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::warn;

/// One stage thread. Dropping it lets the thread stop (its runtime cancels what is still
/// running on it); [`StageThread::stop`] also waits for the thread to end.
pub(crate) struct StageThread {
    handle: Handle,
    /// Dropped to let the thread leave its runtime.
    stop: Option<oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl StageThread {
    /// Starts the thread `name`, lowered by `nice` steps of OS priority (0 keeps the node's
    /// own; Linux only: elsewhere the thread keeps the process's priority).
    pub(crate) fn start(name: &str, nice: i32) -> std::io::Result<Self> {
        let runtime = Builder::new_current_thread()
            .enable_all()
            .thread_name(format!("{name}-blocking"))
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
    pub(crate) fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(task)
    }

    /// Stops the thread once its tasks are done (the caller awaits them first) and waits until
    /// it has ended.
    pub(crate) async fn stop(mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// Lowers the calling thread's scheduling priority by `nice` steps.
#[cfg(target_os = "linux")]
fn lower_priority(nice: i32) -> std::io::Result<()> {
    // On Linux the nice value is a per-thread attribute: this thread's id names the thread.
    let me = rustix::thread::gettid();
    let now = rustix::process::getpriority_process(Some(me))?;
    rustix::process::setpriority_process(Some(me), now.saturating_add(nice))?;
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn lower_priority(_nice: i32) -> std::io::Result<()> {
    Ok(())
}

/// The nice value of the calling thread (Linux); `None` elsewhere.
#[cfg(all(test, target_os = "linux"))]
pub(crate) fn current_nice() -> Option<i32> {
    rustix::process::getpriority_process(Some(rustix::thread::gettid())).ok()
}
