//! The browser dashboard: the static files under `web/` at the repository root, compiled into
//! the binary (no separate web server, nothing fetched at run time, so it works air-gapped) and
//! served with the security headers every HTML and static response carries.
//!
//! The dashboard is a single-page application with History routing: any GET of a path that is
//! not a file and not reserved for the API or the operator endpoints answers with `index.html`,
//! and the page's router draws the view. Reserved paths (`/api/...`, `/test-...`, `/healthz`,
//! `/readyz`, `/metrics`) are never answered here, so the API keeps its JSON 404.
//!
//! This crate never talks to the store or to AWS: it only serves bytes.
//!
//! Layout: [`router`] for a standalone router; [`serves`] and [`response`] for an application
//! that routes its own fallback here (the API's `app()` does).

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use include_dir::{Dir, File, include_dir};
use std::hash::{Hash, Hasher};

static WEB: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../../web");

/// The page loads only its own scripts, styles and images; nothing inline, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'";

/// A router that serves the dashboard for every GET or HEAD it is given.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().fallback(|method: Method, uri: Uri, headers: HeaderMap| async move {
        if method != Method::GET && method != Method::HEAD {
            let mut response = (StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD only").into_response();
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return secure(response);
        }
        respond(uri.path(), &headers)
    })
}

/// Whether the dashboard answers this request: a GET or HEAD of a path the API and the
/// operator endpoints do not own.
pub fn serves(method: &Method, path: &str) -> bool {
    (method == Method::GET || method == Method::HEAD) && !is_reserved(path)
}

/// Paths that belong to the API or operators; an unknown one there must stay a JSON 404.
pub fn is_reserved(path: &str) -> bool {
    path == "/api"
        || path.starts_with("/api/")
        || path.starts_with("/test-")
        || matches!(path, "/healthz" | "/readyz" | "/metrics")
}

/// The answer to a GET of `path`: the file, or `index.html` for an application route, or a
/// 404 for a missing asset (a path whose last segment has an extension).
pub fn response(path: &str) -> Response {
    respond(path, &HeaderMap::new())
}

/// [`response`], answering 304 when the browser already holds this version of the file.
pub fn respond(path: &str, request_headers: &HeaderMap) -> Response {
    let relative = path.trim_start_matches('/');
    let file = match WEB.get_file(relative) {
        Some(file) if !relative.is_empty() && !relative.contains("..") => file,
        _ if looks_like_asset(relative) => {
            return secure((StatusCode::NOT_FOUND, "no such file").into_response());
        }
        _ => index(),
    };
    serve_file(file, request_headers)
}

fn index() -> &'static File<'static> {
    WEB.get_file("index.html")
        .expect("web/index.html is embedded")
}

fn looks_like_asset(relative: &str) -> bool {
    relative
        .rsplit('/')
        .next()
        .is_some_and(|last| last.contains('.'))
}

fn serve_file(file: &'static File<'static>, request_headers: &HeaderMap) -> Response {
    let etag = etag(file.contents());
    let fresh = request_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = Response::new(Body::from(file.contents()));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(content_type(file.path().to_str().unwrap_or(""))),
        );
        r
    };
    let headers = response.headers_mut();
    // The files are not fingerprinted: the browser revalidates every time (cheap, with the
    // ETag) so a new binary's dashboard is never mixed with an old cached script.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    secure(response)
}

fn etag(contents: &[u8]) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    contents.hash(&mut hasher);
    format!("\"{:016x}-{}\"", hasher.finish(), contents.len())
}

fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

