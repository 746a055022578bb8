//! Rooms, events, state over time, memberships and aliases. Events are written only by
//! `persist_event`, in one transaction with everything that depends on them.

use super::{Backend, Db, now_ms};

/// An event as stored: its signed PDU JSON and where it sits in the stream.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub stream: i64,
    pub event_id: String,
    pub room_id: String,
    pub sender: String,
    pub event_type: String,
    pub state_key: Option<String>,
    pub json: String,
    /// The event id of the redaction applied to this event, if any.
    pub redacted_because: Option<String>,
}

/// One current-state entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StateEntry {
    pub event_type: String,
    pub state_key: String,
    pub event_id: String,
}

/// Everything `persist_event` writes for one new event.
pub struct EventToPersist<'a> {
    pub event_id: &'a str,
    pub room_id: &'a str,
    pub sender: &'a str,
    pub event_type: &'a str,
    pub state_key: Option<&'a str>,
    pub depth: i64,
    pub origin_server_ts: i64,
    pub json: &'a str,
    pub prev_events: &'a [String],
    /// Set for the create event: the room row to insert (version, creator).
    pub new_room: Option<(&'a str, &'a str)>,
    /// For m.room.member events: (target user, membership, display name).
    pub membership: Option<(&'a str, &'a str, Option<&'a str>)>,
    /// Searchable text: (search key such as `content.body`, the text).
    pub search_text: Option<(&'a str, &'a str)>,
    /// From the content's `m.relates_to`: (parent event, rel_type, aggregation key).
    pub relation: Option<(&'a str, &'a str, Option<&'a str>)>,
    /// Push rule results: the one most members share, and the members who differ.
    pub shared_push: Option<&'a super::push::SharedPush>,
    pub push_actions: &'a [super::push::PushActionRow],
    /// For m.room.redaction: the event it redacts (marked in the same transaction).
    pub redacts: Option<&'a str>,
    /// (user, device, txn id) of a client send, for idempotency.
    pub transaction: Option<(&'a str, &'a str, &'a str)>,
    /// The media the content refers to: (origin, media id).
    pub media: &'a [(String, String)],
    /// Remote servers that must receive the event (one outbox row each).
    pub destinations: &'a [String],
    /// An event taken in with a remote room's state (see `PersistKind`).
    pub kind: PersistKind,
}

/// A state entry a rejoin changes: the event now in force, and for a membership event the
/// membership and display name.
pub struct StateReset<'a> {
    pub event_type: &'a str,
    pub state_key: &'a str,
    pub event_id: &'a str,
    pub membership: Option<(&'a str, Option<&'a str>)>,
}

/// How an event enters the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PersistKind {
    /// A timeline event: state applied, forward extremities advanced.
    #[default]
    Timeline,
    /// Part of the state a remote room had when this server joined it: state applied (it is
    /// current state), extremities untouched.
    StateOutlier,
    /// Only in the auth chain of that state: stored, nothing applied.
    AuthOutlier,
    /// History from before this server joined, backfilled from another server: in the
    /// timeline (below every sync position), nothing applied.
    Historical,
    /// A timeline event where branches of the room's history meet: forward extremities
    /// advance, and the state state resolution decided applies (`persist_resolved`) instead of
    /// the event's own.
    TimelineResolved,
}

impl PersistKind {
    /// Whether the event's state and membership apply (to the current state, as of its position).
    fn applies_state(self) -> bool {
        matches!(self, PersistKind::Timeline | PersistKind::StateOutlier)
    }

    fn is_outlier(self) -> bool {
        matches!(self, PersistKind::StateOutlier | PersistKind::AuthOutlier)
    }
}

/// A user's membership of a room.
#[derive(Debug, Clone)]
pub struct MembershipRecord {
    pub room_id: String,
    pub membership: String,
    pub event_id: String,
    pub stream: i64,
}

const EVENT_COLUMNS: &str = "stream_ordering, event_id, room_id, sender, event_type, state_key, json, redacted_because";

type EventRow = (i64, String, String, String, String, Option<String>, String, Option<String>);

