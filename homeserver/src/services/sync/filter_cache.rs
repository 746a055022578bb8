//! Parsed sync filters, shared by every /sync that sends the same filter text.
//!
//! A client sends its filter with each /sync (inline, or as the id of a stored one), and every
//! client of one app sends the same text. Each waiting long-poll kept its own parsed copy (about
//! 600 bytes of lists and strings); a thousand waiting clients now share one, and a /sync skips
//! the JSON parse when the text was seen before.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Weak},
};

use serde_json::Value;

use super::filter::SyncFilter;

/// Filter text → the parsed filter, while some /sync still holds it. An entry lives no longer
/// than the requests using it, so the map holds at most one entry per distinct filter in use.
#[derive(Default)]
pub struct FilterCache {
    parsed: Mutex<HashMap<Box<str>, Weak<SyncFilter>>>,
}

impl FilterCache {
    /// The parsed filter for `text`. `parse` reads the text as JSON; it runs only when no /sync
    /// holds this filter now, and a text it refuses is not kept.
    pub fn get_or_parse<E>(
        &self,
        text: &str,
        parse: impl FnOnce(&str) -> Result<Value, E>,
    ) -> Result<Arc<SyncFilter>, E> {
        let mut parsed = self.parsed.lock().expect("filter cache lock");
        if let Some(filter) = parsed.get(text).and_then(Weak::upgrade) {
            return Ok(filter);
        }
        let filter = Arc::new(SyncFilter::from_json(&parse(text)?));
        // Drop the entries of filters no /sync holds any more before the map would grow:
        // amortised like the growth it replaces, and it keeps the map at the filters in use.
        if parsed.len() == parsed.capacity() {
            parsed.retain(|_, filter| filter.strong_count() > 0);
        }
        parsed.insert(text.into(), Arc::downgrade(&filter));
        Ok(filter)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_same_text_shares_one_parse_while_it_is_held() {
        let cache = FilterCache::default();
        let text = r#"{"room":{"timeline":{"limit":5,"not_types":["m.typing"]}}}"#;
        let parse = |text: &str| serde_json::from_str::<Value>(text);
        let first = cache.get_or_parse(text, parse).unwrap();
        assert_eq!(first.timeline.limit, Some(5));
        let second = cache
            .get_or_parse(text, |_| -> serde_json::Result<Value> { panic!("a held filter is not parsed again") })
            .unwrap();
        assert!(Arc::ptr_eq(&first, &second));

        let other = cache.get_or_parse("{}", |_| serde_json::Result::Ok(json!({}))).unwrap();
        assert_eq!(other.timeline.limit, None, "another text gets its own filter");

        drop((first, second));
        assert!(cache.get_or_parse("{not json", parse).is_err());
        let again = cache.get_or_parse(text, parse).unwrap();
        assert_eq!(again.timeline.limit, Some(5), "a filter nobody holds is parsed afresh");
    }

    #[test]
    fn filters_nobody_holds_leave_the_map() {
        let cache = FilterCache::default();
        for n in 0..1000 {
            let text = format!(r#"{{"room":{{"timeline":{{"limit":{n}}}}}}}"#);
            let _ = cache.get_or_parse(&text, |text: &str| serde_json::from_str::<Value>(text)).unwrap();
        }
        assert!(cache.parsed.lock().unwrap().len() < 100, "dead entries are dropped as the map fills");
    }
}
