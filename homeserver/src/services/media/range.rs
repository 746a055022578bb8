//! HTTP range requests (RFC 9110 § 14): players seek in videos and voice notes with
//! `Range: bytes=…`. One range is served; several ranges get the whole file, as many servers do.

/// A range the file does not have (answered with 416).
#[derive(Debug, PartialEq, Eq)]
pub struct Unsatisfiable;

/// What to send of a file of `size` bytes: None for all of it, Some((first, last)) inclusive.
pub fn parse(header: Option<&str>, size: u64) -> Result<Option<(u64, u64)>, Unsatisfiable> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else { return Ok(None) };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((start, end)) = spec.trim().split_once('-') else { return Ok(None) };
    let (start, end) = (start.trim(), end.trim());
    let range = match (start.is_empty(), end.is_empty()) {
        // `bytes=-500`: the last 500 bytes.
        (true, false) => {
            let suffix: u64 = end.parse().map_err(|_| Unsatisfiable)?;
            if suffix == 0 || size == 0 {
                return Err(Unsatisfiable);
            }
            (size.saturating_sub(suffix), size - 1)
        }
        // `bytes=100-`: from 100 to the end.
        (false, true) => (start.parse().map_err(|_| Unsatisfiable)?, size.saturating_sub(1)),
        (false, false) => {
            let first: u64 = start.parse().map_err(|_| Unsatisfiable)?;
            let last: u64 = end.parse().map_err(|_| Unsatisfiable)?;
            if last < first {
                return Err(Unsatisfiable);
            }
            (first, last.min(size.saturating_sub(1)))
        }
        (true, true) => return Ok(None),
    };
    if range.0 >= size {
        return Err(Unsatisfiable);
    }
    Ok(Some(range))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_understood() {
        assert_eq!(parse(None, 100), Ok(None));
        assert_eq!(parse(Some("bytes=0-9"), 100), Ok(Some((0, 9))));
        assert_eq!(parse(Some("bytes=90-"), 100), Ok(Some((90, 99))));
        assert_eq!(parse(Some("bytes=-10"), 100), Ok(Some((90, 99))));
        assert_eq!(parse(Some("bytes=50-500"), 100), Ok(Some((50, 99))));
        assert_eq!(parse(Some("bytes=0-1,5-6"), 100), Ok(None), "several ranges: the whole file");
        assert_eq!(parse(Some("bytes=100-"), 100), Err(Unsatisfiable));
        assert_eq!(parse(Some("bytes=9-3"), 100), Err(Unsatisfiable));
        assert_eq!(parse(Some("bytes=x-3"), 100), Err(Unsatisfiable));
        assert_eq!(parse(Some("items=0-3"), 100), Ok(None));
    }
}
