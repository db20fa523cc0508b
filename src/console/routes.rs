//! The console's HTTP surface: its page and assets, the JSON the page reads, and the actions
//! it posts. Every error is JSON `{"error": "..."}` with a 4xx or 503 status; nothing a
//! request holds can panic the server.

// Handlers answer their errors as responses, as axum expects: one per refused request, so
// their size costs nothing worth boxing.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::backend::{Backend, Refusal};
use super::guard::{new_csrf_token, Guard, CSRF_COOKIE};
use super::timeline::Timeline;
use super::view;
use crate::fsm::{BrowseCursor, BrowseState, JobId};
use crate::limits::BROWSE_PAGE_MAX;

/// The largest action body: a tube name and a number or two.
const ACTION_BODY_BYTES_MAX: usize = 16 * 1024;
/// A page's length when the request gives none.
const PAGE_DEFAULT: usize = 50;

pub struct Console {
    pub backend: Backend,
    pub guard: Guard,
    pub timeline: Timeline,
    /// What the process is, for the page's title: `serve` or `cluster-node`.
    pub mode: &'static str,
}

type Shared = State<Arc<Console>>;

pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/console.js", get(|| async { asset("text/javascript", include_str!("assets/console.js")) }))
        .route("/console.css", get(|| async { asset("text/css", include_str!("assets/console.css")) }))
        .route("/api/overview", get(overview))
        .route("/api/tubes", get(tubes))
        .route("/api/tube", get(tube))
        .route("/api/jobs", get(jobs))
        .route("/api/job", get(job))
        .route("/api/pause", post(pause))
        .route("/api/kick", post(kick))
        .route("/api/delete-buried", post(delete_buried))
        .route("/api/job/delete", post(delete_job))
        .route("/api/job/kick", post(kick_job))
        .route("/api/job/move", post(move_job))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such page".into()) })
        .layer(DefaultBodyLimit::max(ACTION_BODY_BYTES_MAX))
        .with_state(console)
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::BadRequest(m) => error(StatusCode::BAD_REQUEST, m),
            Refusal::NotFound(m) => error(StatusCode::NOT_FOUND, m),
            Refusal::Conflict(m) => error(StatusCode::CONFLICT, m),
            Refusal::Unavailable(m) => error(StatusCode::SERVICE_UNAVAILABLE, m),
        }
    }
}

type Answer = Result<Json<Value>, Response>;

fn bad(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, message.into())
}

/// A query string as `T`, or a 400 that says what is wrong with it.
fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, Response> {
    q.map(|Query(t)| t).map_err(|e| bad(e.body_text()))
}

/// The page's length: the default, or 1 to the most a page may hold.
fn page_limit(limit: Option<usize>) -> Result<usize, Response> {
    match limit.unwrap_or(PAGE_DEFAULT) {
        n @ 1..=BROWSE_PAGE_MAX => Ok(n),
        n => Err(bad(format!("limit {n} is out of range: a page holds 1 to {BROWSE_PAGE_MAX}"))),
    }
}

async fn index() -> Response {
    let mut response = asset("text/html; charset=utf-8", include_str!("assets/index.html")).into_response();
    let cookie = format!("{CSRF_COOKIE}={}; Path=/; SameSite=Strict", new_csrf_token());
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            // The page runs only its own script: a job body shown can never run as code.
            (header::CONTENT_SECURITY_POLICY, "default-src 'self'; img-src 'self' data:"),
        ],
        body,
    )
}

/// The cluster and the totals. While no leader confirms reads (an election) the cluster part
/// still answers, with why the totals are missing: that is when an operator looks.
async fn overview(State(c): Shared) -> Answer {
    let cluster = c.backend.reads.cluster().await.map_err(IntoResponse::into_response)?;
    let totals = c.backend.reads.totals().await;
    let (counts, jobs, tubes) = match &totals {
        Ok(t) => (view::counts(&t.counts), json!(t.jobs), json!(t.tubes)),
        Err(_) => (Value::Null, Value::Null, Value::Null),
    };
    Ok(Json(json!({
        "mode": c.mode,
        "read_only": c.guard.read_only(),
        "node_id": c.backend.reads.node_id(),
        "cluster": view::cluster(&cluster),
        "timeline": c.timeline.changes(),
        "totals": counts,
        "jobs": jobs,
        "tubes": tubes,
        "read_error": totals.err().map(|e| format!("{e:?}")),
        "now_ms": crate::clock::now_ms(),
    })))
}

#[derive(Deserialize)]
struct TubesQuery {
    after: Option<u64>,
    limit: Option<usize>,
}

async fn tubes(State(c): Shared, q: Result<Query<TubesQuery>, QueryRejection>) -> Answer {
    let q = query(q)?;
    let page = c.backend.reads.tubes(q.after, page_limit(q.limit)?).await.map_err(IntoResponse::into_response)?;
    Ok(Json(json!({
        "tubes": page.tubes.iter().map(view::tube).collect::<Vec<_>>(),
        "next": page.next,
    })))
}

#[derive(Deserialize)]
struct TubeQuery {
    name: String,
}

