//! Event relations: edits, reactions, threads and references.

use super::Db;

/// An event's relation to another, from its `m.relates_to`.
#[derive(Debug, Clone)]
pub struct Relation {
    pub event_id: String,
    pub relates_to: String,
    pub rel_type: String,
    pub sender: String,
    pub stream: i64,
}

type RelationRow = (String, String, String, String, i64);

fn to_relation((event_id, relates_to, rel_type, sender, stream): RelationRow) -> Relation {
    Relation { event_id, relates_to, rel_type, sender, stream }
}

/// Filters for GET /relations.
pub struct RelationQuery<'a> {
    pub parent: &'a str,
    pub rel_type: Option<&'a str>,
    pub event_type: Option<&'a str>,
    /// Stream positions: strictly after `after` and at most `up_to`.
    pub after: i64,
    pub up_to: i64,
    pub newest_first: bool,
    pub limit: i64,
    /// Also events that relate to the parent through others, down to `RECURSION_DEPTH` levels.
    pub recurse: bool,
}

/// How many levels of relations a recursive GET /relations follows (the spec asks for at
/// least 3; more would let one request walk an arbitrarily large graph).
pub const RECURSION_DEPTH: i64 = 3;

impl Db {
    /// Relations of type m.replace, m.thread and m.reference pointing at any of `parents`: what
    /// bundled aggregations need, in one query per batch.
    pub async fn relations_for_bundling(&self, parents: &[String]) -> sqlx::Result<Vec<Relation>> {
        let mut out = Vec::new();
        for chunk in parents.chunks(100) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT event_id, relates_to, rel_type, sender, stream_ordering FROM event_relations
                 WHERE relates_to IN ({}) AND rel_type IN ('m.replace', 'm.thread', 'm.reference') ORDER BY stream_ordering",
                placeholders.join(",")
            );
            let mut query = sqlx::query_as::<_, RelationRow>(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(id);
            }
            out.extend(query.fetch_all(self.pool()).await?.into_iter().map(to_relation));
        }
        Ok(out)
    }

    /// The children of one event for GET /relations, in stream order; with `recurse`, their
    /// children too, to `RECURSION_DEPTH` levels. The type filters apply to the events
    /// returned, not to the links followed.
    pub async fn relations(&self, query: &RelationQuery<'_>) -> sqlx::Result<Vec<Relation>> {
        let order = if query.newest_first { "DESC" } else { "ASC" };
        let max_depth = if query.recurse { RECURSION_DEPTH } else { 1 };
        let sql = format!(
            "WITH RECURSIVE related(event_id, depth) AS (
                 SELECT event_id, 1 FROM event_relations WHERE relates_to = $1
                 UNION
                 SELECT r.event_id, related.depth + 1 FROM event_relations r JOIN related ON r.relates_to = related.event_id
                 WHERE related.depth < $7
             )
             SELECT DISTINCT r.event_id, r.relates_to, r.rel_type, r.sender, r.stream_ordering
             FROM event_relations r JOIN related ON related.event_id = r.event_id
             WHERE ($2 = '' OR r.rel_type = $2) AND ($3 = '' OR r.event_type = $3)
               AND r.stream_ordering > $4 AND r.stream_ordering <= $5
             ORDER BY r.stream_ordering {order} LIMIT $6"
        );
        let rows: Vec<RelationRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(query.parent)
            .bind(query.rel_type.unwrap_or(""))
            .bind(query.event_type.unwrap_or(""))
            .bind(query.after)
            .bind(query.up_to)
            .bind(query.limit)
            .bind(max_depth)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.into_iter().map(to_relation).collect())
    }

    /// Thread roots of a room, most recently active first, with the position of their latest
    /// reply below `before`; `participant` limits to threads that user started or replied in.
    pub async fn threads(
        &self,
        room_id: &str,
        participant: Option<&str>,
        before: i64,
        up_to: i64,
        limit: i64,
    ) -> sqlx::Result<Vec<(String, i64)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT r.relates_to, MAX(r.stream_ordering) AS latest FROM event_relations r
             WHERE r.room_id = $1 AND r.rel_type = 'm.thread' AND r.stream_ordering <= $4
               AND ($2 = '' OR r.sender = $2 OR EXISTS (SELECT 1 FROM events root WHERE root.event_id = r.relates_to AND root.sender = $2))
             GROUP BY r.relates_to HAVING MAX(r.stream_ordering) < $3
             ORDER BY latest DESC LIMIT $5",
        )
        .bind(room_id)
        .bind(participant.unwrap_or(""))
        .bind(before)
        .bind(up_to)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows)
    }
}
