//! Ephemeral and status data: typing notifications, receipts and read markers, presence.

pub mod presence;
pub mod receipts;
pub mod typing;
