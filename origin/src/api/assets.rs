//! The customer chat page (`/`) and the embeddable widget (`/widget.js`), compiled into the
//! binary so that a deployment is one file and the page always matches the API it talks to.
//!
//! Scripts and styles are served under content-hashed names (`/assets/app.<hash>.js`) with a
//! one-year immutable lifetime, so browsers and Envoy may keep them forever: a new build changes
//! the hash, and `index.html`, served with `no-cache`, names the new files. The widget's URL is
//! pasted into other sites and cannot carry a hash, so it gets a short lifetime instead.
//!
//! This module does not compress (the edge does) and never reads from disk at run time.

use axum::{
    body::Body,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};

/// One embedded file served under a hashed name.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

static HASHED_ASSETS: [Asset; 3] = [
    Asset {
        name: "app.js",
        content_type: JS,
        bytes: include_bytes!("../../assets/app.js"),
    },
    Asset {
        name: "i18n.js",
        content_type: JS,
        bytes: include_bytes!("../../assets/i18n.js"),
    },
    Asset {
        name: "app.css",
        content_type: CSS,
        bytes: include_bytes!("../../assets/app.css"),
    },
];
static INDEX_HTML: &str = include_str!("../../assets/index.html");
static WIDGET_JS: &[u8] = include_bytes!("../../assets/widget.js");

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Caches may keep the page but must ask again before each use; the ETag makes that a 304.
const REVALIDATE: &str = "no-cache";
/// Long enough to spare the origin on busy host pages, short enough that a fix reaches them soon.
const WIDGET_MAX_AGE: &str = "public, max-age=300";

/// The page renders model and document text; even though it never builds HTML from it, a
/// strict policy means a rendering bug could not run a script. No `frame-ancestors`: the
/// widget embeds this page in an iframe on the bookstore's own site, whatever its host.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'";