fn to_event(
    (stream, event_id, room_id, sender, event_type, state_key, json, redacted_because): EventRow,
) -> StoredEvent {
    StoredEvent { stream, event_id, room_id, sender, event_type, state_key, json, redacted_because }
}

impl Db {
    pub async fn room_version(&self, room_id: &str) -> sqlx::Result<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as("SELECT room_version FROM rooms WHERE room_id = $1")
            .bind(room_id)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|(v,)| v))
    }

    /// The highest stream position of any stored event (0 when there are none).
    /// The highest stream position ever handed out, over every table that records one (and
    /// the floor left by deleted to-device messages), so positions are never reused after a
    /// restart.
    pub async fn max_stream(&self) -> sqlx::Result<i64> {
        let (max,): (Option<i64>,) = sqlx::query_as(
            "SELECT MAX(m) FROM (
               SELECT MAX(stream_ordering) AS m FROM events
               UNION ALL SELECT MAX(stream_ordering) FROM account_data
               UNION ALL SELECT MAX(stream_ordering) FROM receipts
               UNION ALL SELECT MAX(stream_ordering) FROM presence
               UNION ALL SELECT MAX(stream_ordering) FROM device_list_changes
               UNION ALL SELECT MAX(stream_ordering) FROM to_device_messages
               UNION ALL SELECT MAX(position) FROM stream_floor
             ) AS positions",
        )
        .fetch_one(self.pool())
        .await?;
        Ok(max.unwrap_or(0))
    }

    /// The lowest event position (0 when none is negative): events taken in with a remote
    /// room's state get positions below it, so they sort before everything and no sync token
    /// (always positive) ever includes them as new.
    /// Whether a user of `server_name` is joined to the room (that server is in it).
    pub async fn has_joined_member_of(&self, room_id: &str, server_name: &str) -> sqlx::Result<bool> {
        let suffix = format!(":{server_name}");
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT 1 FROM room_memberships WHERE room_id = $1 AND membership = 'join'
               AND substr(user_id, length(user_id) - length($2) + 1) = $2 LIMIT 1",
        )
        .bind(room_id)
        .bind(&suffix)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.is_some())
    }

    /// Whether any of the room's state changed after position `after`.
    pub async fn state_changed_after(&self, room_id: &str, after: i64) -> sqlx::Result<bool> {
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT 1 FROM room_state WHERE room_id = $1 AND from_stream > $2 LIMIT 1")
                .bind(room_id)
                .bind(after)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.is_some())
    }

    /// The room's oldest timeline event (outliers aside).
    pub async fn oldest_timeline_event(&self, room_id: &str) -> sqlx::Result<Option<StoredEvent>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE room_id = $1 AND outlier = 0 ORDER BY stream_ordering ASC LIMIT 1"
        );
        let row: Option<EventRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(room_id).fetch_optional(self.pool()).await?;
        Ok(row.map(to_event))
    }

    /// Which of `event_ids` are held as outliers (state or auth events taken in with a join).
    pub async fn outlier_ids(&self, event_ids: &[String]) -> sqlx::Result<Vec<String>> {
        let mut outliers = Vec::new();
        for chunk in event_ids.chunks(100) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql =
                format!("SELECT event_id FROM events WHERE outlier = 1 AND event_id IN ({})", placeholders.join(","));
            let mut query = sqlx::query_as::<_, (String,)>(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(id);
            }
            outliers.extend(query.fetch_all(self.pool()).await?.into_iter().map(|(id,)| id));
        }
        Ok(outliers)
    }

    /// Backfilled history: new events (`rows`) and outliers that turned out to be part of it
    /// (`promoted`: event id, new position), in one transaction.
    pub async fn store_history(
        &self,
        rows: Vec<(i64, EventToPersist<'_>)>,
        promoted: &[(String, i64)],
    ) -> sqlx::Result<()> {
        let mut tx = self.begin_write().await?;
        for (event_id, stream) in promoted {
            sqlx::query("UPDATE events SET stream_ordering = $1, outlier = 0 WHERE event_id = $2 AND outlier = 1")
                .bind(stream)
                .bind(event_id)
                .execute(&mut *tx)
                .await?;
        }
        for (stream, event) in rows {
            self.write_event(&mut tx, stream, event).await?;
        }
        tx.commit().await
    }

    pub async fn min_stream(&self) -> sqlx::Result<i64> {
        let (min,): (Option<i64>,) =
            sqlx::query_as("SELECT MIN(stream_ordering) FROM events").fetch_one(self.pool()).await?;
        Ok(min.unwrap_or(0).min(0))
    }

    pub async fn event(&self, event_id: &str) -> sqlx::Result<Option<StoredEvent>> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE event_id = $1");
        let row: Option<EventRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(event_id).fetch_optional(self.pool()).await?;
        Ok(row.map(to_event))
    }

    /// Events by id, in no particular order; unknown ids are skipped.
    pub async fn events(&self, event_ids: &[String]) -> sqlx::Result<Vec<StoredEvent>> {
        let mut events = Vec::with_capacity(event_ids.len());
        // One query per batch of ids; placeholders are numbered, so build the list.
        for chunk in event_ids.chunks(100) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE event_id IN ({})", placeholders.join(","));
            let mut query = sqlx::query_as::<_, EventRow>(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(id);
            }
            events.extend(query.fetch_all(self.pool()).await?.into_iter().map(to_event));
        }
        Ok(events)
    }

    /// The room's current state.
    pub async fn current_state(&self, room_id: &str) -> sqlx::Result<Vec<StateEntry>> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT event_type, state_key, event_id FROM room_state WHERE room_id = $1 AND to_stream IS NULL",
        )
        .bind(room_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(event_type, state_key, event_id)| StateEntry { event_type, state_key, event_id })
            .collect())
    }

    /// The current state entries for the given (type, state_key) pairs.
    pub async fn current_state_entries(
        &self,
        room_id: &str,
        keys: &[(String, String)],
    ) -> sqlx::Result<Vec<StateEntry>> {
        self.state_entries(room_id, keys, None).await
    }

    /// The entries for the given (type, state_key) pairs as they were right after the event at
    /// stream position `at`.
    pub async fn state_entries_at(
        &self,
        room_id: &str,
        keys: &[(String, String)],
        at: i64,
    ) -> sqlx::Result<Vec<StateEntry>> {
        self.state_entries(room_id, keys, Some(at)).await
    }

    async fn state_entries(
        &self,
        room_id: &str,
        keys: &[(String, String)],
        at: Option<i64>,
    ) -> sqlx::Result<Vec<StateEntry>> {
        let mut entries = Vec::with_capacity(keys.len());
        // Two placeholders a key; batches keep the statement well under any parameter limit.
        for chunk in keys.chunks(100) {
            let clauses: Vec<String> = (0..chunk.len())
                .map(|i| format!("(event_type = ${} AND state_key = ${})", 3 + 2 * i, 4 + 2 * i))
                .collect();
            let when = if at.is_some() {
                "from_stream <= $2 AND (to_stream IS NULL OR to_stream > $2)"
            } else {
                "to_stream IS NULL AND $2 = $2"
            };
            let sql = format!(
                "SELECT event_type, state_key, event_id FROM room_state WHERE room_id = $1 AND {when} AND ({})",
                clauses.join(" OR ")
            );
            let mut query = sqlx::query_as::<_, (String, String, String)>(sqlx::AssertSqlSafe(sql))
                .bind(room_id)
                .bind(at.unwrap_or(0));
            for (event_type, state_key) in chunk {
                query = query.bind(event_type).bind(state_key);
            }
            entries.extend(
                query.fetch_all(self.pool()).await?.into_iter().map(|(event_type, state_key, event_id)| StateEntry {
                    event_type,
                    state_key,
                    event_id,
                }),
            );
        }
        Ok(entries)
    }

    /// The room's state as it was right after the event at stream position `at`.
    pub async fn state_at(&self, room_id: &str, at: i64) -> sqlx::Result<Vec<StateEntry>> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT event_type, state_key, event_id FROM room_state
             WHERE room_id = $1 AND from_stream <= $2 AND (to_stream IS NULL OR to_stream > $2)",
        )
        .bind(room_id)
        .bind(at)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(event_type, state_key, event_id)| StateEntry { event_type, state_key, event_id })
            .collect())
    }

    /// The room's state right after position `at`, without its member events.
    pub async fn state_at_except_members(&self, room_id: &str, at: i64) -> sqlx::Result<Vec<StateEntry>> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT event_type, state_key, event_id FROM room_state
             WHERE room_id = $1 AND event_type <> 'm.room.member' AND from_stream <= $2 AND (to_stream IS NULL OR to_stream > $2)",
        )
        .bind(room_id)
        .bind(at)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(event_type, state_key, event_id)| StateEntry { event_type, state_key, event_id })
            .collect())
    }

    /// One current state event.
    pub async fn current_state_event(
        &self,
        room_id: &str,
        event_type: &str,
        state_key: &str,
    ) -> sqlx::Result<Option<StoredEvent>> {
        let sql = format!(
            "SELECT {} FROM events e JOIN room_state s ON s.event_id = e.event_id
             WHERE s.room_id = $1 AND s.event_type = $2 AND s.state_key = $3 AND s.to_stream IS NULL",
            EVENT_COLUMNS.split(", ").map(|c| format!("e.{c}")).collect::<Vec<_>>().join(", ")
        );
        let row: Option<EventRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(room_id)
            .bind(event_type)
            .bind(state_key)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(to_event))
    }

    /// The room's forward extremities and the greatest depth among them.
    pub async fn forward_extremities(&self, room_id: &str) -> sqlx::Result<(Vec<String>, i64)> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT f.event_id, e.depth FROM forward_extremities f JOIN events e ON e.event_id = f.event_id WHERE f.room_id = $1",
        )
        .bind(room_id)
        .fetch_all(self.pool())
        .await?;
        let depth = rows.iter().map(|(_, d)| *d).max().unwrap_or(0);
        Ok((rows.into_iter().map(|(id, _)| id).collect(), depth))
    }

    /// The event a client's transaction created: (user, device, txn id) sending `event_type`
    /// into `room_id` (for a redaction, of `redacts`).
    pub async fn transaction_event(
        &self,
        (user_id, device_id, txn_id): (&str, &str, &str),
        (room_id, event_type, redacts): (&str, &str, Option<&str>),
    ) -> sqlx::Result<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT event_id FROM event_transactions
             WHERE user_id = $1 AND device_id = $2 AND scope = $3 AND txn_id = $4",
        )
        .bind(user_id)
        .bind(device_id)
        .bind(transaction_scope(room_id, event_type, redacts))
        .bind(txn_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|(id,)| id))
    }

    /// Writes an event and everything that follows from it in one transaction, at the stream
    /// position `stream` (which the single event writer allocates).
    pub async fn persist_event(&self, stream: i64, event: EventToPersist<'_>) -> sqlx::Result<()> {
        let mut tx = self.begin_write().await?;
        self.write_event(&mut tx, stream, event).await?;
        tx.commit().await
    }

    /// An event where branches meet, with the room's state as state resolution decided it:
    /// each entry that changes applies from the event's position, in the event's transaction.
    /// `branch_state` is the state the event was sent in where it differs from the state just
    /// before its position (see `branch_state`).
    pub async fn persist_resolved(
        &self,
        stream: i64,
        event: EventToPersist<'_>,
        changed_state: &[StateReset<'_>],
        branch_state: &[super::branch_state::BranchEntry],
    ) -> sqlx::Result<()> {
        let mut tx = self.begin_write().await?;
        let (room_id, event_id) = (event.room_id, event.event_id);
        self.write_event(&mut tx, stream, event).await?;
        if !branch_state.is_empty() {
            super::branch_state::write_branch_state(&mut tx, event_id, room_id, branch_state).await?;
        }
        for reset in changed_state {
            set_state(&mut tx, room_id, reset.event_type, reset.state_key, reset.event_id, stream).await?;
            if let Some((membership, displayname)) = reset.membership {
                set_membership(&mut tx, room_id, (reset.state_key, membership, displayname), reset.event_id, stream)
                    .await?;
            }
        }
        tx.commit().await
    }

    /// Rejoining a room this server had left, through another server, in one transaction:
    /// the events new to this server (outliers), the room's state as that server sent it (each
    /// entry that differs from what is held applies from the join's position `stream`), the
    /// stale forward extremities dropped, then the join.
    pub async fn rejoin_room(
        &self,
        outliers: Vec<(i64, EventToPersist<'_>)>,
        changed_state: &[StateReset<'_>],
        stream: i64,
        join: EventToPersist<'_>,
    ) -> sqlx::Result<()> {
        let mut tx = self.begin_write().await?;
        for (position, event) in outliers {
            self.write_event(&mut tx, position, event).await?;
        }
        for reset in changed_state {
            set_state(&mut tx, join.room_id, reset.event_type, reset.state_key, reset.event_id, stream).await?;
            if let Some((membership, displayname)) = reset.membership {
                let member = (reset.state_key, membership, displayname);
                set_membership(&mut tx, join.room_id, member, reset.event_id, stream).await?;
            }
        }
        sqlx::query("DELETE FROM forward_extremities WHERE room_id = $1").bind(join.room_id).execute(&mut *tx).await?;
        self.write_event(&mut tx, stream, join).await?;
        tx.commit().await
    }

    /// Stores several events in one transaction (a remote room's state and the join into it).
    pub async fn persist_events(&self, events: Vec<(i64, EventToPersist<'_>)>) -> sqlx::Result<()> {
        let mut tx = self.begin_write().await?;
        for (stream, event) in events {
            self.write_event(&mut tx, stream, event).await?;
        }
        tx.commit().await
    }

    async fn write_event(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        stream: i64,
        event: EventToPersist<'_>,
    ) -> sqlx::Result<()> {
        if let Some((version, creator)) = event.new_room {
            sqlx::query("INSERT INTO rooms (room_id, room_version, creator, created_ts) VALUES ($1, $2, $3, $4)")
                .bind(event.room_id)
                .bind(version)
                .bind(creator)
                .bind(now_ms())
                .execute(&mut **tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO events (stream_ordering, event_id, room_id, sender, event_type, state_key, depth, origin_server_ts, json, outlier)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(stream)
        .bind(event.event_id)
        .bind(event.room_id)
        .bind(event.sender)
        .bind(event.event_type)
        .bind(event.state_key)
        .bind(event.depth)
        .bind(event.origin_server_ts)
        .bind(event.json)
        .bind(i64::from(event.kind.is_outlier()))
        .execute(&mut **tx)
        .await?;
        if let Some(state_key) = event.state_key.filter(|_| event.kind.applies_state()) {
            set_state(tx, event.room_id, event.event_type, state_key, event.event_id, stream).await?;
        }
        if let Some((user_id, membership, displayname)) = event.membership.filter(|_| event.kind.applies_state()) {
            set_membership(tx, event.room_id, (user_id, membership, displayname), event.event_id, stream).await?;
        }
        if let Some(shared) = event.shared_push {
            sqlx::query(
                "INSERT INTO event_push_summary (event_id, room_id, sender, stream_ordering, actions, highlight) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(event.event_id)
            .bind(event.room_id)
            .bind(event.sender)
            .bind(stream)
            .bind(&shared.actions)
            .bind(i64::from(shared.highlight))
            .execute(&mut **tx)
            .await?;
        }
        // The members who differ, in one statement per hundred (one round trip, not one each).
        for batch in event.push_actions.chunks(100) {
            let rows: Vec<String> = (0..batch.len())
                .map(|i| {
                    let n = 4 + i * 4;
                    format!("(${}, $1, $2, $3, ${}, ${}, ${})", n, n + 1, n + 2, n + 3)
                })
                .collect();
            let sql = format!(
                "INSERT INTO event_push_actions (user_id, room_id, event_id, stream_ordering, actions, notify, highlight) VALUES {}",
                rows.join(", ")
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(event.room_id).bind(event.event_id).bind(stream);
            for push in batch {
                query = query
                    .bind(&push.user_id)
                    .bind(&push.actions)
                    .bind(i64::from(push.notify))
                    .bind(i64::from(push.highlight));
            }
            query.execute(&mut **tx).await?;
        }
        if let Some((key, text)) = event.search_text {
            self.index_for_search(tx, event.event_id, event.room_id, key, stream, text).await?;
        }
        if let Some((parent, rel_type, key)) = event.relation {
            sqlx::query(
                "INSERT INTO event_relations (event_id, room_id, relates_to, rel_type, event_type, sender, aggregation_key, stream_ordering)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(event.event_id)
            .bind(event.room_id)
            .bind(parent)
            .bind(rel_type)
            .bind(event.event_type)
            .bind(event.sender)
            .bind(key)
            .bind(stream)
            .execute(&mut **tx)
            .await?;
        }
        for (origin, media_id) in event.media {
            sqlx::query(
                "INSERT INTO media_references (origin, media_id, holder, room_id) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(origin)
            .bind(media_id)
            .bind(event.event_id)
            .bind(event.room_id)
            .execute(&mut **tx)
            .await?;
        }
        if let Some(redacted) = event.redacts {
            // A redacted event loses its text and its m.relates_to: unsearchable, no relation;
            // and its media, unless something else still uses it, becomes unreachable.
            self.unindex_for_search(tx, redacted).await?;
            super::media::release_references(tx, redacted, now_ms()).await?;
            sqlx::query("DELETE FROM event_relations WHERE event_id = $1 AND room_id = $2")
                .bind(redacted)
                .bind(event.room_id)
                .execute(&mut **tx)
                .await?;
            sqlx::query("UPDATE events SET redacted_because = $1 WHERE event_id = $2 AND room_id = $3 AND redacted_because IS NULL")
                .bind(event.event_id)
                .bind(redacted)
                .bind(event.room_id)
                .execute(&mut **tx)
                .await?;
        }
        if matches!(event.kind, PersistKind::Timeline | PersistKind::TimelineResolved) {
            for prev in event.prev_events {
                sqlx::query("DELETE FROM forward_extremities WHERE room_id = $1 AND event_id = $2")
                    .bind(event.room_id)
                    .bind(prev)
                    .execute(&mut **tx)
                    .await?;
            }
            sqlx::query("INSERT INTO forward_extremities (room_id, event_id) VALUES ($1, $2)")
                .bind(event.room_id)
                .bind(event.event_id)
                .execute(&mut **tx)
                .await?;
        }
        for destination in event.destinations {
            sqlx::query("INSERT INTO federation_outbox (destination, stream_ordering, event_id) VALUES ($1, $2, $3)")
                .bind(destination)
                .bind(stream)
                .bind(event.event_id)
                .execute(&mut **tx)
                .await?;
        }
        if let Some((user_id, device_id, txn_id)) = event.transaction {
            sqlx::query(
                "INSERT INTO event_transactions (user_id, device_id, scope, txn_id, event_id) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(user_id)
            .bind(device_id)
            .bind(transaction_scope(event.room_id, event.event_type, event.redacts))
            .bind(txn_id)
            .bind(event.event_id)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    pub async fn membership(&self, room_id: &str, user_id: &str) -> sqlx::Result<Option<MembershipRecord>> {
        let row: Option<(String, String, String, i64)> = sqlx::query_as(
            "SELECT room_id, membership, event_id, stream_ordering FROM room_memberships WHERE room_id = $1 AND user_id = $2",
        )
        .bind(room_id)
        .bind(user_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|(room_id, membership, event_id, stream)| MembershipRecord {
            room_id,
            membership,
            event_id,
            stream,
        }))
    }

    /// Every room the user has a membership in (not forgotten).
    pub async fn rooms_for_user(&self, user_id: &str) -> sqlx::Result<Vec<MembershipRecord>> {
        let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
            "SELECT room_id, membership, event_id, stream_ordering FROM room_memberships WHERE user_id = $1 AND forgotten = 0",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(room_id, membership, event_id, stream)| MembershipRecord { room_id, membership, event_id, stream })
            .collect())
    }

    /// Users with the given membership in the room.
    pub async fn room_members(&self, room_id: &str, membership: &str) -> sqlx::Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT user_id FROM room_memberships WHERE room_id = $1 AND membership = $2 ORDER BY user_id",
        )
        .bind(room_id)
        .bind(membership)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    pub async fn forget_room(&self, room_id: &str, user_id: &str) -> sqlx::Result<()> {
        sqlx::query("UPDATE room_memberships SET forgotten = 1 WHERE room_id = $1 AND user_id = $2")
            .bind(room_id)
            .bind(user_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// A room's events with stream positions in (`after`, `up_to`], oldest first (`newest_first`
    /// false) or newest first, at most `limit`.
    pub async fn room_events(
        &self,
        room_id: &str,
        after: i64,
        up_to: i64,
        limit: i64,
        newest_first: bool,
    ) -> sqlx::Result<Vec<StoredEvent>> {
        let order = if newest_first { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE room_id = $1 AND stream_ordering > $2 AND stream_ordering <= $3 AND outlier = 0
             ORDER BY stream_ordering {order} LIMIT $4"
        );
        let rows: Vec<EventRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(room_id)
            .bind(after)
            .bind(up_to)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.into_iter().map(to_event).collect())
    }

    /// Which of the user's rooms have events in (`after`, `up_to`]: one query for all rooms.
    pub async fn rooms_with_new_events(&self, user_id: &str, after: i64, up_to: i64) -> sqlx::Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT DISTINCT e.room_id FROM events e JOIN room_memberships m ON m.room_id = e.room_id
             WHERE m.user_id = $1 AND m.forgotten = 0 AND e.stream_ordering > $2 AND e.stream_ordering <= $3",
        )
        .bind(user_id)
        .bind(after)
        .bind(up_to)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// Creates an alias; false when it is taken.
    pub async fn create_alias(&self, alias: &str, room_id: &str, creator: &str) -> sqlx::Result<bool> {
        let result = sqlx::query("INSERT INTO room_aliases (alias, room_id, creator) VALUES ($1, $2, $3)")
            .bind(alias)
            .bind(room_id)
            .bind(creator)
            .execute(self.pool())
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) if Backend::is_unique_violation(&error) => Ok(false),
            Err(error) => Err(error),
        }
    }

    pub async fn alias_room(&self, alias: &str) -> sqlx::Result<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as("SELECT room_id FROM room_aliases WHERE alias = $1")
            .bind(alias)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|(id,)| id))
    }
}

impl Db {
    /// The user's membership of the room as it was at stream position `at`.
    pub async fn membership_at(&self, room_id: &str, user_id: &str, at: i64) -> sqlx::Result<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT e.json FROM room_state s JOIN events e ON e.event_id = s.event_id
             WHERE s.room_id = $1 AND s.event_type = 'm.room.member' AND s.state_key = $2
               AND s.from_stream <= $3 AND (s.to_stream IS NULL OR s.to_stream > $3)",
        )
        .bind(room_id)
        .bind(user_id)
        .bind(at)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.and_then(|(json,)| {
            let value: serde_json::Value = serde_json::from_str(&json).ok()?;
            value["content"]["membership"].as_str().map(str::to_owned)
        }))
    }

    /// The contents a state entry has had, oldest first: (stream position, content). At most the
    /// newest 1,000 changes (older ones only matter for ancient history).
    pub async fn state_changes(
        &self,
        room_id: &str,
        event_type: &str,
        state_key: &str,
    ) -> sqlx::Result<Vec<(i64, serde_json::Value)>> {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT s.from_stream, e.json FROM room_state s JOIN events e ON e.event_id = s.event_id
             WHERE s.room_id = $1 AND s.event_type = $2 AND s.state_key = $3 ORDER BY s.from_stream DESC LIMIT 1000",
        )
        .bind(room_id)
        .bind(event_type)
        .bind(state_key)
        .fetch_all(self.pool())
        .await?;
        let mut changes: Vec<(i64, serde_json::Value)> = rows
            .into_iter()
            .map(|(stream, json)| {
                let mut value: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
                (stream, value["content"].take())
            })
            .collect();
        changes.reverse();
        Ok(changes)
    }

    /// Stores a sync filter and returns its id (per user, counting up from 0).
    pub async fn create_filter(&self, user_id: &str, json: &str) -> sqlx::Result<i64> {
        let mut tx = self.begin_write().await?;
        let (next,): (Option<i64>,) = sqlx::query_as("SELECT MAX(filter_id) FROM filters WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await?;
        let id = next.map_or(0, |n| n + 1);
        sqlx::query("INSERT INTO filters (user_id, filter_id, json) VALUES ($1, $2, $3)")
            .bind(user_id)
            .bind(id)
            .bind(json)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn filter(&self, user_id: &str, filter_id: i64) -> sqlx::Result<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as("SELECT json FROM filters WHERE user_id = $1 AND filter_id = $2")
            .bind(user_id)
            .bind(filter_id)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|(json,)| json))
    }

    /// The viewer device's transaction ids for the given events (for `unsigned.transaction_id`).
    pub async fn transaction_ids(
        &self,
        user_id: &str,
        device_id: &str,
        event_ids: &[String],
    ) -> sqlx::Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for chunk in event_ids.chunks(100) {
            let placeholders: Vec<String> = (3..3 + chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT event_id, txn_id FROM event_transactions WHERE user_id = $1 AND device_id = $2 AND event_id IN ({})",
                placeholders.join(",")
            );
            let mut query =
                sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(sql)).bind(user_id).bind(device_id);
            for id in chunk {
                query = query.bind(id);
            }
            out.extend(query.fetch_all(self.pool()).await?);
        }
        Ok(out)
    }
}

