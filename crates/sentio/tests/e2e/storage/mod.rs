//! What the node keeps and gives back: queries, chart points, text events, retention and
//! rollups, backup and restore, erasure, a full disk and a kill -9.

mod backup;
mod chart_points;
mod crash_safety;
mod disk_full;
mod erasure;
mod permissions;
mod query;
mod retention;
mod series_limit;
mod text_events;
