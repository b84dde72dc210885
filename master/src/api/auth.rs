//! HTTP basic authentication of the UI and API (`--web-auth`).

use axum::extract::{Request, State as Extract};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub(super) async fn basic_auth(
    Extract(expected): Extract<String>,
    request: Request,
    next: Next,
) -> Response {
    use hatchery_core::secret::{constant_time_eq, WEB_AUTH_PROXY_HEADER};
    // Both compared whole, whichever is set: the time taken says nothing about either.
    let admitted = {
        let headers = request.headers();
        let given = |name: &str| {
            headers
                .get(name)
                .map(HeaderValue::as_bytes)
                .unwrap_or_default()
        };
        let direct = constant_time_eq(given(header::AUTHORIZATION.as_str()), expected.as_bytes());
        let proxied = constant_time_eq(given(WEB_AUTH_PROXY_HEADER), expected.as_bytes());
        direct | proxied
    };
    if admitted {
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"hatchery\"")],
        "authentication required\n",
    )
        .into_response()
}
