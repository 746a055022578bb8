//! Relations (spec: Client-Server API § Relationships, § Threading): bundled aggregations in
//! `unsigned.m.relations`, GET /relations and GET /threads.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::Rooms;
use crate::{
    error::{ApiError, ApiResult},
    services::sync::token::StreamToken,
    storage::{
        relations::{Relation, RelationQuery},
        rooms::StoredEvent,
    },
};

/// One page of GET /relations or /threads.
pub struct RelationsPage {
    pub chunk: Vec<Value>,
    pub next_batch: Option<String>,
}

impl Rooms {
    /// Formats events for `viewer`, with the bundled aggregations the spec defines: the latest
    /// edit (m.replace, by the original sender only), thread summaries and references.
    pub async fn format_for(&self, viewer: &str, events: &[StoredEvent], omit_room_id: bool) -> ApiResult<Vec<Value>> {
        let mut formatted = self.format_events(events, omit_room_id).await?;
        // Only events something may relate to need a look in storage (see `recent.rs`).
        let parents: Vec<String> = events
            .iter()
            .filter(|e| e.redacted_because.is_none() && self.recent.may_have_relations(&e.room_id, &e.event_id))
            .map(|e| e.event_id.clone())
            .collect();
        if parents.is_empty() {
            return Ok(formatted);
        }
        let relations = self.db.relations_for_bundling(&parents).await?;
        if relations.is_empty() {
            return Ok(formatted);
        }
        let senders: HashMap<&str, &str> = events.iter().map(|e| (e.event_id.as_str(), e.sender.as_str())).collect();
        let mut by_parent: HashMap<&str, Vec<&Relation>> = HashMap::new();
        for relation in &relations {
            by_parent.entry(relation.relates_to.as_str()).or_default().push(relation);
        }
        // The latest edit and latest thread reply of each parent, loaded in one query.
        let mut wanted = Vec::new();
        for (parent, children) in &by_parent {
            let original_sender = senders.get(parent).copied().unwrap_or_default();
            if let Some(edit) = children
                .iter()
                .filter(|r| r.rel_type == "m.replace" && r.sender == original_sender)
                .max_by_key(|r| r.stream)
            {
                wanted.push(edit.event_id.clone());
            }
            if let Some(reply) = children.iter().filter(|r| r.rel_type == "m.thread").max_by_key(|r| r.stream) {
                wanted.push(reply.event_id.clone());
            }
        }
        let loaded = self.db.events(&wanted).await?;
        let loaded_formatted = self.format_events(&loaded, omit_room_id).await?;
        let full: HashMap<&str, &Value> =
            loaded.iter().map(|e| e.event_id.as_str()).zip(loaded_formatted.iter()).collect();

        for value in formatted.iter_mut() {
            let Some(event_id) = value["event_id"].as_str().map(str::to_owned) else { continue };
            let Some(children) = by_parent.get(event_id.as_str()) else { continue };
            let original_sender = senders.get(event_id.as_str()).copied().unwrap_or_default();
            let mut bundle = Map::new();
            if let Some(edit) = children
                .iter()
                .filter(|r| r.rel_type == "m.replace" && r.sender == original_sender)
                .max_by_key(|r| r.stream)
                && let Some(event) = full.get(edit.event_id.as_str())
            {
                bundle.insert("m.replace".into(), (*event).clone());
            }
            let replies: Vec<&&Relation> = children.iter().filter(|r| r.rel_type == "m.thread").collect();
            if let Some(latest) = replies.iter().max_by_key(|r| r.stream)
                && let Some(event) = full.get(latest.event_id.as_str())
            {
                let participated = original_sender == viewer || replies.iter().any(|r| r.sender == viewer);
                bundle.insert(
                    "m.thread".into(),
                    json!({"latest_event": event, "count": replies.len(), "current_user_participated": participated}),
                );
            }
            let references: Vec<Value> = children
                .iter()
                .filter(|r| r.rel_type == "m.reference")
                .map(|r| json!({"event_id": r.event_id}))
                .collect();
            if !references.is_empty() {
                bundle.insert("m.reference".into(), json!({"chunk": references}));
            }
            if !bundle.is_empty() {
                value["unsigned"]["m.relations"] = Value::Object(bundle);
            }
        }
        Ok(formatted)
    }

