//! Configuration reloads parsed off the event loop: a SIGHUP starts the parse on tokio's
//! blocking pool and the event loop keeps serving with the running configuration until the
//! new one has loaded and validated. (Size and nesting limits keep a parse short, but key
//! files are read and a slow disk or a huge file must not stall binding updates either.)
use tokio::task::JoinHandle;

/// At most one load in flight; see the module documentation.
#[derive(Debug)]
pub struct BackgroundLoad<T> {
    task: Option<JoinHandle<T>>,
}

impl<T> Default for BackgroundLoad<T> {
    fn default() -> Self {
        BackgroundLoad { task: None }
    }
}

impl<T: Send + 'static> BackgroundLoad<T> {
    /// Starts `load` on the blocking pool; false (and nothing started) when one is running.
    pub fn start(&mut self, load: impl FnOnce() -> T + Send + 'static) -> bool {
        if self.task.is_some() {
            return false;
        }
        self.task = Some(tokio::task::spawn_blocking(load));
        true
    }

    /// Whether a load is in flight.
    pub fn is_running(&self) -> bool {
        self.task.is_some()
    }

    /// The finished load's result (use it in `select!`): pending while none is in flight;
    /// None if the load panicked.
    pub async fn finished(&mut self) -> Option<T> {
        match self.task.as_mut() {
            None => std::future::pending().await,
            Some(task) => {
                let result = task.await;
                self.task = None;
                result.ok()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_load_at_a_time_and_the_loop_is_not_blocked() {
        let mut loads = BackgroundLoad::default();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        assert!(loads.start(move || {
            let _ = rx.recv();
            7
        }));
        assert!(!loads.start(|| 8), "one in flight");
        // The loop goes on while the load is blocked.
        let idle = tokio::time::timeout(std::time::Duration::from_millis(50), loads.finished());
        assert!(idle.await.is_err());
        tx.send(()).unwrap();
        assert_eq!(loads.finished().await, Some(7));
        assert!(!loads.is_running());
        assert!(loads.start(|| 9));
        assert_eq!(loads.finished().await, Some(9));
    }
}