/// Routes for the page, its assets and the widget. Stateless: merge it into the app router.
pub fn router() -> Router {
    let mut index = INDEX_HTML.to_owned();
    let mut router = Router::new();
    for asset in &HASHED_ASSETS {
        let hashed = hashed_name(asset.name, asset.bytes);
        // Rewriting the quoted reference only keeps a file name that merely contains another
        // (say `app.js` inside `webapp.js`) from being touched.
        index = index.replace(
            &format!("\"assets/{}\"", asset.name),
            &format!("\"assets/{hashed}\""),
        );
        let file = StaticFile::new(asset.content_type, IMMUTABLE, asset.bytes.to_vec());
        router = router.route(
            &format!("/assets/{hashed}"),
            get(move |h: HeaderMap| async move { file.respond(&h) }),
        );
    }
    let page = StaticFile::new(HTML, REVALIDATE, index.into_bytes()).with_header(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    let widget = StaticFile::new(JS, WIDGET_MAX_AGE, WIDGET_JS.to_vec());
    router
        .route(
            "/",
            get(move |h: HeaderMap| async move { page.respond(&h) }),
        )
        .route(
            "/widget.js",
            get(move |h: HeaderMap| async move { widget.respond(&h) }),
        )
}

/// `app.js` -> `app.<16 hex digits>.js`.
fn hashed_name(name: &str, bytes: &[u8]) -> String {
    let hash = fnv1a64(bytes);
    match name.rsplit_once('.') {
        Some((stem, ext)) => format!("{stem}.{hash:016x}.{ext}"),
        None => format!("{name}.{hash:016x}"),
    }
}

/// A cache-busting fingerprint, not a security boundary: FNV-1a needs no dependency and
/// 64 bits make an accidental collision between two builds of one file negligible.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

// === impl StaticFile ===

/// An in-memory file with its response headers prepared once at startup.
#[derive(Clone)]
struct StaticFile {
    body: axum::body::Bytes,
    etag: HeaderValue,
    headers: HeaderMap,
}

impl StaticFile {
    fn new(content_type: &'static str, cache_control: &'static str, body: Vec<u8>) -> Self {
        let etag = HeaderValue::from_str(&format!("\"{:016x}\"", fnv1a64(&body)))
            .unwrap_or_else(|_| HeaderValue::from_static("\"0\"")); // hex digits are always valid
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(cache_control),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(header::ETAG, etag.clone());
        StaticFile {
            body: body.into(),
            etag,
            headers,
        }
    }

    fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    /// 304 when the client already holds this exact version, else the file.
    fn respond(&self, request: &HeaderMap) -> Response {
        if self.matches(request) {
            let mut response = StatusCode::NOT_MODIFIED.into_response();
            for name in [header::ETAG, header::CACHE_CONTROL] {
                if let Some(value) = self.headers.get(&name) {
                    response.headers_mut().insert(name, value.clone());
                }
            }
            return response;
        }
        let mut response = Response::new(Body::from(self.body.clone()));
        response.headers_mut().extend(self.headers.clone());
        response
    }

    fn matches(&self, request: &HeaderMap) -> bool {
        let Some(tags) = request
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let ours = self.etag.as_bytes();
        tags.split(',')
            .map(str::trim)
            .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag).as_bytes() == ours)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(
        path: &str,
        headers: &[(header::HeaderName, &str)],
    ) -> (StatusCode, HeaderMap, String) {
        let mut request = Request::builder().uri(path);
        for (name, value) in headers {
            request = request.header(name, *value);
        }
        let response = router()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, headers, String::from_utf8(body.to_vec()).unwrap())
    }

    fn header(headers: &HeaderMap, name: header::HeaderName) -> &str {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The hashed asset paths the page references, in order of appearance.
    fn referenced_assets(index: &str) -> Vec<String> {
        index
            .split('"')
            .filter(|part| part.starts_with("assets/"))
            .map(|part| format!("/{part}"))
            .collect()
    }

    #[tokio::test]
    async fn index_is_html_revalidated_and_names_hashed_assets() {
        let (status, headers, body) = get("/", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(header(&headers, header::CONTENT_TYPE), HTML);
        assert_eq!(header(&headers, header::CACHE_CONTROL), "no-cache");
        assert!(header(&headers, header::CONTENT_SECURITY_POLICY).contains("script-src 'self'"));
        let assets = referenced_assets(&body);
        assert_eq!(assets.len(), HASHED_ASSETS.len(), "{assets:?}");
        for asset in &HASHED_ASSETS {
            assert!(
                !body.contains(&format!("\"assets/{}\"", asset.name)),
                "{} left unhashed",
                asset.name
            );
        }
    }

    #[tokio::test]
    async fn hashed_assets_are_immutable_with_their_content_type() {
        let (_, _, index) = get("/", &[]).await;
        for path in referenced_assets(&index) {
            let (status, headers, body) = get(&path, &[]).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            let expected = if path.ends_with(".css") { CSS } else { JS };
            assert_eq!(header(&headers, header::CONTENT_TYPE), expected, "{path}");
            assert_eq!(header(&headers, header::CACHE_CONTROL), IMMUTABLE, "{path}");
            assert_eq!(header(&headers, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
            let name = path.trim_start_matches("/assets/");
            let asset = HASHED_ASSETS
                .iter()
                .find(|a| hashed_name(a.name, a.bytes) == name)
                .unwrap();
            assert_eq!(body.as_bytes(), asset.bytes);
        }
    }

    #[tokio::test]
    async fn widget_has_a_short_lifetime() {
        let (status, headers, body) = get("/widget.js", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(header(&headers, header::CONTENT_TYPE), JS);
        assert_eq!(
            header(&headers, header::CACHE_CONTROL),
            "public, max-age=300"
        );
        assert!(body.contains("libriassist-btn"));
    }

    #[tokio::test]
    async fn unknown_and_unhashed_paths_are_not_found() {
        for path in [
            "/assets/app.js",
            "/assets/app.0000000000000000.js",
            "/assets/",
            "/nope",
            "/index.html",
        ] {
            let (status, _, _) = get(path, &[]).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        }
    }

    #[tokio::test]
    async fn matching_etag_gets_not_modified() {
        let (_, headers, _) = get("/", &[]).await;
        let etag = header(&headers, header::ETAG).to_owned();
        assert!(etag.starts_with('"'));
        let (status, headers, body) =
            get("/", &[(header::IF_NONE_MATCH, &format!("\"x\", W/{etag}"))]).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        assert_eq!(header(&headers, header::CACHE_CONTROL), "no-cache");
        assert!(body.is_empty());
        let (status, _, _) = get("/", &[(header::IF_NONE_MATCH, "\"other\"")]).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[test]
    fn the_hash_follows_the_content() {
        assert_eq!(hashed_name("app.js", b"a"), hashed_name("app.js", b"a"));
        assert_ne!(hashed_name("app.js", b"a"), hashed_name("app.js", b"b"));
        let name = hashed_name("app.css", b"body{}");
        assert!(
            name.starts_with("app.")
                && name.ends_with(".css")
                && name.len() == "app..css".len() + 16
        );
        // Reference value of FNV-1a 64 for "a", so a refactor cannot silently change every URL.
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
