//! The demo's rules save energy on the simulated fleet without leaving people in the dark: a
//! simulated Monday (seed 42, readings every 10 s) with the rules off, then on, judged by the
//! live node's rule state machine (`sentio-bench energy`).

use sentio_bench::energy::{compare, saved_pct};
use sentio_sim::FleetSpec;

/// Monday 2026-11-23 00:00 UTC.
const MONDAY_MS: i64 = 1_795_392_000_000;

#[test]
fn the_demo_rules_save_room_energy_at_a_small_comfort_cost() {
    let c = compare(FleetSpec::demo(), MONDAY_MS, 24.0, 10_000).expect("both runs");
    let room = |r: &sentio_bench::energy::EnergyRun| r.wh_by_kind["room"];
    let saved = saved_pct(room(&c.without), room(&c.with));
    eprintln!(
        "energy: rooms {:.1} -> {:.1} kWh ({saved:.1} % saved), total {:.1} -> {:.1} kWh; dark {:.1} min, cold {:.1} -> {:.1} min; fired {:?}",
        room(&c.without) / 1000.0,
        room(&c.with) / 1000.0,
        c.without.total_wh() / 1000.0,
        c.with.total_wh() / 1000.0,
        c.with.dark_min,
        c.without.cold_min,
        c.with.cold_min,
        c.with.fired
    );
    // Measured 7.0 % (rules with `on_resolve`, 2026-12-07): the empty rooms' economy setback at night and before people arrive.
    assert!((3.0..20.0).contains(&saved), "rooms saved {saved:.1} %");
    assert!(c.with.total_wh() < c.without.total_wh());
    // Every room emptied and filled again, and each time the rules acted.
    assert!(c.with.fired["demo-empty-room"] >= 4, "{:?}", c.with.fired);
    assert!(
        c.with.resolved["demo-empty-room"] >= 4,
        "its on_resolve turned the lights back on: {:?}",
        c.with.resolved
    );
    assert_eq!(
        c.with.refused, 0,
        "every action was one the devices understand"
    );
    // Lights come back at the next reading after someone enters (measured 0.7 room-minutes).
    assert!(
        c.with.dark_min <= 5.0,
        "dark {:.1} room-minutes",
        c.with.dark_min
    );
    assert_eq!(c.without.dark_min, 0.0);
    // Warming up from the economy setback costs comfort at arrival (measured +45 min over
    // 2,778 occupied room-minutes); bounded.
    assert!(
        c.with.cold_min - c.without.cold_min <= 120.0,
        "cold {:.1} -> {:.1} room-minutes",
        c.without.cold_min,
        c.with.cold_min
    );
    assert_eq!(
        c.without.occupied_min, c.with.occupied_min,
        "the same people"
    );
}
