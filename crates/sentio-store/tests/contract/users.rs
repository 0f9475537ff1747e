//! People: user accounts with roles, passwords checked against their hashes, and sessions kept
//! only as digests.

use sentio_store::{DeviceScope, NewUser, NewUserToken, Role, StoreError};

use super::Backend;

fn new_user(name: &str, role: Role, password: &str) -> NewUser {
    NewUser {
        name: name.into(),
        role,
        password: password.into(),
        scope: DeviceScope::fleet(),
    }
}

pub async fn users_roles_and_passwords_survive_a_reopen(backend: &impl Backend) {
    let s = backend.open();
    let ann = s
        .users
        .create_user(new_user("ann", Role::Admin, "ann's long password"))
        .await
        .unwrap();
    assert_eq!((ann.name.as_str(), ann.role), ("ann", Role::Admin));
    s.users
        .create_user(new_user("bob", Role::Viewer, "bob's long password"))
        .await
        .unwrap();
    for (name, role, password) in [
        ("ann", Role::Operator, "another long one"),
        ("carl", Role::Viewer, "short"),
        ("bad name", Role::Viewer, "a long enough password"),
    ] {
        let err = s
            .users
            .create_user(new_user(name, role, password))
            .await
            .unwrap_err();
        match name {
            "ann" => assert!(matches!(err, StoreError::DuplicateUser(_)), "{err}"),
            _ => assert!(matches!(err, StoreError::InvalidQuery(_)), "{err}"),
        }
    }
    let bob = s.users.set_role("bob", Role::Operator).await.unwrap();
    assert_eq!(bob.role, Role::Operator);
    assert!(matches!(
        s.users.set_role("nobody", Role::Admin).await,
        Err(StoreError::UnknownUser(_))
    ));
    drop(s);

    let s = backend.open();
    let names: Vec<_> = s
        .users
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| (u.name, u.role))
        .collect();
    assert_eq!(
        names,
        [
            ("ann".to_string(), Role::Admin),
            ("bob".into(), Role::Operator)
        ]
    );
    let ok = s.users.check_password("ann", "ann's long password").await;
    assert_eq!(ok.unwrap().map(|u| u.name), Some("ann".into()));
    assert!(
        s.users
            .check_password("ann", "bob's long password")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.users
            .check_password("nobody", "ann's long password")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        s.users.get_user("bob").await.unwrap().unwrap().role,
        Role::Operator
    );
    s.users.delete_user("bob").await.unwrap();
    assert!(s.users.get_user("bob").await.unwrap().is_none());
    assert!(matches!(
        s.users.delete_user("bob").await,
        Err(StoreError::UnknownUser(_))
    ));
}

pub async fn sessions_expire_end_at_logout_and_with_their_user(backend: &impl Backend) {
    let s = backend.open();
    s.users
        .create_user(new_user("ann", Role::Viewer, "ann's long password"))
        .await
        .unwrap();
    let a = s.users.create_session("ann", 60_000).await.unwrap();
    let b = s.users.create_session("ann", 60_000).await.unwrap();
    assert_ne!(a.id, b.id);
    assert_eq!(a.id.len(), 64, "256 random bits, hex");
    let now = sentio_core::time::now_ms();
    let found = s.users.session(&a.id, now).await.unwrap().unwrap();
    assert_eq!(
        (found.user.name.as_str(), found.user.role),
        ("ann", Role::Viewer)
    );
    assert!(found.csrf_matches(&a.csrf));
    assert!(!found.csrf_matches(&b.csrf));
    assert!(s.users.session(&a.csrf, now).await.unwrap().is_none());
    assert!(
        s.users
            .session(&a.id, a.expires_ms)
            .await
            .unwrap()
            .is_none(),
        "expired at its expiry"
    );
    // A role change applies to live sessions at once.
    s.users.set_role("ann", Role::Admin).await.unwrap();
    assert_eq!(
        s.users
            .session(&b.id, now)
            .await
            .unwrap()
            .unwrap()
            .user
            .role,
        Role::Admin
    );
    drop(s);

    let s = backend.open();
    assert!(
        s.users.session(&a.id, now).await.unwrap().is_some(),
        "kept across a restart"
    );
    // A new password: the old one no longer signs in, and every session of the user ends.
    let c = s.users.create_session("ann", 60_000).await.unwrap();
    assert!(matches!(
        s.users.set_password("ann", "short").await,
        Err(StoreError::InvalidQuery(_))
    ));
    s.users
        .set_password("ann", "ann's new long password")
        .await
        .unwrap();
    assert!(s.users.session(&c.id, now).await.unwrap().is_none());
    assert!(
        s.users
            .check_password("ann", "ann's long password")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.users
            .check_password("ann", "ann's new long password")
            .await
            .unwrap()
            .is_some()
    );
    assert!(matches!(
        s.users
            .set_password("nobody", "a long enough password")
            .await,
        Err(StoreError::UnknownUser(_))
    ));
    // Disabled: no sign-in, no session, none kept; enabled again, it signs in.
    let d = s.users.create_session("ann", 60_000).await.unwrap();
    assert!(s.users.set_disabled("ann", true).await.unwrap().disabled);
    assert!(s.users.session(&d.id, now).await.unwrap().is_none());
    assert!(s.users.create_session("ann", 60_000).await.is_err());
    let password = "ann's new long password";
    assert!(
        s.users
            .check_password("ann", password)
            .await
            .unwrap()
            .is_none()
    );
    assert!(s.users.list_users().await.unwrap()[0].disabled);
    assert!(!s.users.set_disabled("ann", false).await.unwrap().disabled);
    assert!(
        s.users
            .check_password("ann", password)
            .await
            .unwrap()
            .is_some()
    );
    assert!(matches!(
        s.users.set_disabled("nobody", true).await,
        Err(StoreError::UnknownUser(_))
    ));
    let a = s.users.create_session("ann", 60_000).await.unwrap();
    let b = s.users.create_session("ann", 60_000).await.unwrap();
    assert!(s.users.delete_session(&a.id).await.unwrap());
    assert!(!s.users.delete_session(&a.id).await.unwrap());
    assert!(s.users.session(&a.id, now).await.unwrap().is_none());
    assert!(matches!(
        s.users.create_session("nobody", 60_000).await,
        Err(StoreError::UnknownUser(_))
    ));
    s.users.delete_user("ann").await.unwrap();
    assert!(
        s.users.session(&b.id, now).await.unwrap().is_none(),
        "gone with its user"
    );
}

