//! The one writer of stream positions. Events, account data, receipts and presence changes each
//! take the next position here and commit while holding it, so positions are published in
//! commit order and a sync token never skips or repeats a change.

use tokio::sync::{Mutex, MutexGuard};

use super::{Notifier, notifier::Scope};

pub struct StreamWriter {
    last: Mutex<i64>,
    notifier: Notifier,
}

/// A reserved position. `committed()` publishes it; dropping it unpublished (the write failed)
/// leaves the position free for the next writer.
pub struct StreamSlot<'a> {
    guard: MutexGuard<'a, i64>,
    notifier: &'a Notifier,
}

impl StreamWriter {
    pub fn new(last: i64, notifier: Notifier) -> Self {
        notifier.start_at(last);
        Self { last: Mutex::new(last), notifier }
    }

    pub fn notifier(&self) -> &Notifier {
        &self.notifier
    }

    /// Holds the writer without taking a position: nothing commits until the guard drops. For
    /// filling in-memory views from storage so that no commit falls between the read and the
    /// fill (commits update those views while they hold the writer).
    pub async fn hold(&self) -> MutexGuard<'_, i64> {
        self.last.lock().await
    }

    /// Waits for the writer and reserves the next position.
    pub async fn begin(&self) -> StreamSlot<'_> {
        StreamSlot { guard: self.last.lock().await, notifier: &self.notifier }
    }
}

impl StreamSlot<'_> {
    pub fn position(&self) -> i64 {
        *self.guard + 1
    }

    /// The write at `position()` committed: publish it, saying whom it concerns so waiting
    /// syncs of unrelated users need not look.
    pub fn committed(mut self, scope: &[Scope<'_>]) -> i64 {
        let position = self.position();
        *self.guard = position;
        self.notifier.publish_stream(position, scope);
        position
    }
}
