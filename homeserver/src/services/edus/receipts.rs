//! Receipts and read markers (spec: Client-Server API § Receipts, § Read markers): the "read"
//! ticks of a chat app. m.read is shared with the room, m.read.private only with the user's own
//! devices, m.fully_read is the user's read marker (room account data).

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::{
    error::{ApiError, ApiResult},
    services::{
        account_data::AccountData,
        rooms::Rooms,
        sync::{notifier::Scope, stream_writer::StreamWriter},
    },
    storage::{Db, account_data::ReceiptRecord, now_ms},
};

pub struct Receipts {
    db: Db,
    streams: Arc<StreamWriter>,
    rooms: Arc<Rooms>,
    account_data: Arc<AccountData>,
}

impl Receipts {
    pub fn new(db: Db, streams: Arc<StreamWriter>, rooms: Arc<Rooms>, account_data: Arc<AccountData>) -> Self {
        Self { db, streams, rooms, account_data }
    }

    async fn check_event(&self, user_id: &str, room_id: &str, event_id: &str) -> ApiResult<()> {
        self.rooms.rules(room_id).await?;
        self.rooms.visibility(user_id, room_id).await?;
        if self.db.event(event_id).await?.is_none_or(|e| e.room_id != room_id) {
            return Err(ApiError::not_found("Event not found in this room"));
        }
        Ok(())
    }

    /// POST /rooms/{roomId}/receipt/{receiptType}/{eventId}
    pub async fn post(
        &self,
        user_id: &str,
        room_id: &str,
        receipt_type: &str,
        event_id: &str,
        thread_id: Option<&str>,
    ) -> ApiResult<()> {
        if !matches!(receipt_type, "m.read" | "m.read.private" | "m.fully_read") {
            return Err(ApiError::invalid_param(format!("Unknown receipt type {receipt_type}")));
        }
        if thread_id.is_some_and(|t| t.is_empty()) {
            return Err(ApiError::invalid_param("thread_id must not be empty"));
        }
        self.check_event(user_id, room_id, event_id).await?;
        if receipt_type == "m.fully_read" {
            if thread_id.is_some() {
                return Err(ApiError::invalid_param("m.fully_read cannot be threaded"));
            }
            return self
                .account_data
                .write(user_id, Some(room_id), "m.fully_read", &json!({"event_id": event_id}))
                .await;
        }
        let receipt = ReceiptRecord {
            room_id: room_id.to_owned(),
            user_id: user_id.to_owned(),
            receipt_type: receipt_type.to_owned(),
            thread_id: thread_id.unwrap_or("").to_owned(),
            event_id: event_id.to_owned(),
            ts: now_ms(),
        };
        let slot = self.streams.begin().await;
        self.db.set_receipt(&receipt, slot.position()).await?;
        self.rooms.unread().forget(user_id);
        slot.committed(&[Scope::Receipt(room_id)]);
        if receipt_type == "m.read" {
            // Public read receipts go to the room's other servers (private ones stay here).
            let mut data = json!({"ts": receipt.ts});
            if let Some(thread) = thread_id {
                data["thread_id"] = thread.into();
            }
            let edu = json!({"edu_type": "m.receipt", "content": {
                room_id: {"m.read": {user_id: {"event_ids": [event_id], "data": data}}}
            }});
            self.rooms.send_edu_to_room(room_id, edu).await?;
        }
        Ok(())
    }

    /// A read receipt another server sent for one of its users (already known to be in the room).
    pub async fn store_remote(
        &self,
        room_id: &str,
        user_id: &str,
        event_id: &str,
        ts: i64,
        thread_id: Option<&str>,
    ) -> ApiResult<()> {
        if self.db.event(event_id).await?.is_none_or(|e| e.room_id != room_id) {
            return Ok(()); // an event this server does not hold: nothing to mark
        }
        let receipt = ReceiptRecord {
            room_id: room_id.to_owned(),
            user_id: user_id.to_owned(),
            receipt_type: "m.read".to_owned(),
            thread_id: thread_id.unwrap_or("").to_owned(),
            event_id: event_id.to_owned(),
            ts,
        };
        let slot = self.streams.begin().await;
        self.db.set_receipt(&receipt, slot.position()).await?;
        slot.committed(&[Scope::Receipt(room_id)]);
        Ok(())
    }

    /// POST /rooms/{roomId}/read_markers
    pub async fn read_markers(
        &self,
        user_id: &str,
        room_id: &str,
        fully_read: Option<&str>,
        read: Option<&str>,
        read_private: Option<&str>,
    ) -> ApiResult<()> {
        if let Some(event_id) = fully_read {
            self.post(user_id, room_id, "m.fully_read", event_id, None).await?;
        }
        if let Some(event_id) = read {
            self.post(user_id, room_id, "m.read", event_id, None).await?;
        }
        if let Some(event_id) = read_private {
            self.post(user_id, room_id, "m.read.private", event_id, None).await?;
        }
        Ok(())
    }

    /// The m.receipt EDU content for a room's receipts changed in (`after`, `up_to`], as
    /// `viewer` may see them (others' private receipts left out).
    pub async fn receipt_event(&self, viewer: &str, room_id: &str, after: i64, up_to: i64) -> ApiResult<Option<Value>> {
        let mut content: Map<String, Value> = Map::new();
        for receipt in self.db.receipts_since(room_id, after, up_to).await? {
            if receipt.receipt_type == "m.read.private" && receipt.user_id != viewer {
                continue;
            }
            let mut entry = json!({"ts": receipt.ts});
            if !receipt.thread_id.is_empty() {
                entry["thread_id"] = receipt.thread_id.clone().into();
            }
            let by_event = content.entry(receipt.event_id.clone()).or_insert_with(|| json!({}));
            by_event[&receipt.receipt_type][&receipt.user_id] = entry;
        }
        Ok((!content.is_empty()).then(|| json!({"type": "m.receipt", "content": content})))
    }
}
