//! The sync notifier: carries positions, never data. Writers publish a stream position after
//! their transaction commits; typing changes bump an in-memory serial. Waiting /sync requests
//! wake and re-read.

use std::{sync::Arc, time::Duration};

use tokio::sync::watch;

use super::token::SyncToken;

#[derive(Clone)]
pub struct Notifier {
    sender: Arc<watch::Sender<SyncToken>>,
}

impl Notifier {
    /// `typing_start` seeds the typing serial; using the clock keeps it increasing across
    /// restarts, so tokens handed out before a restart are never ahead of it for long.
    pub fn new(typing_start: u64) -> Self {
        Self { sender: Arc::new(watch::channel(SyncToken { stream: 0, typing: typing_start }).0) }
    }

    /// The newest positions: everything at or below `stream` is committed.
    pub fn current(&self) -> SyncToken {
        *self.sender.borrow()
    }

    pub fn publish_stream(&self, position: i64) {
        self.sender.send_if_modified(|current| {
            let moved = position > current.stream;
            if moved {
                current.stream = position;
            }
            moved
        });
    }

    /// Bumps the typing serial and returns the new value.
    pub fn bump_typing(&self) -> u64 {
        let mut serial = 0;
        self.sender.send_modify(|current| {
            current.typing += 1;
            serial = current.typing;
        });
        serial
    }

    /// Waits until either position passes `since` or `timeout` elapses; returns the positions.
    pub async fn wait_past(&self, since: SyncToken, timeout: Duration) -> SyncToken {
        let mut receiver = self.sender.subscribe();
        let _ = tokio::time::timeout(
            timeout,
            receiver.wait_for(|now| now.stream > since.stream || now.typing > since.typing),
        )
        .await;
        self.current()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_wake_on_publish_and_time_out_otherwise() {
        let notifier = Notifier::new(0);
        notifier.publish_stream(5);
        let start = notifier.current();
        assert_eq!(notifier.wait_past(start, Duration::from_millis(10)).await, start);
        let waiter = {
            let notifier = notifier.clone();
            tokio::spawn(async move { notifier.wait_past(start, Duration::from_secs(30)).await })
        };
        tokio::task::yield_now().await;
        notifier.publish_stream(6);
        assert_eq!(tokio::time::timeout(Duration::from_secs(5), waiter).await.unwrap().unwrap().stream, 6);
        notifier.publish_stream(3);
        assert_eq!(notifier.current().stream, 6, "positions never go back");
        let typing = notifier.bump_typing();
        assert_eq!(notifier.current().typing, typing);
    }
}
