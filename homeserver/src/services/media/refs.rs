//! Which media an event uses: the `mxc://` URIs in the content fields the spec defines for
//! them (`url` of files, images, videos, audio and stickers, their `info.thumbnail_url`, the
//! encrypted `file` and `info.thumbnail_file`, and `avatar_url` / room avatar `url`). Media
//! stays reachable while any event or profile refers to it.

use serde_json::Value;

/// (server name, media id) of an `mxc://` URI, when it is one (spec: the media id is
/// `A-Za-z0-9_-` only).
pub fn parse_mxc(uri: &str) -> Option<(String, String)> {
    let (server, media_id) = uri.strip_prefix("mxc://")?.split_once('/')?;
    (ruma::ServerName::parse(server).is_ok() && super::checks::valid_media_id(media_id))
        .then(|| (server.to_owned(), media_id.to_owned()))
}

/// The media an event's content refers to, without repeats.
pub fn references(content: &Value) -> Vec<(String, String)> {
    let paths: [&[&str]; 6] = [
        &["url"],
        &["avatar_url"],
        &["info", "thumbnail_url"],
        &["file", "url"],
        &["info", "thumbnail_file", "url"],
        &["m.new_content", "url"],
    ];
    let mut found: Vec<(String, String)> = paths
        .iter()
        .filter_map(|path| path.iter().try_fold(content, |value, key| value.get(*key)))
        .filter_map(Value::as_str)
        .filter_map(parse_mxc)
        .collect();
    found.sort();
    found.dedup();
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn images_files_avatars_and_encrypted_attachments_are_found() {
        let image =
            json!({"msgtype": "m.image", "url": "mxc://hs.org/abc", "info": {"thumbnail_url": "mxc://hs.org/thumb"}});
        assert_eq!(references(&image), vec![("hs.org".into(), "abc".into()), ("hs.org".into(), "thumb".into())]);
        let encrypted = json!({"msgtype": "m.file", "file": {"url": "mxc://hs.org/enc", "key": {}}});
        assert_eq!(references(&encrypted), vec![("hs.org".into(), "enc".into())]);
        let member = json!({"membership": "join", "avatar_url": "mxc://other.org:8448/face"});
        assert_eq!(references(&member), vec![("other.org:8448".into(), "face".into())]);
        assert!(references(&json!({"body": "see mxc://hs.org/abc", "url": "https://example.org/x"})).is_empty());
        assert!(references(&json!({"url": "mxc://hs.org/../etc"})).is_empty());
    }
}
