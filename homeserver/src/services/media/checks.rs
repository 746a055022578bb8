//! What may be uploaded and how it is served: the real type sniffed from the bytes against the
//! declared type and file name, the allow-list, per-kind size limits, and which types may be
//! shown inline (spec: Client-Server API § Content repository, "Serving inline content").

use crate::{config::MediaConfig, services::sync::filter::matches_pattern};

/// The kinds of content with a size limit each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Image,
    Video,
    Audio,
    File,
}

impl Kind {
    pub fn of(content_type: &str) -> Self {
        match content_type.split('/').next().unwrap_or_default() {
            "image" => Kind::Image,
            "video" => Kind::Video,
            "audio" => Kind::Audio,
            _ => Kind::File,
        }
    }

    pub fn limit(self, config: &MediaConfig) -> u64 {
        match self {
            Kind::Image => config.max_image_bytes,
            Kind::Video => config.max_video_bytes,
            Kind::Audio => config.max_audio_bytes,
            Kind::File => config.max_file_bytes,
        }
    }
}

/// The MIME type without parameters, lower-cased (`Text/Plain; charset=utf-8` → `text/plain`).
pub fn essence(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

pub fn allowed(config: &MediaConfig, content_type: &str) -> bool {
    let essence = essence(content_type);
    config.allowed_types.iter().any(|pattern| matches_pattern(&pattern.to_ascii_lowercase(), &essence))
}

/// The type a file name's extension stands for, for the extensions whose content can be
/// recognised from its bytes.
fn type_of_extension(file_name: &str) -> Option<&'static str> {
    let extension = file_name.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match extension.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "pdf" => "application/pdf",
        "mp4" | "m4v" => "video/mp4",
        "webm" => "video/webm",
        "mov" => "video/quicktime",
        "mp3" => "audio/mpeg",
        "ogg" | "oga" => "audio/ogg",
        "m4a" => "audio/mp4",
        "wav" => "audio/x-wav",
        "flac" => "audio/x-flac",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        _ => return None,
    })
}

/// Whether two types name the same kind of content: equal, or the same container in another
/// guise (`audio/mp4` and `video/mp4`, `audio/ogg` and `video/ogg`, `audio/wav` spellings, office
/// documents that are zip files underneath).
fn same_content(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let subtype = |t: &str| t.split_once('/').map(|(_, s)| s.trim_start_matches("x-").to_owned()).unwrap_or_default();
    let media = |t: &str| t.starts_with("audio/") || t.starts_with("video/");
    let zip_based = |t: &str| {
        t == "application/zip"
            || t == "application/epub+zip"
            || t.starts_with("application/vnd.openxmlformats-officedocument.")
            || t.starts_with("application/vnd.oasis.opendocument.")
    };
    (media(a)
        && media(b)
        && (subtype(a) == subtype(b)
            || matches!(
                (subtype(a).as_str(), subtype(b).as_str()),
                ("mp4", "m4a")
                    | ("m4a", "mp4")
                    | ("wav", "wave")
                    | ("wave", "wav")
                    | ("quicktime", "mp4")
                    | ("mp4", "quicktime")
            )))
        || (zip_based(a) && zip_based(b))
        || (a == "image/jpg" && b == "image/jpeg")
}

/// Why an upload is refused, if it is: the declared type is not allowed, or the bytes (as
/// sniffed) are not what the declared type or the file name say.
pub fn check_upload(
    config: &MediaConfig,
    declared: &str,
    file_name: Option<&str>,
    sniffed: Option<&str>,
) -> Result<(), String> {
    let declared = essence(declared);
    if !allowed(config, &declared) {
        return Err(format!("Files of type {declared} may not be uploaded"));
    }
    let claims_media = matches!(Kind::of(&declared), Kind::Image | Kind::Video | Kind::Audio);
    match sniffed {
        Some(actual) => {
            if declared != "application/octet-stream" && !same_content(&declared, actual) {
                return Err(format!("The content is {actual}, not {declared}"));
            }
            // Opaque bytes declared as such may happen to look like something else.
            let opaque = declared == "application/octet-stream";
            if !(allowed(config, actual) || opaque) {
                return Err(format!("Files of type {actual} may not be uploaded"));
            }
        }
        // Pictures, video and sound always have a recognisable header; text pretending to be an
        // image (an HTML page named cat.png) has none.
        None if claims_media => return Err(format!("The content is not {declared}")),
        None => {}
    }
    if let Some(name) = file_name
        && let Some(named) = type_of_extension(name)
        && let Some(actual) = sniffed
        && !same_content(named, actual)
    {
        return Err(format!("The file is named {name} but its content is {actual}"));
    }
    Ok(())
}

