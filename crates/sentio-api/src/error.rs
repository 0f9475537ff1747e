//! One mapping from every error to an HTTP status and a JSON body.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sentio_pipeline::PipelineError;
use sentio_store::StoreError;
use serde_json::json;

/// An error as the API reports it: `{"error": <short>, "detail": <sentence>}`.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Short machine-friendly name.
    pub error: &'static str,
    /// A sentence for people.
    pub detail: String,
    /// Seconds to wait before asking again (`Retry-After`).
    pub retry_after_s: Option<u64>,
    /// Where in the request the problem is (an invalid rule: `field`, `line`, `column`), added
    /// to the body beside `error` and `detail`.
    pub at: Option<serde_json::Map<String, serde_json::Value>>,
}

impl ApiError {
    /// Any error.
    pub fn new(status: StatusCode, error: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            error,
            detail: detail.into(),
            retry_after_s: None,
            at: None,
        }
    }

    /// 403: authenticated, but not allowed this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 403 for a cookie-authenticated change that failed the CSRF check.
    pub fn csrf(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "csrf", detail)
    }

    /// 429 with `Retry-After`: too many wrong tokens from this address.
    pub fn too_many_attempts(wait_s: u64) -> Self {
        Self {
            retry_after_s: Some(wait_s),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                format!("too many wrong tokens from this address; retry in {wait_s} s"),
            )
        }
    }

    /// 400.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", detail)
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    /// 401 for the admin API.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": self.error, "detail": self.detail});
        if let (Some(at), Some(body)) = (self.at, body.as_object_mut()) {
            body.extend(at);
        }
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(wait_s) = self.retry_after_s {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, wait_s.into());
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer, Basic realm=\"sentio\""),
            );
        }
        resp
    }
}

/// 422 for a rule refused at creation: which field, and where in its expression.
impl From<sentio_pipeline::rules::RuleError> for ApiError {
    fn from(e: sentio_pipeline::rules::RuleError) -> Self {
        let mut at = serde_json::Map::new();
        at.insert("field".into(), e.field.into());
        if let Some((line, column)) = e.position {
            at.insert("line".into(), line.into());
            at.insert("column".into(), column.into());
        }
        Self {
            at: Some(at),
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_rule",
                e.to_string(),
            )
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::DuplicateDevice(_) => {
                Self::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            StoreError::DuplicateToken(_)
            | StoreError::DuplicateUser(_)
            | StoreError::DuplicateEdge(_) => {
                Self::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            StoreError::UnknownDevice(_)
            | StoreError::UnknownToken(_)
            | StoreError::UnknownUser(_)
            | StoreError::UnknownEdge(_) => Self::not_found(e.to_string()),
            StoreError::InvalidQuery(_) => Self::bad_request(e.to_string()),
            _ if e.is_storage_full() => Self::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "insufficient_storage",
                e.to_string(),
            ),
            _ => {
                tracing::error!(error = %e, "store error");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_unavailable",
                    e.to_string(),
                )
            }
        }
    }
}

impl From<PipelineError> for ApiError {
    fn from(e: PipelineError) -> Self {
        match e {
            PipelineError::Rejected(reason) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "rejected",
                format!("nothing accepted: {reason}"),
            ),
            PipelineError::ShuttingDown | PipelineError::StageThread(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the node is shutting down; retry on another node or later",
            ),
            PipelineError::Store(e) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                format!("not stored, retry later: {e}"),
            ),
            PipelineError::StorageFull(e) => Self::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "insufficient_storage",
                format!("not stored: the store's disk is full; retry once space returns ({e})"),
            ),
            PipelineError::NotFound(d) => Self::new(StatusCode::NOT_FOUND, "not_found", d),
            PipelineError::Conflict(d) => Self::new(StatusCode::CONFLICT, "conflict", d),
            PipelineError::Invalid(d) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "not_applicable", d)
            }
            PipelineError::TooMany(d) => Self::new(StatusCode::TOO_MANY_REQUESTS, "too_many", d),
            PipelineError::VersionMismatch(current) => {
                let mut at = serde_json::Map::new();
                at.insert("version".into(), current.into());
                Self {
                    at: Some(at),
                    ..Self::new(
                        StatusCode::PRECONDITION_FAILED,
                        "version_mismatch",
                        format!(
                            "the twin changed since the version in If-Match; it is now at version {current}: read it again and retry"
                        ),
                    )
                }
            }
            PipelineError::TooLarge(d) => Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", d),
        }
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        let error = match r.status() {
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::UNPROCESSABLE_ENTITY => "invalid_body",
            _ => "bad_request",
        };
        Self::new(r.status(), error, r.body_text())
    }
}

impl From<axum::extract::rejection::BytesRejection> for ApiError {
    fn from(r: axum::extract::rejection::BytesRejection) -> Self {
        let status = r.status();
        let error = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "payload_too_large"
        } else {
            "bad_request"
        };
        Self::new(
            status,
            error,
            format!("{} (limit {} bytes)", r.body_text(), crate::MAX_BODY),
        )
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(r: axum::extract::rejection::QueryRejection) -> Self {
        Self::bad_request(format!(
            "invalid query parameter ({}); see README.md for each endpoint's parameters",
            r.body_text()
                .trim_start_matches("Failed to deserialize query string: ")
        ))
    }
}
