//! Full-text search. The one place where the two backends need different SQL: SQLite uses an
//! FTS5 table ranked by bm25, PostgreSQL a tsvector column ranked by ts_rank.

use super::{Backend, Db};

/// A search hit: the event and its rank (higher is better).
#[derive(Debug, Clone)]
pub struct SearchHit {
    pub event_id: String,
    pub rank: f64,
}

/// Which event field each indexed text comes from.
pub const SEARCH_KEYS: &[(&str, &str)] =
    &[("m.room.message", "content.body"), ("m.room.name", "content.name"), ("m.room.topic", "content.topic")];

/// Quotes each word for FTS5, so user input can never be read as query syntax.
fn fts5_query(term: &str) -> String {
    term.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(|word| format!("\"{word}\""))
        .collect::<Vec<_>>()
        .join(" ")
}

pub struct SearchQuery<'a> {
    pub term: &'a str,
    pub rooms: &'a [String],
    pub keys: &'a [String],
    pub by_recent: bool,
    pub offset: i64,
    pub limit: i64,
}

impl Db {
    /// Indexes one event's searchable text (called inside the event's transaction).
    pub(crate) async fn index_for_search(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        event_id: &str,
        room_id: &str,
        key: &str,
        stream: i64,
        text: &str,
    ) -> sqlx::Result<()> {
        let sql = match self.backend() {
            Backend::Sqlite => {
                "INSERT INTO event_search (event_id, room_id, search_key, stream_ordering, body) VALUES ($1, $2, $3, $4, $5)"
            }
            Backend::Postgres => {
                "INSERT INTO event_search (event_id, room_id, search_key, stream_ordering, vector)
                 VALUES ($1, $2, $3, $4, to_tsvector('english', $5))"
            }
        };
        sqlx::query(sql).bind(event_id).bind(room_id).bind(key).bind(stream).bind(text).execute(&mut **tx).await?;
        Ok(())
    }

    pub(crate) async fn unindex_for_search(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        event_id: &str,
    ) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM event_search WHERE event_id = $1").bind(event_id).execute(&mut **tx).await?;
        Ok(())
    }

    /// Searches the given rooms; returns one page of hits and the total count.
    pub async fn search(&self, query: &SearchQuery<'_>) -> sqlx::Result<(Vec<SearchHit>, i64)> {
        if query.rooms.is_empty() || query.keys.is_empty() {
            return Ok((Vec::new(), 0));
        }
        let term = match self.backend() {
            Backend::Sqlite => fts5_query(query.term),
            Backend::Postgres => query.term.to_owned(),
        };
        if term.trim().is_empty() {
            return Ok((Vec::new(), 0));
        }
        // $1 term, then the rooms, then the keys.
        let mut next = 2;
        let mut placeholders = |n: usize| {
            let list: Vec<String> = (next..next + n).map(|i| format!("${i}")).collect();
            next += n;
            list.join(",")
        };
        let rooms = placeholders(query.rooms.len());
        let keys = placeholders(query.keys.len());
        let (matches, rank) = match self.backend() {
            Backend::Sqlite => ("event_search MATCH $1", "CAST(-bm25(event_search) AS DOUBLE PRECISION)"),
            Backend::Postgres => (
                "vector @@ websearch_to_tsquery('english', $1)",
                "CAST(ts_rank(vector, websearch_to_tsquery('english', $1)) AS DOUBLE PRECISION)",
            ),
        };
        let filter = format!("{matches} AND room_id IN ({rooms}) AND search_key IN ({keys})");
        let order = if query.by_recent { "stream_ordering DESC" } else { "score DESC, stream_ordering DESC" };
        let sql = format!(
            "SELECT event_id, {rank} AS score FROM event_search WHERE {filter} ORDER BY {order} LIMIT {} OFFSET {}",
            query.limit.max(0),
            query.offset.max(0)
        );
        let count_sql = format!("SELECT COUNT(*) FROM event_search WHERE {filter}");
        let mut hits = sqlx::query_as::<_, (String, f64)>(sqlx::AssertSqlSafe(sql)).bind(term.clone());
        let mut count = sqlx::query_as::<_, (i64,)>(sqlx::AssertSqlSafe(count_sql)).bind(term);
        for value in query.rooms.iter().chain(query.keys.iter()) {
            hits = hits.bind(value.clone());
            count = count.bind(value.clone());
        }
        let hits = hits.fetch_all(self.pool()).await?;
        let (total,) = count.fetch_one(self.pool()).await?;
        Ok((hits.into_iter().map(|(event_id, rank)| SearchHit { event_id, rank }).collect(), total))
    }
}

#[cfg(test)]
mod tests {
    use super::fts5_query;

    #[test]
    fn fts5_queries_quote_every_word() {
        assert_eq!(fts5_query("hello world"), "\"hello\" \"world\"");
        assert_eq!(fts5_query("NEAR(\"x\" OR y) -z*"), "\"NEAR\" \"x\" \"OR\" \"y\" \"z\"");
        assert_eq!(fts5_query("  "), "");
        assert_eq!(fts5_query("café crème"), "\"café\" \"crème\"");
    }
}