/// The type whose size limit applies: what the bytes are, else what was declared.
pub fn effective_type<'a>(declared: &'a str, sniffed: Option<&'a str>) -> &'a str {
    sniffed.unwrap_or(declared)
}

/// Types that may be served with `Content-Disposition: inline` (the spec's list).
const INLINE_TYPES: &[&str] = &[
    "text/css",
    "text/plain",
    "text/csv",
    "application/json",
    "application/ld+json",
    "image/jpeg",
    "image/gif",
    "image/png",
    "image/apng",
    "image/webp",
    "image/avif",
    "video/mp4",
    "video/webm",
    "video/ogg",
    "video/quicktime",
    "audio/mp4",
    "audio/webm",
    "audio/aac",
    "audio/mpeg",
    "audio/ogg",
    "audio/wave",
    "audio/wav",
    "audio/x-wav",
    "audio/x-pn-wav",
    "audio/flac",
    "audio/x-flac",
];

/// `Content-Disposition` for serving: inline only for the safe types, with the file name
/// (RFC 6266: an ASCII fallback and the UTF-8 original).
pub fn content_disposition(content_type: &str, file_name: Option<&str>) -> String {
    let disposition = if INLINE_TYPES.contains(&essence(content_type).as_str()) { "inline" } else { "attachment" };
    let Some(name) = file_name.filter(|n| !n.is_empty()) else { return disposition.to_owned() };
    let ascii: String =
        name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    let mut encoded = String::new();
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("{disposition}; filename=\"{ascii}\"; filename*=utf-8''{encoded}")
}

/// Media ids are `A-Za-z0-9_-` only (spec: § Security considerations: no path tricks).
pub fn valid_media_id(media_id: &str) -> bool {
    !media_id.is_empty()
        && media_id.len() <= 255
        && media_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> MediaConfig {
        MediaConfig::default()
    }

    #[test]
    fn declared_types_must_match_the_bytes() {
        let c = config();
        assert!(check_upload(&c, "image/png", Some("cat.png"), Some("image/png")).is_ok());
        assert!(check_upload(&c, "image/png", Some("cat.png"), None).is_err(), "HTML pretending to be an image");
        assert!(
            check_upload(&c, "application/pdf", Some("report.pdf"), Some("image/png")).is_err(),
            "a PNG named .pdf"
        );
        assert!(check_upload(&c, "application/octet-stream", Some("report.pdf"), Some("image/png")).is_err());
        assert!(check_upload(&c, "image/jpeg", None, Some("image/png")).is_err());
        assert!(check_upload(&c, "text/html", None, None).is_err(), "never allowed");
        assert!(check_upload(&c, "application/x-unknown", None, None).is_err(), "not on the allow-list");
    }

    #[test]
    fn ordinary_uploads_pass() {
        let c = config();
        assert!(check_upload(&c, "application/octet-stream", None, None).is_ok(), "an encrypted attachment");
        assert!(check_upload(&c, "text/plain; charset=utf-8", Some("notes.txt"), None).is_ok());
        assert!(check_upload(&c, "video/mp4", Some("clip.mp4"), Some("video/mp4")).is_ok());
        assert!(check_upload(&c, "audio/mp4", Some("voice.m4a"), Some("video/mp4")).is_ok(), "same container");
        assert!(
            check_upload(
                &c,
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                Some("letter.docx"),
                Some("application/zip")
            )
            .is_ok()
        );
    }

    #[test]
    fn only_safe_types_are_inline() {
        assert_eq!(content_disposition("image/png", None), "inline");
        assert!(content_disposition("image/svg+xml", Some("x.svg")).starts_with("attachment;"));
        assert!(content_disposition("text/html", None).starts_with("attachment"));
        assert_eq!(
            content_disposition("application/pdf", Some("Résumé \"1\".pdf")),
            "attachment; filename=\"R_sum_ _1_.pdf\"; filename*=utf-8''R%C3%A9sum%C3%A9%20%221%22.pdf"
        );
    }

    #[test]
    fn media_ids_cannot_carry_paths() {
        assert!(valid_media_id("abcDEF123_-"));
        assert!(!valid_media_id("../etc/passwd"));
        assert!(!valid_media_id(""));
        assert!(!valid_media_id("a.b"));
    }
}
