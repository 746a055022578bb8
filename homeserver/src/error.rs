//! The one error type. Every failure a client can see is an `ApiError`; its Matrix errcode and
//! HTTP status are mapped in exactly one place (`status_and_errcode`). Internal causes are
//! logged with their chain and never shown to clients.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value, json};

/// Matrix error kinds (spec: Client-Server API § Standard error response).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    Forbidden,
    UnknownToken {
        soft_logout: bool,
    },
    MissingToken,
    BadJson,
    NotJson,
    NotFound,
    LimitExceeded {
        retry_after_ms: u64,
    },
    Unrecognized {
        method_not_allowed: bool,
    },
    Unknown,
    UserInUse,
    InvalidUsername,
    WeakPassword,
    InvalidParam,
    MissingParam,
    TooLarge,
    UserDeactivated,
    ThreepidInUse,
    GuestAccessForbidden,
    UnsupportedRoomVersion,
    RoomInUse,
    /// An alias that already exists: 409 (spec: PUT /directory/room).
    AliasInUse,
    /// Async media upload: the id already has its bytes (409).
    CannotOverwriteMedia,
    /// Async media upload: the bytes have not arrived (504).
    NotYetUploaded,
    /// A range the file does not have (416).
    RangeNotSatisfiable,
    /// Something this server fetched on the client's behalf failed (502), e.g. a URL preview.
    BadGateway,
    /// A key or signature that does not verify (400).
    InvalidSignature,
    /// Key backup: the version written to is not the current one (403).
    WrongRoomKeysVersion {
        current_version: Option<String>,
    },
    /// User-interactive auth needs (more) stages: 401 with the flows in the body.
    UserInteractiveAuth {
        body: Map<String, Value>,
        errcode: Option<&'static str>,
    },
    /// A server-to-server request without a valid signature (401).
    Unauthorized,
    /// make_join for a room whose version the joining server does not support (400).
    IncompatibleRoomVersion {
        room_version: String,
    },
    Internal,
}

/// An error answered to a client as `{"errcode", "error"}` with the spec's status.
#[derive(Debug)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, message)
    }
    pub fn bad_json(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadJson, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    pub fn invalid_param(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidParam, message)
    }
    pub fn missing_param(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::MissingParam, message)
    }
    pub fn unknown(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unknown, message)
    }

    /// An unexpected internal failure: the cause is logged here, the client sees only M_UNKNOWN.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(ErrorKind::Internal, "Internal server error")
    }

    fn status_and_errcode(&self) -> (StatusCode, &'static str) {
        use ErrorKind::*;
        match &self.kind {
            Forbidden => (StatusCode::FORBIDDEN, "M_FORBIDDEN"),
            UnknownToken { .. } => (StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN"),
            MissingToken => (StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN"),
            BadJson => (StatusCode::BAD_REQUEST, "M_BAD_JSON"),
            NotJson => (StatusCode::BAD_REQUEST, "M_NOT_JSON"),
            NotFound => (StatusCode::NOT_FOUND, "M_NOT_FOUND"),
            LimitExceeded { .. } => (StatusCode::TOO_MANY_REQUESTS, "M_LIMIT_EXCEEDED"),
            Unrecognized { method_not_allowed: false } => (StatusCode::NOT_FOUND, "M_UNRECOGNIZED"),
            Unrecognized { method_not_allowed: true } => (StatusCode::METHOD_NOT_ALLOWED, "M_UNRECOGNIZED"),
            Unknown => (StatusCode::BAD_REQUEST, "M_UNKNOWN"),
            UserInUse => (StatusCode::BAD_REQUEST, "M_USER_IN_USE"),
            InvalidUsername => (StatusCode::BAD_REQUEST, "M_INVALID_USERNAME"),
            WeakPassword => (StatusCode::BAD_REQUEST, "M_WEAK_PASSWORD"),
            InvalidParam => (StatusCode::BAD_REQUEST, "M_INVALID_PARAM"),
            MissingParam => (StatusCode::BAD_REQUEST, "M_MISSING_PARAM"),
            TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "M_TOO_LARGE"),
            UserDeactivated => (StatusCode::FORBIDDEN, "M_USER_DEACTIVATED"),
            ThreepidInUse => (StatusCode::BAD_REQUEST, "M_THREEPID_IN_USE"),
            GuestAccessForbidden => (StatusCode::FORBIDDEN, "M_GUEST_ACCESS_FORBIDDEN"),
            UnsupportedRoomVersion => (StatusCode::BAD_REQUEST, "M_UNSUPPORTED_ROOM_VERSION"),
            RoomInUse => (StatusCode::BAD_REQUEST, "M_ROOM_IN_USE"),
            AliasInUse => (StatusCode::CONFLICT, "M_UNKNOWN"),
            CannotOverwriteMedia => (StatusCode::CONFLICT, "M_CANNOT_OVERWRITE_MEDIA"),
            NotYetUploaded => (StatusCode::GATEWAY_TIMEOUT, "M_NOT_YET_UPLOADED"),
            RangeNotSatisfiable => (StatusCode::RANGE_NOT_SATISFIABLE, "M_UNKNOWN"),
            BadGateway => (StatusCode::BAD_GATEWAY, "M_UNKNOWN"),
            InvalidSignature => (StatusCode::BAD_REQUEST, "M_INVALID_SIGNATURE"),
            WrongRoomKeysVersion { .. } => (StatusCode::FORBIDDEN, "M_WRONG_ROOM_KEYS_VERSION"),
            UserInteractiveAuth { errcode, .. } => (StatusCode::UNAUTHORIZED, errcode.unwrap_or("")),
            Unauthorized => (StatusCode::UNAUTHORIZED, "M_UNAUTHORIZED"),
            IncompatibleRoomVersion { .. } => (StatusCode::BAD_REQUEST, "M_INCOMPATIBLE_ROOM_VERSION"),
            Internal => (StatusCode::INTERNAL_SERVER_ERROR, "M_UNKNOWN"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, errcode) = self.status_and_errcode();
        let mut retry_after = None;
        let body = match self.kind {
            ErrorKind::UserInteractiveAuth { mut body, errcode } => {
                // A UIA 401 is the flows object; a failed stage adds errcode and error to it.
                if let Some(errcode) = errcode {
                    body.insert("errcode".into(), errcode.into());
                    body.insert("error".into(), self.message.into());
                }
                Value::Object(body)
            }
            ErrorKind::UnknownToken { soft_logout } => {
                json!({"errcode": errcode, "error": self.message, "soft_logout": soft_logout})
            }
            ErrorKind::LimitExceeded { retry_after_ms } => {
                retry_after = Some(retry_after_ms.div_ceil(1000).max(1));
                json!({"errcode": errcode, "error": self.message, "retry_after_ms": retry_after_ms})
            }
            ErrorKind::WrongRoomKeysVersion { current_version } => {
                json!({"errcode": errcode, "error": self.message, "current_version": current_version})
            }
            ErrorKind::IncompatibleRoomVersion { room_version } => {
                json!({"errcode": errcode, "error": self.message, "room_version": room_version})
            }
            _ => json!({"errcode": errcode, "error": self.message}),
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(seconds) = retry_after
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        Self::internal(format_args!("database: {error}"))
    }
}
