//! The routes, one module per resource.

mod alerts;
mod audit;
mod broker;
mod commands;
mod devices;
mod edge_budget;
mod edge_resync;
mod edges;
mod events;
mod export;
mod forecast;
mod ingest;
mod me;
mod mqtt_ws;
mod notify;
mod query;
mod retention;
mod rules;
mod series;
mod session;
mod stream;
mod system;
mod tokens;
mod twin;
mod users;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;

use crate::{ApiError, AppState, MAX_BODY};

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(crate::page::dashboard))
        .route("/metrics", get(system::metrics))
        .route("/api/v1/health", get(system::health))
        .route("/api/v1/system", get(system::info))
        .route("/api/v1/devices", get(devices::list).post(devices::create))
        .route(
            "/api/v1/devices/{id}",
            get(devices::show)
                .delete(devices::delete)
                .patch(devices::update),
        )
        .route(
            "/api/v1/devices/{id}/secret",
            axum::routing::post(devices::rotate_secret),
        )
        .route(
            "/api/v1/devices/{id}/telemetry",
            axum::routing::post(ingest::telemetry),
        )
        .route(
            "/api/v1/devices/{id}/commands",
            get(commands::list).post(commands::send),
        )
        .route("/api/v1/devices/{id}/commands/{cid}", get(commands::get))
        .route(
            "/api/v1/devices/{id}/twin",
            get(twin::get).patch(twin::patch),
        )
        .route("/api/v1/devices/{id}/events", get(events::list))
        .route("/api/v1/devices/{id}/export", get(export::export))
        .route("/api/v1/devices/{id}/series", get(series::list))
        .route("/api/v1/devices/{id}/series/{metric}", get(series::range))
        .route(
            "/api/v1/devices/{id}/series/{metric}/band",
            get(series::band),
        )
        .route(
            "/api/v1/devices/{id}/series/{metric}/forecast",
            get(forecast::forecast),
        )
        .route("/api/v1/query", axum::routing::post(query::query))
        .route("/api/v1/alerts", get(alerts::list))
        .route("/api/v1/alerts/{id}", get(alerts::get))
        .route(
            "/api/v1/alerts/{id}/feedback",
            axum::routing::post(alerts::feedback),
        )
        .route("/api/v1/alerts/{id}/ack", axum::routing::post(alerts::ack))
        .route(
            "/api/v1/alerts/{id}/resolve",
            axum::routing::post(alerts::resolve),
        )
        .route(
            "/api/v1/alerts/{id}/comments",
            get(alerts::comments).post(alerts::comment),
        )
        .route(
            "/api/v1/silences",
            get(notify::silences).post(notify::create_silence),
        )
        .route(
            "/api/v1/silences/{id}",
            axum::routing::delete(notify::delete_silence),
        )
        .route(
            "/api/v1/channels",
            get(notify::channels).post(notify::put_channel),
        )
        .route(
            "/api/v1/channels/{name}",
            axum::routing::delete(notify::delete_channel),
        )
        .route("/api/v1/alert-groups", get(notify::groups))
        .route("/api/v1/limits", get(alerts::limits))
        .route("/api/v1/rules", get(rules::list).post(rules::create))
        .route(
            "/api/v1/rules/{id}",
            get(rules::get).put(rules::update).delete(rules::delete),
        )
        .route("/api/v1/rules/{id}/test", axum::routing::post(rules::test))
        .route("/api/v1/rules/{id}/traces", get(rules::traces))
        .route(
            "/api/v1/rules/{id}/enable",
            axum::routing::post(rules::enable),
        )
        .route(
            "/api/v1/rules/{id}/disable",
            axum::routing::post(rules::disable),
        )
        .route("/api/v1/audit", get(audit::list))
        .route("/api/v1/edges", get(edges::list).post(edges::create))
        .route("/api/v1/edges/{id}", get(edges::show))
        .route(
            "/api/v1/edges/{id}/resync",
            axum::routing::post(edge_resync::start),
        )
        .route("/api/v1/uplink", get(edges::uplink))
        .route("/api/v1/stream", get(stream::stream))
        .route("/mqtt", get(mqtt_ws::upgrade))
        .route("/api/v1/retention", get(retention::get).put(retention::put))
        .route("/api/v1/storage", get(retention::storage))
        .route("/api/v1/tokens", get(tokens::list).post(tokens::create))
        .route("/api/v1/broker/clients", get(broker::clients))
        .route("/api/v1/tokens/{id}", axum::routing::delete(tokens::delete))
        .route("/api/v1/users", get(users::list).post(users::create))
        .route("/api/v1/me/tokens", get(me::list).post(me::create))
        .route("/api/v1/me/tokens/{id}", axum::routing::delete(me::delete))
        .route(
            "/api/v1/users/{name}",
            get(users::show).patch(users::update).delete(users::delete),
        )
        .route(
            "/api/v1/session",
            get(session::whoami)
                .post(session::login)
                .delete(session::logout),
        )
        .fallback(|| async { ApiError::not_found("no such endpoint; see README.md for the API") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method; see README.md for the API",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}
