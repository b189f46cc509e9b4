//! The desk's HTTP server (`PROTOCOL.md`, section 3).
//!
//! The URL is the capability: every path starts with `/d/TOKEN/`, the
//! token compared in constant time. Before any handler runs, one guard
//! checks the `Host` header (DNS rebinding), the token, and the `Origin`
//! of every state-changing request and WebSocket upgrade; every answer,
//! refusals included, carries the security headers.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value as Json, json};
use subtle::ConstantTimeEq as _;

use crate::desk::{Desk, DeskError};

/// Largest request body, but for packages.
pub const MAX_BODY: usize = 64 * 1024;
/// Largest package upload.
pub const MAX_PACKAGE: usize = 16 * 1024 * 1024;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const INDEX: &str = include_str!("../ui/index.html");
const SCRIPT: &str = include_str!("../ui/desk.js");
const STYLE: &str = include_str!("../ui/desk.css");

#[derive(Clone)]
struct App {
    desk: Arc<Desk>,
    token: Arc<str>,
    port: u16,
}

/// Builds the router for `desk` reachable with `token` on `port`.
pub fn router(desk: Arc<Desk>, token: &str, port: u16) -> Router {
    let app = App {
        desk,
        token: token.into(),
        port,
    };
    let api = Router::new()
        .route("/d/{t}/", get(index))
        .route("/d/{t}/desk.js", get(script))
        .route("/d/{t}/desk.css", get(style))
        .route("/d/{t}/api/state", get(state))
        .route("/d/{t}/api/icons/{app}", get(icon))
        .route("/d/{t}/api/reviews/{r}/icon", get(review_icon))
        .route("/d/{t}/api/reviews/{r}/install", post(install))
        .route("/d/{t}/api/reviews/{r}/cancel", post(cancel))
        .route("/d/{t}/api/apps/{app}/launch", post(launch))
        .route("/d/{t}/api/apps/{app}/rename", post(rename))
        .route("/d/{t}/api/apps/{app}/uninstall", post(uninstall))
        .route("/d/{t}/api/apps/{app}/revoke-all", post(revoke_all))
        .route("/d/{t}/api/apps/{app}/audit", get(audit))
        .route("/d/{t}/api/windows/{w}/close", post(close))
        .route("/d/{t}/api/windows/{w}/restart", post(restart))
        .route("/d/{t}/api/windows/{w}/event", post(event))
        .route("/d/{t}/api/windows/{w}/drop", post(drop_file))
        .route("/d/{t}/api/windows/{w}/navigate", post(navigate))
        .route("/d/{t}/api/windows/{w}/back", post(back))
        .route("/d/{t}/api/windows/{w}/forward", post(forward))
        .route("/d/{t}/api/windows/{w}/reload", post(reload))
        .route("/d/{t}/api/windows/{w}/renderer", post(renderer))
        .route("/d/{t}/api/images/{w}/{n}", get(image))
        .route("/d/{t}/api/prompts/{p}/answer", post(answer))
        .route("/d/{t}/api/files", get(files))
        .route("/d/{t}/api/grants/{g}/revoke", post(revoke))
        .route("/d/{t}/api/timeline", get(timeline))
        .route("/d/{t}/api/events", get(events))
        .layer(DefaultBodyLimit::max(MAX_BODY));
    let packages = Router::new()
        .route("/d/{t}/api/packages", post(review))
        .layer(DefaultBodyLimit::max(MAX_PACKAGE));
    api.merge(packages)
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

fn secure(mut r: Response) -> Response {
    let h = r.headers_mut();
    for (k, v) in [
        ("content-security-policy", CSP),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    r
}

fn allowed_host(app: &App, value: &str) -> bool {
    value == format!("127.0.0.1:{}", app.port) || value == format!("localhost:{}", app.port)
}

fn allowed_origin(app: &App, value: &str) -> bool {
    value == format!("http://127.0.0.1:{}", app.port)
        || value == format!("http://localhost:{}", app.port)
}

/// The one gate in front of every handler.
async fn guard(State(app): State<App>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if !host.is_some_and(|h| allowed_host(&app, h)) {
        return secure(plain(StatusCode::FORBIDDEN, "forbidden: wrong Host\n"));
    }
    // The token: the second path segment, compared in constant time.
    let path = req.uri().path();
    let mut parts = path.splitn(4, '/');
    let (empty, d, token) = (parts.next(), parts.next(), parts.next());
    let token_ok = empty == Some("")
        && d == Some("d")
        && token.is_some_and(|t| {
            t.len() == app.token.len() && bool::from(t.as_bytes().ct_eq(app.token.as_bytes()))
        });
    if !token_ok {
        return secure(plain(StatusCode::NOT_FOUND, "not found\n"));
    }
    let changes = req.method() != Method::GET && req.method() != Method::HEAD;
    let upgrade = headers.contains_key(header::UPGRADE);
    if changes || upgrade {
        let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        if !origin.is_some_and(|o| allowed_origin(&app, o)) {
            return secure(plain(
                StatusCode::FORBIDDEN,
                "forbidden: this request must come from the desk's own page\n",
            ));
        }
    }
    // A declared length over the cap is refused before any of the body
    // is read (the body limit alone would wait for the bytes to come).
    let cap = if path.ends_with("/api/packages") {
        MAX_PACKAGE
    } else {
        MAX_BODY
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > u64::try_from(cap).unwrap_or(u64::MAX)) {
        return secure(plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the request is too large\n",
        ));
    }
    secure(next.run(req).await)
}

async fn not_found() -> Response {
    plain(StatusCode::NOT_FOUND, "not found\n")
}

fn failed(e: &DeskError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(json!({"error": e.message}))).into_response()
}