fn content_type(path: &str) -> &'static str {
    let extension = path.rsplit_once('.').map_or("", |(_, ext)| ext);
    match extension.to_ascii_lowercase().as_str() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" | "webmanifest" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(path: &str) -> (StatusCode, HeaderMap, String) {
        call(Method::GET, path, None).await
    }

    async fn call(
        method: Method,
        path: &str,
        if_none_match: Option<&str>,
    ) -> (StatusCode, HeaderMap, String) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(tag) = if_none_match {
            request = request.header(header::IF_NONE_MATCH, tag);
        }
        let response = router::<()>()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = to_bytes(response.into_body(), 10 << 20).await.unwrap();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    fn assert_security_headers(headers: &HeaderMap) {
        assert_eq!(
            headers[header::CONTENT_SECURITY_POLICY],
            CONTENT_SECURITY_POLICY
        );
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
    }

    #[tokio::test]
    async fn root_is_index_html_with_security_headers_and_no_cache() {
        let (status, headers, body) = get("/").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
        assert_security_headers(&headers);
        assert!(body.contains("<!doctype html>"), "{body}");
    }

    #[tokio::test]
    async fn application_routes_fall_back_to_index_html() {
        let (_, _, index) = get("/").await;
        for path in [
            "/connect-aws",
            "/anomalies/0b8f4c39",
            "/instances/i-0abc",
            "/settings",
        ] {
            let (status, headers, body) = get(path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
            assert_security_headers(&headers);
            assert_eq!(body, index, "{path}");
        }
    }

    #[tokio::test]
    async fn static_files_have_their_content_types_and_security_headers() {
        for (path, content_type) in [
            ("/js/app.js", "text/javascript; charset=utf-8"),
            ("/css/app.css", "text/css; charset=utf-8"),
            ("/favicon.svg", "image/svg+xml"),
        ] {
            let (status, headers, body) = get(path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert_eq!(headers[header::CONTENT_TYPE], content_type, "{path}");
            assert_security_headers(&headers);
            assert!(!body.is_empty());
        }
    }

    #[tokio::test]
    async fn a_missing_asset_is_404_not_the_page() {
        let (status, headers, body) = get("/js/nothing-here.js").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_security_headers(&headers);
        assert!(!body.contains("<html"));
        let (status, _, _) = get("/../Cargo.toml").await;
        assert_ne!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn a_known_version_is_304_and_other_methods_are_405() {
        let (_, headers, _) = get("/js/app.js").await;
        let tag = headers[header::ETAG].to_str().unwrap().to_string();
        let (status, headers, body) = call(Method::GET, "/js/app.js", Some(&tag)).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        assert!(body.is_empty());
        assert_security_headers(&headers);
        let (status, headers, _) = call(Method::POST, "/", None).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_security_headers(&headers);
    }

    #[test]
    fn the_api_and_operator_paths_are_never_served() {
        for path in [
            "/api",
            "/api/",
            "/api/nothing",
            "/test-ec2",
            "/test-cpu/i-1",
            "/healthz",
            "/readyz",
            "/metrics",
        ] {
            assert!(!serves(&Method::GET, path), "{path}");
        }
        assert!(serves(&Method::GET, "/"));
        assert!(serves(&Method::HEAD, "/anomalies"));
        assert!(serves(&Method::GET, "/apis-overview"));
        assert!(!serves(&Method::POST, "/"));
    }

    #[test]
    fn no_file_uses_inline_script_or_style_attributes() {
        // The CSP forbids inline script and style: a page that used them would break silently.
        fn walk(dir: &Dir<'static>, out: &mut Vec<&'static File<'static>>) {
            out.extend(dir.files());
            for sub in dir.dirs() {
                walk(sub, out);
            }
        }
        let mut files = Vec::new();
        walk(&WEB, &mut files);
        for file in files
            .iter()
            .filter(|f| f.path().extension().is_some_and(|e| e == "html"))
        {
            let html = file.contents_utf8().unwrap();
            let lower = html.to_ascii_lowercase();
            assert!(
                !lower.contains(" style="),
                "{:?} has a style attribute",
                file.path()
            );
            assert!(
                !lower.contains(" onclick="),
                "{:?} has an inline handler",
                file.path()
            );
            for script in lower.split("<script").skip(1) {
                let tag = script.split('>').next().unwrap_or("");
                assert!(
                    tag.contains("src="),
                    "{:?} has an inline script",
                    file.path()
                );
            }
        }
    }
}
