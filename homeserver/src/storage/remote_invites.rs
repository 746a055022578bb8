//! Memberships in rooms this server is not in ("out of band"): invites from other servers,
//! knocks on rooms elsewhere, and the leaves that reject or withdraw them (see
//! migrations/*/0015_remote_invites.sql).

use super::Db;

/// An out-of-band membership event to store.
pub struct OutOfBandMembership<'a> {
    /// `invite`, `knock` or `leave`.
    pub membership: &'a str,
    pub room_id: &'a str,
    pub user_id: &'a str,
    pub event_id: &'a str,
    pub sender: &'a str,
    pub room_version: &'a str,
    pub origin_server_ts: i64,
    pub depth: i64,
    pub json: &'a str,
    /// JSON array of stripped state events (the invite's or the knock's); `None` keeps what
    /// is stored (a leave).
    pub invite_state: Option<&'a str>,
}

impl Db {
    /// Stores the membership event, the user's membership and the stripped state in one
    /// transaction, at stream position `stream`.
    pub async fn store_out_of_band(&self, stream: i64, invite: OutOfBandMembership<'_>) -> sqlx::Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO events (stream_ordering, event_id, room_id, sender, event_type, state_key, depth, origin_server_ts, json)
             VALUES ($1, $2, $3, $4, 'm.room.member', $5, $6, $7, $8)",
        )
        .bind(stream)
        .bind(invite.event_id)
        .bind(invite.room_id)
        .bind(invite.sender)
        .bind(invite.user_id)
        .bind(invite.depth)
        .bind(invite.origin_server_ts)
        .bind(invite.json)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO room_memberships (room_id, user_id, membership, event_id, stream_ordering, forgotten, displayname, joined_stream)
             VALUES ($1, $2, $5, $3, $4, 0, NULL, 0)
             ON CONFLICT (room_id, user_id) DO UPDATE SET membership = $5, event_id = $3, stream_ordering = $4, forgotten = 0",
        )
        .bind(invite.room_id)
        .bind(invite.user_id)
        .bind(invite.event_id)
        .bind(stream)
        .bind(invite.membership)
        .execute(&mut *tx)
        .await?;
        let Some(invite_state) = invite.invite_state else {
            return tx.commit().await;
        };
        sqlx::query(
            "INSERT INTO remote_invites (room_id, user_id, event_id, room_version, invite_state) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (room_id, user_id) DO UPDATE SET event_id = $3, room_version = $4, invite_state = $5",
        )
        .bind(invite.room_id)
        .bind(invite.user_id)
        .bind(invite.event_id)
        .bind(invite.room_version)
        .bind(invite_state)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// The stripped state and event of the last remote invite or knock: (state JSON, event id).
    pub async fn remote_invite(&self, room_id: &str, user_id: &str) -> sqlx::Result<Option<(String, String)>> {
        sqlx::query_as("SELECT invite_state, event_id FROM remote_invites WHERE room_id = $1 AND user_id = $2")
            .bind(room_id)
            .bind(user_id)
            .fetch_optional(self.pool())
            .await
    }

    /// The version of a room this server is not in, as its last invite or knock named it.
    pub async fn out_of_band_room_version(&self, room_id: &str, user_id: &str) -> sqlx::Result<Option<String>> {
        sqlx::query_scalar("SELECT room_version FROM remote_invites WHERE room_id = $1 AND user_id = $2")
            .bind(room_id)
            .bind(user_id)
            .fetch_optional(self.pool())
            .await
    }
}