fn answer_json(r: Result<Json, DeskError>) -> Response {
    match r {
        Ok(j) => axum::Json(j).into_response(),
        Err(e) => failed(&e),
    }
}

/// Runs blocking desk work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, DeskError> + Send + 'static,
) -> Result<T, DeskError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|_| Err(DeskError::internal("the desk failed (see its log)")))
}

fn body_json(bytes: &Bytes) -> Result<Json, DeskError> {
    serde_json::from_slice(bytes).map_err(|_| DeskError::bad("the request body is not JSON"))
}

fn number(s: &str, what: &str) -> Result<u64, DeskError> {
    s.parse()
        .map_err(|_| DeskError::missing(format!("no such {what}")))
}

async fn index() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX).into_response()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

async fn state(State(app): State<App>) -> Response {
    axum::Json(app.desk.state()).into_response()
}

fn png(bytes: Option<Vec<u8>>) -> Response {
    match bytes {
        Some(b) => ([(header::CONTENT_TYPE, "image/png")], b).into_response(),
        None => plain(StatusCode::NOT_FOUND, "no icon\n"),
    }
}

async fn icon(State(app): State<App>, Path((_t, id)): Path<(String, String)>) -> Response {
    png(app.desk.icon(&id))
}

async fn review_icon(State(app): State<App>, Path((_t, id)): Path<(String, String)>) -> Response {
    png(app.desk.review_icon(&id))
}

async fn review(State(app): State<App>, body: Bytes) -> Response {
    answer_json(blocking(move || app.desk.review(&body)).await)
}