async fn tube(State(c): Shared, q: Result<Query<TubeQuery>, QueryRejection>) -> Answer {
    let q = query(q)?;
    let tube = c.backend.reads.tube(q.name).await.map_err(IntoResponse::into_response)?;
    Ok(Json(view::tube(&tube)))
}

#[derive(Deserialize)]
struct JobsQuery {
    tube: String,
    state: String,
    /// `KEY.ID`: the `next` of the page before.
    after: Option<String>,
    limit: Option<usize>,
}

/// A page cursor as the JSON gives it: `KEY.ID`.
fn cursor(text: Option<&str>) -> Result<BrowseCursor, Response> {
    let Some(text) = text.filter(|t| !t.is_empty()) else { return Ok(BrowseCursor::default()) };
    let parsed = text.split_once('.').and_then(|(k, id)| Some(BrowseCursor { key: k.parse().ok()?, id: id.parse().ok()? }));
    parsed.ok_or_else(|| bad(format!("after={text} is not a page cursor (KEY.ID, as a page's next gives it)")))
}

async fn jobs(State(c): Shared, q: Result<Query<JobsQuery>, QueryRejection>) -> Answer {
    let q = query(q)?;
    let state = BrowseState::parse(&q.state).ok_or_else(|| bad(format!("state {} is not one of ready, delayed, reserved, buried", q.state)))?;
    let (after, limit) = (cursor(q.after.as_deref())?, page_limit(q.limit)?);
    let page = c.backend.reads.jobs(q.tube, state, after, limit).await.map_err(IntoResponse::into_response)?;
    let now = crate::clock::now_ms();
    Ok(Json(json!({
        "jobs": page.jobs.iter().map(|j| view::job_row(j, now)).collect::<Vec<_>>(),
        "next": page.next.map(|n| format!("{}.{}", n.key, n.id)),
    })))
}

#[derive(Deserialize)]
struct JobQuery {
    id: JobId,
}

async fn job(State(c): Shared, q: Result<Query<JobQuery>, QueryRejection>) -> Answer {
    let q = query(q)?;
    let job = c.backend.reads.job(q.id).await.map_err(IntoResponse::into_response)?;
    Ok(Json(view::job_detail(&job, crate::clock::now_ms())))
}

/// An action's JSON body as `T`, once the guard lets it through.
fn action<T>(c: &Console, headers: &HeaderMap, body: Result<Json<T>, JsonRejection>) -> Result<T, Response> {
    c.guard.allow(headers).map_err(|(status, why)| {
        tracing::warn!(why, "console: action refused");
        error(status, why)
    })?;
    body.map(|Json(t)| t).map_err(|e| error(e.status(), e.body_text()))
}

fn done(result: Result<Value, Refusal>) -> Answer {
    result.map(Json).map_err(IntoResponse::into_response)
}

#[derive(Deserialize)]
struct PauseBody {
    tube: String,
    secs: u32,
}

async fn pause(State(c): Shared, headers: HeaderMap, body: Result<Json<PauseBody>, JsonRejection>) -> Answer {
    let b = action(&c, &headers, body)?;
    done(c.backend.pause(b.tube, b.secs).await.map(|()| json!({ "paused_secs": b.secs })))
}

#[derive(Deserialize)]
struct KickBody {
    tube: String,
    bound: u32,
}

async fn kick(State(c): Shared, headers: HeaderMap, body: Result<Json<KickBody>, JsonRejection>) -> Answer {
    let b = action(&c, &headers, body)?;
    done(c.backend.kick(b.tube, b.bound).await.map(|count| json!({ "kicked": count })))
}

#[derive(Deserialize)]
struct TubeBody {
    tube: String,
}

async fn delete_buried(State(c): Shared, headers: HeaderMap, body: Result<Json<TubeBody>, JsonRejection>) -> Answer {
    let b = action(&c, &headers, body)?;
    done(c.backend.delete_buried(b.tube).await.map(|(deleted, more)| json!({ "deleted": deleted, "more": more })))
}

#[derive(Deserialize)]
struct JobBody {
    id: JobId,
}

async fn delete_job(State(c): Shared, headers: HeaderMap, body: Result<Json<JobBody>, JsonRejection>) -> Answer {
    let b = action(&c, &headers, body)?;
    done(c.backend.delete_job(b.id).await.map(|()| json!({ "deleted": b.id })))
}

async fn kick_job(State(c): Shared, headers: HeaderMap, body: Result<Json<JobBody>, JsonRejection>) -> Answer {
    let b = action(&c, &headers, body)?;
    done(c.backend.kick_job(b.id).await.map(|()| json!({ "kicked": b.id })))
}

#[derive(Deserialize)]
struct MoveBody {
    id: JobId,
    tube: String,
}

async fn move_job(State(c): Shared, headers: HeaderMap, body: Result<Json<MoveBody>, JsonRejection>) -> Answer {
    let b = action(&c, &headers, body)?;
    if let Err(e) = crate::fsm::validate_tube_name(&b.tube) {
        return Err(bad(format!("{:?} is not a tube name: {e:?}", b.tube)));
    }
    let tube = b.tube.clone();
    done(c.backend.move_job(b.id, b.tube).await.map(|()| json!({ "moved": b.id, "tube": tube })))
}
