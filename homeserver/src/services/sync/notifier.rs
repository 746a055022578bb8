//! The sync notifier: carries stream positions, never data. The event writer publishes a
//! position after its transaction commits; waiting /sync requests wake and re-read storage.

use std::{sync::Arc, time::Duration};

use tokio::sync::watch;

#[derive(Clone)]
pub struct Notifier {
    sender: Arc<watch::Sender<i64>>,
}

impl Notifier {
    pub fn new(start: i64) -> Self {
        Self { sender: Arc::new(watch::channel(start).0) }
    }

    /// The highest position whose events (and everything below) are committed.
    pub fn current(&self) -> i64 {
        *self.sender.borrow()
    }

    /// Publishes `position`. Positions only move forward.
    pub fn publish(&self, position: i64) {
        self.sender.send_if_modified(|current| {
            if position > *current {
                *current = position;
                true
            } else {
                false
            }
        });
    }

    /// Waits until the position passes `since` or `timeout` elapses; returns the position then.
    pub async fn wait_past(&self, since: i64, timeout: Duration) -> i64 {
        let mut receiver = self.sender.subscribe();
        let _ = tokio::time::timeout(timeout, receiver.wait_for(|position| *position > since)).await;
        self.current()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_wake_on_publish_and_time_out_otherwise() {
        let notifier = Notifier::new(5);
        assert_eq!(notifier.wait_past(5, Duration::from_millis(10)).await, 5);
        let waiter = {
            let notifier = notifier.clone();
            tokio::spawn(async move { notifier.wait_past(5, Duration::from_secs(30)).await })
        };
        tokio::task::yield_now().await;
        notifier.publish(6);
        assert_eq!(tokio::time::timeout(Duration::from_secs(5), waiter).await.unwrap().unwrap(), 6);
        notifier.publish(3);
        assert_eq!(notifier.current(), 6, "positions never go back");
    }
}
