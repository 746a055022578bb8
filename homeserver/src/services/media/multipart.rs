//! The `multipart/mixed` body of the federation media endpoints (spec: Server-Server API
//! § Content repository): a JSON metadata part, then the file with its own Content-Type (and
//! optionally Content-Disposition). Written by hand: two parts of a fixed shape, for which a
//! general multipart crate (form-data oriented, streaming state machines) would be most of the
//! code that runs.

use bytes::Bytes;

/// The boundary Hearth writes; random per response is unnecessary (the part lengths are
/// exact and the file cannot contain the boundary line followed by the closing dashes by chance).
pub const BOUNDARY: &str = "hearth-media-7f3c9a1e0b5d4c2a";

/// The two parts before and after the file's bytes.
pub fn envelope(content_type: &str, content_disposition: Option<&str>) -> (Bytes, Bytes) {
    let mut head = format!(
        "--{BOUNDARY}\r\nContent-Type: application/json\r\n\r\n{{}}\r\n--{BOUNDARY}\r\nContent-Type: {content_type}\r\n"
    );
    if let Some(disposition) = content_disposition {
        head.push_str(&format!("Content-Disposition: {disposition}\r\n"));
    }
    head.push_str("\r\n");
    (Bytes::from(head), Bytes::from(format!("\r\n--{BOUNDARY}--\r\n")))
}

/// The file part of a multipart/mixed answer: (content type, content disposition, bytes).
pub fn file_part(content_type: &str, body: &[u8]) -> Result<(String, Option<String>, Vec<u8>), String> {
    let boundary = content_type
        .split(';')
        .map(str::trim)
        .find_map(|param| param.strip_prefix("boundary="))
        .map(|b| b.trim_matches('"'))
        .ok_or("multipart answer without a boundary")?;
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut rest = body;
    // Everything between delimiter lines is one part (CRLF before the next delimiter excluded).
    while let Some(start) = find(rest, delimiter.as_bytes()) {
        let after = &rest[start + delimiter.len()..];
        if after.starts_with(b"--") {
            break;
        }
        let after = after.strip_prefix(b"\r\n").unwrap_or(after);
        let end = find(after, format!("\r\n{delimiter}").as_bytes()).ok_or("unterminated multipart part")?;
        parts.push(&after[..end]);
        rest = &after[end + 2..];
    }
    let file = parts.get(1).ok_or("the multipart answer has no file part")?;
    let split = find(file, b"\r\n\r\n").ok_or("a multipart part without headers")?;
    let headers = std::str::from_utf8(&file[..split]).map_err(|_| "non-UTF-8 part headers")?;
    let mut part_type = "application/octet-stream".to_owned();
    let mut disposition = None;
    for line in headers.split("\r\n") {
        if let Some((name, value)) = line.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "content-type" => part_type = value.trim().to_owned(),
                "content-disposition" => disposition = Some(value.trim().to_owned()),
                _ => {}
            }
        }
    }
    Ok((part_type, disposition, file[split + 4..].to_vec()))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_reads_back() {
        let (head, tail) = envelope("image/png", Some("inline; filename=\"a.png\""));
        let file = b"\x89PNG\r\n\r\n--not-a-boundary\r\nbytes";
        let body = [head.as_ref(), file, tail.as_ref()].concat();
        let (kind, disposition, bytes) = file_part(&format!("multipart/mixed; boundary={BOUNDARY}"), &body).unwrap();
        assert_eq!(kind, "image/png");
        assert_eq!(disposition.as_deref(), Some("inline; filename=\"a.png\""));
        assert_eq!(bytes, file);
    }

    #[test]
    fn synapse_style_answers_parse_and_garbage_does_not() {
        let body = b"--6067d4698f8d40a0a794ea7d7379d53a\r\nContent-Type: application/json\r\n\r\n{}\r\n--6067d4698f8d40a0a794ea7d7379d53a\r\nContent-Type: text/plain\r\n\r\nhello\r\n--6067d4698f8d40a0a794ea7d7379d53a--\r\n";
        let (kind, _, bytes) = file_part("multipart/mixed; boundary=6067d4698f8d40a0a794ea7d7379d53a", body).unwrap();
        assert_eq!((kind.as_str(), bytes.as_slice()), ("text/plain", b"hello".as_slice()));
        assert!(file_part("multipart/mixed", body).is_err());
        assert!(file_part("multipart/mixed; boundary=x", b"nothing here").is_err());
    }
}
