//! OpenGraph metadata from an HTML page: the `og:*` `<meta>` properties a preview shows, with
//! the page's `<title>` and `<meta name="description">` standing in when a page has no `og:title`
//! or `og:description` (what Synapse does too). Tokenized by html5gum, a WHATWG-conformant
//! tokenizer, so tag soup parses the way a browser reads it; only the tokenizer states a tree
//! builder would switch to (script, style, title) are set here.

use std::collections::BTreeMap;

use html5gum::{State, Token, Tokenizer};

/// The longest value kept for any one property (a description is a few sentences).
const MAX_VALUE_CHARS: usize = 1000;
/// The most `og:*` properties kept from one page.
const MAX_PROPERTIES: usize = 50;

/// The `og:*` properties of `html`, values trimmed and shortened.
pub fn parse(html: &[u8]) -> BTreeMap<String, String> {
    let mut properties = BTreeMap::new();
    let mut title: Option<String> = None;
    let mut description: Option<String> = None;
    let mut in_title = false;
    let mut title_text = String::new();
    let mut tokenizer = Tokenizer::new(html);
    while let Some(token) = tokenizer.next() {
        let Ok(token) = token;
        match token {
            Token::StartTag(tag) => match tag.name.as_slice() {
                b"meta" => {
                    let attribute = |name: &[u8]| {
                        tag.attributes.get(name).map(|value| String::from_utf8_lossy(&value.value).into_owned())
                    };
                    let Some(content) = attribute(b"content") else { continue };
                    let key = attribute(b"property").or_else(|| attribute(b"name")).unwrap_or_default();
                    let key = key.trim().to_ascii_lowercase();
                    if key.starts_with("og:") && properties.len() < MAX_PROPERTIES {
                        properties.entry(key).or_insert_with(|| shorten(&content));
                    } else if key == "description" && description.is_none() {
                        description = Some(shorten(&content));
                    }
                }
                b"title" if title.is_none() => {
                    in_title = true;
                    tokenizer.set_state(State::RcData);
                }
                b"script" => tokenizer.set_state(State::ScriptData),
                b"style" | b"noscript" | b"xmp" | b"iframe" | b"noembed" | b"noframes" => {
                    tokenizer.set_state(State::RawText)
                }
                b"textarea" => tokenizer.set_state(State::RcData),
                _ => {}
            },
            Token::String(text) if in_title => title_text.push_str(&String::from_utf8_lossy(&text.value)),
            Token::EndTag(tag) if in_title && tag.name.as_slice() == b"title" => {
                in_title = false;
                title = Some(shorten(&title_text));
            }
            _ => {}
        }
    }
    if let Some(title) = title.filter(|title| !title.is_empty()) {
        properties.entry("og:title".to_owned()).or_insert(title);
    }
    if let Some(description) = description.filter(|description| !description.is_empty()) {
        properties.entry("og:description".to_owned()).or_insert(description);
    }
    properties.retain(|_, value| !value.is_empty());
    properties
}

/// Whitespace runs folded to one space, trimmed, and cut at a character boundary.
fn shorten(text: &str) -> String {
    let folded = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match folded.char_indices().nth(MAX_VALUE_CHARS) {
        Some((cut, _)) => format!("{}…", &folded[..cut]),
        None => folded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_opengraph_properties() {
        let page = br#"<!doctype html><html><head>
            <meta property="og:title" content="  Hearth   release notes ">
            <meta property="og:image" content="/img/cover.png">
            <meta name="og:site_name" content="Hearth">
            <meta property="og:title" content="second title is ignored">
            <title>Fallback</title></head><body><p>Body</p></body></html>"#;
        let properties = parse(page);
        assert_eq!(properties["og:title"], "Hearth release notes");
        assert_eq!(properties["og:image"], "/img/cover.png");
        assert_eq!(properties["og:site_name"], "Hearth");
        assert!(!properties.contains_key("og:description"));
    }

    #[test]
    fn falls_back_to_title_and_description() {
        let page = b"<html><head><TITLE>A &amp; B</TITLE>\
            <meta name=Description content='What it is about'></head></html>";
        let properties = parse(page);
        assert_eq!(properties["og:title"], "A & B");
        assert_eq!(properties["og:description"], "What it is about");
    }

    #[test]
    fn ignores_markup_inside_scripts_and_styles() {
        let page = br#"<head><script>var s = '<meta property="og:title" content="from a script">';</script>
            <style>/* <meta property="og:description" content="x"> */</style>
            <title>Real <b>title</b></title></head>"#;
        let properties = parse(page);
        assert_eq!(properties["og:title"], "Real <b>title</b>");
        assert!(!properties.contains_key("og:description"));
    }

    #[test]
    fn survives_garbage_and_shortens_long_values() {
        assert!(parse(b"\xff\xfe<<<meta content=>>>").is_empty());
        let long = format!("<meta property='og:description' content='{}'>", "word ".repeat(1000));
        let properties = parse(long.as_bytes());
        assert_eq!(properties["og:description"].chars().count(), MAX_VALUE_CHARS + 1);
    }
}