async fn install(
    State(app): State<App>,
    Path((_t, rid)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    answer_json(
        blocking(move || {
            let b = body_json(&body)?;
            let pet = b["pet"]
                .as_str()
                .ok_or_else(|| DeskError::bad("an install needs the app's name"))?
                .to_owned();
            // Every decision is an object with a grant that is true or
            // false: a malformed one is refused, never read as "refused".
            let decisions = b["decisions"]
                .as_array()
                .filter(|ds| {
                    ds.iter()
                        .all(|d| d.is_object() && d["name"].is_string() && d["grant"].is_boolean())
                })
                .cloned()
                .ok_or_else(|| {
                    DeskError::bad(
                        "the decisions must be a list of {\"name\", \"grant\": true or false}",
                    )
                })?;
            let id = app.desk.install(&rid, &pet, &decisions)?;
            Ok(json!({"app": id}))
        })
        .await,
    )
}

async fn cancel(State(app): State<App>, Path((_t, rid)): Path<(String, String)>) -> Response {
    app.desk.cancel(&rid);
    axum::Json(json!({})).into_response()
}

async fn launch(State(app): State<App>, Path((_t, id)): Path<(String, String)>) -> Response {
    answer_json(
        blocking(move || {
            let w = app.desk.launch(&id)?;
            Ok(json!({"window": w.to_string()}))
        })
        .await,
    )
}

async fn rename(
    State(app): State<App>,
    Path((_t, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    answer_json(
        blocking(move || {
            let b = body_json(&body)?;
            app.desk
                .rename(&id, b["pet"].as_str().unwrap_or_default())?;
            Ok(json!({}))
        })
        .await,
    )
}

async fn uninstall(State(app): State<App>, Path((_t, id)): Path<(String, String)>) -> Response {
    answer_json(
        blocking(move || {
            app.desk.uninstall(&id)?;
            Ok(json!({}))
        })
        .await,
    )
}

async fn revoke_all(State(app): State<App>, Path((_t, id)): Path<(String, String)>) -> Response {
    answer_json(
        blocking(move || {
            app.desk.revoke_all(&id)?;
            Ok(json!({}))
        })
        .await,
    )
}

async fn audit(State(app): State<App>, Path((_t, id)): Path<(String, String)>) -> Response {
    answer_json(app.desk.audit(&id))
}

async fn close(State(app): State<App>, Path((_t, w)): Path<(String, String)>) -> Response {
    answer_json(
        blocking(move || {
            app.desk.close(number(&w, "window")?)?;
            Ok(json!({}))
        })
        .await,
    )
}

async fn restart(State(app): State<App>, Path((_t, w)): Path<(String, String)>) -> Response {
    answer_json(
        blocking(move || {
            let window = app.desk.restart(number(&w, "window")?)?;
            Ok(json!({"window": window.to_string()}))
        })
        .await,
    )
}

async fn event(
    State(app): State<App>,
    Path((_t, w)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    answer_json((|| {
        let b = body_json(&body)?;
        app.desk.event(number(&w, "window")?, &b)?;
        Ok(json!({}))
    })())
}

async fn navigate(
    State(app): State<App>,
    Path((_t, w)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    answer_json((|| {
        let b = body_json(&body)?;
        let url = b["url"]
            .as_str()
            .ok_or_else(|| DeskError::bad("navigate needs a url"))?;
        app.desk.browse(number(&w, "window")?, url)?;
        Ok(json!({}))
    })())
}

async fn step(app: &App, w: &str, step: i64) -> Response {
    answer_json((|| {
        app.desk.history(number(w, "window")?, step)?;
        Ok(json!({}))
    })())
}

async fn back(State(app): State<App>, Path((_t, w)): Path<(String, String)>) -> Response {
    step(&app, &w, -1).await
}

async fn forward(State(app): State<App>, Path((_t, w)): Path<(String, String)>) -> Response {
    step(&app, &w, 1).await
}

async fn reload(State(app): State<App>, Path((_t, w)): Path<(String, String)>) -> Response {
    step(&app, &w, 0).await
}

async fn renderer(
    State(app): State<App>,
    Path((_t, w)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let b = match body_json(&body) {
        Ok(b) => b,
        Err(e) => return failed(&e),
    };
    answer_json(
        blocking(move || {
            let id = b["renderer"]
                .as_str()
                .ok_or_else(|| DeskError::bad("renderer needs a renderer id"))?;
            app.desk.set_renderer(number(&w, "window")?, id)?;
            Ok(json!({}))
        })
        .await,
    )
}

async fn image(
    State(app): State<App>,
    Path((_t, w, n)): Path<(String, String, String)>,
) -> Response {
    let got = blocking(move || {
        let n = usize::try_from(number(&n, "image")?)
            .map_err(|_| DeskError::missing("no such image"))?;
        app.desk.image(number(&w, "window")?, n)
    })
    .await;
    match got {
        Ok(b) => ([(header::CONTENT_TYPE, "image/png")], b.to_vec()).into_response(),
        Err(e) => failed(&e),
    }
}

async fn drop_file(
    State(app): State<App>,
    Path((_t, w)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    answer_json(
        blocking(move || {
            let b = body_json(&body)?;
            let path = b["path"]
                .as_str()
                .ok_or_else(|| DeskError::bad("a drop needs the document's path"))?;
            app.desk.drop_file(number(&w, "window")?, path)?;
            Ok(json!({}))
        })
        .await,
    )
}

async fn answer(
    State(app): State<App>,
    Path((_t, p)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    answer_json(
        blocking(move || {
            let b = body_json(&body)?;
            if !b["grant"].is_boolean() {
                return Err(DeskError::bad(
                    "an answer says whether it grants: true or false",
                ));
            }
            app.desk.answer(&p, &b)?;
            Ok(json!({}))
        })
        .await,
    )
}

#[derive(serde::Deserialize)]
struct Dir {
    dir: Option<String>,
}

async fn files(State(app): State<App>, Query(q): Query<Dir>) -> Response {
    answer_json(app.desk.files(q.dir.as_deref().unwrap_or("")))
}

async fn revoke(State(app): State<App>, Path((_t, g)): Path<(String, String)>) -> Response {
    answer_json(
        blocking(move || {
            app.desk.revoke(number(&g, "grant")?)?;
            Ok(json!({}))
        })
        .await,
    )
}

async fn timeline(State(app): State<App>) -> Response {
    axum::Json(app.desk.timeline()).into_response()
}

async fn events(State(app): State<App>, ws: WebSocketUpgrade) -> Response {
    // Subscribed before the upgrade is answered: a change made once the
    // page holds its socket reaches it, even before `push` first runs.
    let rx = app.desk.subscribe();
    ws.max_message_size(MAX_BODY)
        .on_upgrade(move |socket| push(socket, rx))
}

/// Forwards the desk's live messages to one page; what the page sends is
/// read and dropped.
async fn push(mut socket: WebSocket, mut rx: tokio::sync::broadcast::Receiver<String>) {
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Ok(text) => {
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    let changed = json!({"type": "changed"}).to_string();
                    if socket.send(Message::Text(changed.into())).await.is_err() {
                        return;
                    }
                }
                Err(_) => return,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(_)) => {}
                _ => return,
            },
        }
    }
}

/// Serves the desk on `listener` until the process ends.
///
/// # Errors
/// The listener failed.
pub async fn serve(
    listener: tokio::net::TcpListener,
    desk: Arc<Desk>,
    token: &str,
) -> std::io::Result<()> {
    let port = listener.local_addr()?.port();
    let flusher = desk.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
        loop {
            tick.tick().await;
            flusher.flush_views();
        }
    });
    let router = router(desk, token, port);
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
}
