//! Sync and pagination tokens. A sync token is `s<stream position>`; pagination tokens use the
//! same form, so a `prev_batch` from /sync is a valid `from` for /messages.

use crate::error::{ApiError, ApiResult};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamToken(pub i64);

impl StreamToken {
    pub fn parse(token: &str) -> ApiResult<Self> {
        token
            .strip_prefix('s')
            .and_then(|n| n.parse::<i64>().ok())
            .filter(|n| *n >= 0)
            .map(StreamToken)
            .ok_or_else(|| ApiError::invalid_param(format!("Invalid token {token:?}")))
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
        assert_eq!(StreamToken(7).to_string(), "s7");
        for bad in ["", "s", "42", "s-1", "sx", "t5"] {
            assert!(StreamToken::parse(bad).is_err(), "{bad}");
        }
    }
}