/// Whether a personal token with this secret acts for its user at `now`.
async fn live(s: &sentio_store::Stores, id: &str, secret: &str, now: i64) -> bool {
    s.users
        .user_token_caller(id, secret, now)
        .await
        .unwrap()
        .is_some()
}

pub async fn scopes_and_personal_tokens_follow_their_user(backend: &impl Backend) {
    let s = backend.open();
    let plant_a = DeviceScope::parse("site=plant-a").unwrap();
    let vic = s
        .users
        .create_user(NewUser {
            scope: plant_a.clone(),
            ..new_user("vic", Role::Viewer, "vic's long password")
        })
        .await
        .unwrap();
    assert_eq!(vic.scope, plant_a);
    // An admin is never scoped: neither created so, nor promoted while scoped, nor rescoped.
    let scoped_admin = NewUser {
        scope: plant_a.clone(),
        ..new_user("ann", Role::Admin, "ann's long password")
    };
    assert!(matches!(
        s.users.create_user(scoped_admin).await,
        Err(StoreError::InvalidQuery(_))
    ));
    assert!(matches!(
        s.users.set_role("vic", Role::Admin).await,
        Err(StoreError::InvalidQuery(_))
    ));
    s.users
        .create_user(new_user("ann", Role::Admin, "ann's long password"))
        .await
        .unwrap();
    assert!(s.users.set_scope("ann", plant_a.clone()).await.is_err());

    let token = |name: &str, role| NewUserToken {
        user: "vic".into(),
        name: name.into(),
        role,
        expires_ms: None,
    };
    assert!(matches!(
        s.users
            .create_user_token(token("ops", Role::Operator))
            .await,
        Err(StoreError::InvalidQuery(_))
    ));
    let (t, secret) = s
        .users
        .create_user_token(token("grafana", Role::Viewer))
        .await
        .unwrap();
    assert_eq!(secret.len(), 64);
    assert!(matches!(
        s.users
            .create_user_token(token("grafana", Role::Viewer))
            .await,
        Err(StoreError::DuplicateToken(_))
    ));
    let now = sentio_core::time::now_ms();
    let (acting, found) = s
        .users
        .user_token_caller(&t.id, &secret, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (acting.role, &acting.scope, found.id.as_str()),
        (Role::Viewer, &plant_a, t.id.as_str())
    );
    assert!(
        s.users
            .user_token_caller(&t.id, &"0".repeat(64), now)
            .await
            .unwrap()
            .is_none()
    );
    // The user's new scope is the token's at once; it survives a reopen.
    let plant_b = DeviceScope::parse("site=plant-b").unwrap();
    s.users.set_scope("vic", plant_b.clone()).await.unwrap();
    drop(s);
    let s = backend.open();
    let (acting, _) = s
        .users
        .user_token_caller(&t.id, &secret, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(acting.scope, plant_b);
    // Disabled: the token stops; enabled: it works again.
    s.users.set_disabled("vic", true).await.unwrap();
    assert!(!live(&s, &t.id, &secret, now).await);
    s.users.set_disabled("vic", false).await.unwrap();
    assert!(live(&s, &t.id, &secret, now).await);
    // Expired at its expiry.
    let (e, e_secret) = s
        .users
        .create_user_token(NewUserToken {
            expires_ms: Some(now + 60_000),
            ..token("short", Role::Viewer)
        })
        .await
        .unwrap();
    assert!(live(&s, &e.id, &e_secret, now).await);
    assert!(!live(&s, &e.id, &e_secret, now + 60_000).await);
    // Only its user revokes it.
    assert_eq!(s.users.user_tokens("vic").await.unwrap().len(), 2);
    assert!(matches!(
        s.users.delete_user_token("ann", &t.id).await,
        Err(StoreError::UnknownToken(_))
    ));
    s.users.delete_user_token("vic", &e.id).await.unwrap();
    assert!(!live(&s, &e.id, &e_secret, now).await);
    // Deleting the user deletes its tokens.
    s.users.delete_user("vic").await.unwrap();
    assert!(!live(&s, &t.id, &secret, now).await);
    assert!(s.users.user_tokens("vic").await.unwrap().is_empty());
}
