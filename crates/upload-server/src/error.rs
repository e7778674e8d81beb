//! The API's JSON errors and the extractors whose rejections are them.

use axum::Json;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An API error: HTTP status, a stable code and a message.
#[derive(Debug)]
pub struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl ApiError {
    /// The HTTP status it is answered with (400, 401, 403, 404, 405, 413,
    /// 415, 429, 500, 501, 502 or 503).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable error code of the JSON body's `error` field, e.g.
    /// `unauthorized`, `not_your_upload`, `bad_session`.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The human-readable `message` of the JSON body.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": self.code, "message": self.message});
        (self.status, Json(body)).into_response()
    }
}

impl From<upload_core::Error> for ApiError {
    fn from(e: upload_core::Error) -> Self {
        use upload_core::Error as E;
        let (status, code) = match &e {
            E::ContentTypeNotAllowed { .. } => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "content_type_not_allowed",
            ),
            E::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            E::NoSuchUpload { .. } => (StatusCode::NOT_FOUND, "no_such_upload"),
            E::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            // A create-only completion over an existing object.
            E::AlreadyExists { .. } => (StatusCode::CONFLICT, "already_exists"),
            E::InvalidPart { .. }
            | E::InvalidPartOrder
            | E::EntityTooSmall { .. }
            | E::InvalidPartNumber { .. } => (StatusCode::BAD_REQUEST, "invalid_parts"),
            E::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable"),
            E::AccessDenied { .. } | E::NoSuchBucket { .. } | E::S3 { .. } => {
                (StatusCode::BAD_GATEWAY, "storage_error")
            }
            _ => (StatusCode::BAD_REQUEST, "bad_request"),
        };
        if status.is_server_error() {
            tracing::error!(error = %e, "storage request failed");
        }
        Self {
            status,
            code,
            message: e.to_string(),
        }
    }
}

impl From<upload_presign::Error> for ApiError {
    fn from(e: upload_presign::Error) -> Self {
        match e {
            upload_presign::Error::Policy(p) => p.into(),
            // The credentials provider failed, or gave credentials that
            // would not outlive the URL: nothing was signed; retry later.
            upload_presign::Error::CredentialsUnavailable { .. }
            | upload_presign::Error::CredentialsExpireFirst { .. } => Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "credentials_unavailable",
                message: e.to_string(),
            },
            other => Self {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                code: "presign_failed",
                message: other.to_string(),
            },
        }
    }
}

impl From<upload_core::sign::SignError> for ApiError {
    fn from(e: upload_core::sign::SignError) -> Self {
        use upload_core::sign::SignError as E;
        match e {
            E::Core(c) => c.into(),
            // As for `upload_presign::Error`: nothing was signed; retry later.
            E::CredentialsUnavailable { .. } => Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "credentials_unavailable",
                message: e.to_string(),
            },
            E::Unsupported { .. } => Self {
                status: StatusCode::NOT_IMPLEMENTED,
                code: "not_supported_by_storage",
                message: e.to_string(),
            },
            other => Self {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                code: "presign_failed",
                message: other.to_string(),
            },
        }
    }
}

impl From<upload_multipart::CompletionError> for ApiError {
    fn from(e: upload_multipart::CompletionError) -> Self {
        upload_multipart::Error::Completion(e).into()
    }
}

impl From<upload_multipart::Error> for ApiError {
    fn from(e: upload_multipart::Error) -> Self {
        match e {
            upload_multipart::Error::Store(s) => s.into(),
            upload_multipart::Error::Presign(p) => p.into(),
            upload_multipart::Error::Completion(c) => Self {
                status: StatusCode::BAD_REQUEST,
                code: "invalid_parts",
                message: c.to_string(),
            },
            upload_multipart::Error::ObjectTooLarge { .. } => Self {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                code: "too_large",
                message: e.to_string(),
            },
            upload_multipart::Error::EmptyObject => Self {
                status: StatusCode::BAD_REQUEST,
                code: "empty_upload",
                message: e.to_string(),
            },
            other => Self {
                status: StatusCode::BAD_REQUEST,
                code: "bad_request",
                message: other.to_string(),
            },
        }
    }
}

/// `Json` whose rejections are this API's JSON errors (400 for bad JSON
/// or fields, 413 for a body over 2 MB, 415 without a JSON content type).
pub struct ApiJson<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for ApiJson<T>
where
    Json<T>: axum::extract::FromRequest<S, Rejection = axum::extract::rejection::JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(r) => Err(rejection(r.status(), r.body_text())),
        }
    }
}

/// `Query` whose rejections are this API's JSON errors (400).
pub struct ApiQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    Query<T>:
        axum::extract::FromRequestParts<S, Rejection = axum::extract::rejection::QueryRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(Self(v)),
            Err(r) => Err(rejection(r.status(), r.body_text())),
        }
    }
}

pub(crate) fn rejection(status: StatusCode, message: String) -> ApiError {
    let (status, code) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => (status, "body_too_large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (status, "json_required"),
        _ => (StatusCode::BAD_REQUEST, "bad_request"),
    };
    ApiError {
        status,
        code,
        message,
    }
}
