//! The store contract: what every backend must do, written once against the traits (a
//! [`Stores`] bundle) and run for each backend by [`store_contract!`]. `tests/sqlite_contract.rs`
//! runs it on the embedded store; a PostgreSQL backend adds one file that implements
//! [`Backend`] and invokes the macro, and passes the very same tests.
//!
//! Timestamps are injected (maintenance passes are given their `now`), so nothing sleeps.

// Each test binary that includes this module uses only part of it.
#![allow(dead_code, unused_imports, unused_macros)]

pub mod alerts;
pub mod bands;
pub mod commands;
pub mod edges;
pub mod health;
pub mod notify;
pub mod registry;
pub mod resync;
pub mod retention;
pub mod rules;
pub mod twins;
pub mod users;

use std::sync::Arc;

use sentio_core::{DeviceId, Point};
use sentio_store::Stores;

/// A backend under test: one fresh, empty store per test.
pub trait Backend {
    /// Opens the store; opening it again finds everything stored before (a restart).
    fn open(&self) -> Stores;
}

/// A device id known to be valid.
pub fn dev(id: &str) -> DeviceId {
    DeviceId::parse(id).unwrap()
}

/// A point of `metric` of `device`.
pub fn point(device: &str, metric: &str, ts_ms: i64, value: f64) -> Point {
    Point {
        device: dev(device),
        metric: Arc::from(metric),
        ts_ms,
        value,
    }
}

/// One `#[tokio::test]` per contract test, each given a fresh backend made by `$new` (an
/// expression whose value implements [`Backend`]).
macro_rules! store_contract {
    ($new:expr) => {
        $crate::contract::store_contract!(@tests $new;
            registry::everything_survives_reopen_and_erase_removes_everything,
            registry::devices_change_labels_secrets_last_seen_and_refusals,
            registry::kinds_names_and_ids_are_checked_at_registration,
            registry::tokens_survive_a_reopen_and_revocation_is_immediate,
            registry::text_events_keep_the_last_text_and_a_bounded_history,
            registry::the_audit_log_lists_newest_first_and_an_erasure_anonymises_it,
            alerts::acknowledgements_resolutions_and_comments_survive_reopen_and_erase,
            alerts::a_batch_of_alerts_is_saved_in_order_with_its_ids,
            notify::silences_channels_and_the_outbox_survive_reopen_and_deliver_once,
            notify::erasing_a_device_removes_its_notifications_group_places_and_silences,
            health::a_healthy_store_is_not_full_and_has_free_space,
            retention::raw_expires_per_device_kind_and_globally_and_rollups_answer,
            retention::late_points_and_duplicates_update_the_rollups,
            retention::rollups_expire_erasure_removes_them_and_the_policy_survives_reopen,
            retention::rollups_equal_the_raw_points_they_summarise_through_late_points_and_expiry,
            retention::an_interrupted_store_stops_background_work_and_loses_nothing,
            bands::bands_merge_downsample_expire_with_the_minute_rollups_and_go_with_the_device,
            rules::rules_are_kept_whole_replaced_by_id_and_survive_reopen,
            commands::commands_keep_their_order_bound_and_states_across_reopen,
            twins::twins_patch_with_a_version_check_and_a_size_cap,
            twins::twins_take_the_clouds_desired_once_per_version_and_an_edges_reports_forward,
            commands::an_edge_reports_up_only_the_commands_it_adopted_from_its_cloud,
            users::users_roles_and_passwords_survive_a_reopen,
            users::sessions_expire_end_at_logout_and_with_their_user,
            users::scopes_and_personal_tokens_follow_their_user,
            edges::the_outbox_records_each_commit_and_forgets_what_is_acked,
            edges::outbox_lanes_keep_their_batches_apart,
            edges::an_edge_alert_is_held_once_and_follows_its_changes,
            edges::an_edge_registry_is_applied_under_the_edge_and_never_takes_a_device,
            edges::edges_apply_each_batch_once_per_incarnation,
            edges::the_raw_points_around_an_alert_go_in_the_live_lane_once,
            edges::rollups_an_edge_alone_sent_expire_with_the_rollup_retention,
            edges::an_edge_policy_is_kept_across_reopen,
            resync::a_resync_part_is_applied_once_and_a_resent_point_changes_nothing,
            resync::a_resync_part_of_minutes_replaces_the_minutes_of_its_hours,
        );
    };
    (@tests $new:expr; $($module:ident :: $test:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $test() {
                $crate::contract::$module::$test(&$new).await;
            }
        )*
    };
}
pub(crate) use store_contract;
