//! Tokens. A sync token is `s<stream>_<typing>`: the stream position (events, account data,
//! receipts, presence) and the typing serial. Pagination tokens are `s<stream>`; a sync token is
//! accepted wherever a pagination token is (its typing part is ignored), so `prev_batch` and
//! `next_batch` both work as /messages `from`.

use crate::error::{ApiError, ApiResult};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncToken {
    pub stream: i64,
    pub typing: u64,
}

impl SyncToken {
    pub fn parse(token: &str) -> ApiResult<Self> {
        let invalid = || ApiError::invalid_param(format!("Invalid token {token:?}"));
        let body = token.strip_prefix('s').ok_or_else(invalid)?;
        let (stream, typing) = match body.split_once('_') {
            Some((stream, typing)) => (stream, typing.parse::<u64>().map_err(|_| invalid())?),
            None => (body, 0),
        };
        let stream = stream.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(invalid)?;
        Ok(Self { stream, typing })
    }
}

impl std::fmt::Display for SyncToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s{}_{}", self.stream, self.typing)
    }
}

/// A position in the stream, for /messages (`s<stream>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamToken(pub i64);

impl StreamToken {
    /// A pagination token, or a sync token (its stream part). Pagination positions may be
    /// negative: history backfilled from other servers sits below every sync position.
    pub fn parse(token: &str) -> ApiResult<Self> {
        let invalid = || ApiError::invalid_param(format!("Invalid token {token:?}"));
        let body = token.strip_prefix('s').ok_or_else(invalid)?;
        if let Some(negative) = body.strip_prefix('-') {
            let position = negative.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(invalid)?;
            return Ok(StreamToken(-position));
        }
        SyncToken::parse(token).map(|t| StreamToken(t.stream))
    }
}

impl std::fmt::Display for StreamToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        assert_eq!(StreamToken::parse("s42").unwrap(), StreamToken(42));
        assert_eq!(StreamToken::parse("s42_7").unwrap(), StreamToken(42));
        assert_eq!(StreamToken(7).to_string(), "s7");
        assert_eq!(StreamToken::parse(&StreamToken(-12).to_string()).unwrap(), StreamToken(-12));
        for bad in ["s-", "s--1", "s-0", "s-1_2", "s-x"] {
            assert!(StreamToken::parse(bad).is_err(), "{bad}");
        }
        let token = SyncToken { stream: 3, typing: 9 };
        assert_eq!(SyncToken::parse(&token.to_string()).unwrap(), token);
        assert_eq!(SyncToken::parse("s5").unwrap(), SyncToken { stream: 5, typing: 0 });
        for bad in ["", "s", "42", "s-1", "sx", "t5", "s1_x", "s1_-2"] {
            assert!(SyncToken::parse(bad).is_err(), "{bad}");
        }
    }
}
