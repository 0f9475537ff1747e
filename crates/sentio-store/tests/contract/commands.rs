//! Commands: kept in order per device, bounded in how many are open, moved through their
//! states only forward (a late reply to an expired command is recorded, its state kept), and
//! still there after a reopen.

use sentio_core::{Command, CommandId, CommandState};
use serde_json::json;

use super::{Backend, dev};

fn command(device: &str, id: &str, created_ms: i64, ttl_ms: i64) -> Command {
    Command {
        id: CommandId::parse(id).unwrap(),
        device: dev(device),
        name: "set_speed".into(),
        params: json!({"rpm": created_ms}),
        created_ms,
        expires_ms: created_ms + ttl_ms,
        state: CommandState::Pending,
        delivered_ms: None,
        replied_ms: None,
        reply: None,
    }
}

fn ids(list: &[Command]) -> Vec<&str> {
    list.iter().map(|c| c.id.as_str()).collect()
}

pub async fn commands_keep_their_order_bound_and_states_across_reopen(backend: &impl Backend) {
    let s = backend.open();
    let pump = dev("pump-1");
    for (i, id) in ["c-3", "c-1", "c-2"].into_iter().enumerate() {
        assert!(
            s.commands
                .add_command(&command("pump-1", id, 1_000 + i as i64, 60_000), 3)
                .await
                .unwrap()
        );
    }
    // The bound counts open commands of this device only.
    assert!(
        !s.commands
            .add_command(&command("pump-1", "c-4", 2_000, 60_000), 3)
            .await
            .unwrap()
    );
    assert!(
        s.commands
            .add_command(&command("pump-2", "c-5", 2_000, 1_000), 3)
            .await
            .unwrap()
    );
    // Delivery order is acceptance order, not id order.
    assert_eq!(
        ids(&s.commands.pending_commands(&pump).await.unwrap()),
        ["c-3", "c-1", "c-2"]
    );
    let c3 = CommandId::parse("c-3").unwrap();
    let delivered = s
        .commands
        .mark_delivered(&pump, &c3, 5_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (delivered.state, delivered.delivered_ms),
        (CommandState::Delivered, Some(5_000))
    );
    assert_eq!(
        s.commands.mark_delivered(&pump, &c3, 6_000).await.unwrap(),
        None,
        "only once"
    );
    let ok = json!({"status": "ok"});
    let done = s
        .commands
        .record_reply(&pump, &c3, CommandState::Succeeded, &ok, 7_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (done.state, done.reply.clone()),
        (CommandState::Succeeded, Some(ok.clone()))
    );
    assert_eq!(
        s.commands
            .record_reply(&pump, &c3, CommandState::Failed, &ok, 8_000)
            .await
            .unwrap(),
        None,
        "the first reply stands"
    );
    // A finished command frees a place under the bound.
    assert!(
        s.commands
            .add_command(&command("pump-1", "c-4", 2_000, 60_000), 3)
            .await
            .unwrap()
    );
    // pump-2's command ran out at 3,000; pump-1's run until 61,000 and later.
    let expired = s.commands.expire_commands(3_000).await.unwrap();
    assert_eq!(ids(&expired), ["c-5"]);
    assert!(expired.iter().all(|c| c.state == CommandState::Expired));
    assert!(s.commands.expire_commands(3_000).await.unwrap().is_empty());
    // A late reply is recorded; the command stays expired.
    let c5 = CommandId::parse("c-5").unwrap();
    let late = s
        .commands
        .record_reply(&dev("pump-2"), &c5, CommandState::Succeeded, &ok, 9_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (late.state, late.replied_ms),
        (CommandState::Expired, Some(9_000))
    );
    // Another device cannot reach a command by its id.
    assert_eq!(
        s.commands.get_command(&dev("pump-2"), &c3).await.unwrap(),
        None
    );
    drop(s);

    let s = backend.open();
    let history = s.commands.list_commands(&pump, 10).await.unwrap();
    assert_eq!(ids(&history), ["c-4", "c-2", "c-1", "c-3"], "newest first");
    assert_eq!(history[3], done);
    assert_eq!(
        ids(&s.commands.list_commands(&pump, 2).await.unwrap()),
        ["c-4", "c-2"]
    );
    assert_eq!(
        ids(&s.commands.pending_commands(&pump).await.unwrap()),
        ["c-1", "c-2", "c-4"]
    );
    let c5 = s
        .commands
        .get_command(&dev("pump-2"), &c5)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c5, late);
}

/// On an edge: a command adopted from the cloud is kept once (a re-send is known) and is the
/// only kind listed to go up; the edge's own commands are not.
pub async fn an_edge_reports_up_only_the_commands_it_adopted_from_its_cloud(
    backend: &impl Backend,
) {
    let s = backend.open();
    let own = command("lamp-1", "c-own", 1_000, 60_000);
    assert!(s.commands.add_command(&own, 10).await.unwrap());
    let cloud = command("lamp-1", "c-cloud", 2_000, 60_000);
    assert!(s.commands.adopt_command(&cloud).await.unwrap());
    assert!(!s.commands.adopt_command(&cloud).await.unwrap(), "known");
    let pending = s.commands.pending_commands(&dev("lamp-1")).await.unwrap();
    assert_eq!(
        ids(&pending),
        ["c-own", "c-cloud"],
        "both delivered, in order"
    );
    drop(s);
    let s = backend.open();
    let up = s.commands.upstream_commands(10).await.unwrap();
    assert_eq!(ids(&up), ["c-cloud"]);
}
