//! /sync: the notifier and the assembly of sync responses from storage.

pub mod filter;
mod filter_cache;
mod lazy_members;
pub mod notifier;
pub mod response;
pub mod stream_writer;
pub mod token;

pub use notifier::Notifier;
pub use response::{E2eeSync, SyncRequest, SyncService};