/// What a transaction id is unique within, besides the device: the endpoint it was sent to,
/// as its room and event type, and for a redaction the event redacted (migration 0020).
fn transaction_scope(room_id: &str, event_type: &str, redacts: Option<&str>) -> String {
    match redacts {
        Some(redacts) if event_type == "m.room.redaction" => format!("{room_id} {event_type} {redacts}"),
        _ => format!("{room_id} {event_type}"),
    }
}

/// Makes `event_id` the room's state for (`event_type`, `state_key`) from position `stream` on.
async fn set_state(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    room_id: &str,
    event_type: &str,
    state_key: &str,
    event_id: &str,
    stream: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE room_state SET to_stream = $1 WHERE room_id = $2 AND event_type = $3 AND state_key = $4 AND to_stream IS NULL",
    )
    .bind(stream)
    .bind(room_id)
    .bind(event_type)
    .bind(state_key)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO room_state (room_id, event_type, state_key, event_id, from_stream, to_stream) VALUES ($1, $2, $3, $4, $5, NULL)",
    )
    .bind(room_id)
    .bind(event_type)
    .bind(state_key)
    .bind(event_id)
    .bind(stream)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Records a member's membership (user, membership, display name) as of `event_id` at `stream`.
async fn set_membership(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    room_id: &str,
    (user_id, membership, displayname): (&str, &str, Option<&str>),
    event_id: &str,
    stream: i64,
) -> sqlx::Result<()> {
    // `joined_stream` moves only when the member becomes joined (SET reads the old row).
    sqlx::query(
        "INSERT INTO room_memberships (room_id, user_id, membership, event_id, stream_ordering, forgotten, displayname, joined_stream)
         VALUES ($1, $2, $3, $4, $5, 0, $6, CASE WHEN $3 = 'join' THEN $5 ELSE 0 END)
         ON CONFLICT (room_id, user_id) DO UPDATE SET membership = $3, event_id = $4, stream_ordering = $5, forgotten = 0, displayname = $6,
           joined_stream = CASE WHEN $3 = 'join' AND room_memberships.membership <> 'join' THEN $5 ELSE room_memberships.joined_stream END",
    )
    .bind(room_id)
    .bind(user_id)
    .bind(membership)
    .bind(event_id)
    .bind(stream)
    .bind(displayname)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
