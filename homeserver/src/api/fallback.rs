//! Unknown paths and wrong methods answer M_UNRECOGNIZED (spec: Client-Server API § API
//! Standards: 404 for an unknown endpoint, 405 for a known endpoint with the wrong method).

use crate::error::{ApiError, ErrorKind};

pub async fn unrecognized() -> ApiError {
    ApiError::new(ErrorKind::Unrecognized { method_not_allowed: false }, "Unrecognized request")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(ErrorKind::Unrecognized { method_not_allowed: true }, "Method not allowed for this endpoint")
}