    /// GET /rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]]
    #[allow(clippy::too_many_arguments)]
    pub async fn relations(
        &self,
        viewer: &str,
        room_id: &str,
        parent: &str,
        rel_type: Option<&str>,
        event_type: Option<&str>,
        from: Option<&str>,
        to: Option<&str>,
        backwards: bool,
        limit: i64,
        recurse: bool,
    ) -> ApiResult<RelationsPage> {
        self.rules(room_id).await?;
        let visibility = self.visibility(viewer, room_id).await?;
        let view = self.history_view(viewer, room_id, visibility).await?;
        let ceiling = visibility.limit(self.notifier().current().stream);
        let parent_event =
            self.db.event(parent).await?.filter(|e| e.room_id == room_id && e.stream <= ceiling && view.can_see(e));
        if parent_event.is_none() {
            return Err(ApiError::not_found("Event not found"));
        }
        let limit = limit.clamp(1, 100);
        let from = from.map(StreamToken::parse).transpose()?.map(|t| t.0);
        let to = to.map(StreamToken::parse).transpose()?.map(|t| t.0);
        let (after, up_to) = if backwards {
            (to.unwrap_or(0), from.unwrap_or(ceiling).min(ceiling))
        } else {
            (from.unwrap_or(0), to.unwrap_or(ceiling).min(ceiling))
        };
        let query =
            RelationQuery { parent, rel_type, event_type, after, up_to, newest_first: backwards, limit, recurse };
        let relations = self.db.relations(&query).await?;
        let next_batch = (relations.len() as i64 == limit).then(|| {
            let last = relations.last().map(|r| r.stream).unwrap_or_default();
            StreamToken(if backwards { last - 1 } else { last }).to_string()
        });
        let ids: Vec<String> = relations.iter().map(|r| r.event_id.clone()).collect();
        let mut events = self.db.events(&ids).await?;
        events.retain(|e| view.can_see(e));
        events.sort_by_key(|e| if backwards { -e.stream } else { e.stream });
        Ok(RelationsPage { chunk: self.format_for(viewer, &events, false).await?, next_batch })
    }

    /// GET /rooms/{roomId}/threads: thread roots, most recently active first.
    pub async fn threads(
        &self,
        viewer: &str,
        room_id: &str,
        participated_only: bool,
        from: Option<&str>,
        limit: i64,
    ) -> ApiResult<RelationsPage> {
        self.rules(room_id).await?;
        let visibility = self.visibility(viewer, room_id).await?;
        let view = self.history_view(viewer, room_id, visibility).await?;
        let ceiling = visibility.limit(i64::MAX);
        let before = from.map(StreamToken::parse).transpose()?.map(|t| t.0).unwrap_or(i64::MAX);
        let limit = limit.clamp(1, 100);
        let roots = self.db.threads(room_id, participated_only.then_some(viewer), before, ceiling, limit).await?;
        let next_batch = (roots.len() as i64 == limit)
            .then(|| StreamToken(roots.last().map(|r| r.1).unwrap_or_default()).to_string());
        let ids: Vec<String> = roots.iter().map(|(root, _)| root.clone()).collect();
        let mut events = self.db.events(&ids).await?;
        events.retain(|e| view.can_see(e));
        let order: HashMap<&str, usize> = ids.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
        events.sort_by_key(|e| order.get(e.event_id.as_str()).copied().unwrap_or(usize::MAX));
        Ok(RelationsPage { chunk: self.format_for(viewer, &events, false).await?, next_batch })
    }
}
