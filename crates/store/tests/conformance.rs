//! One conformance suite, run against both backends with the same inputs: every case must give
//! the same outputs on PostgreSQL and SQLite. Add a case here, not in one backend's tests.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use cloudspend_core::records::{CostRecord, CostSource, Instance, MetricPoint, RunStatus};
use cloudspend_core::{Money, Role, TenantId, UserId};
use cloudspend_store::*;
use std::collections::BTreeMap;
use std::sync::Arc;

fn money(s: &str) -> Money {
    s.parse().unwrap()
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 10, d).unwrap()
}

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, h, m, 0).unwrap()
}

fn new_user(email: &str) -> NewUser {
    NewUser {
        email: email.into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        is_global_owner: false,
    }
}

async fn tenant_with_owner(store: &Arc<dyn Store>, email: &str) -> (User, Tenant) {
    store
        .create_user_with_tenant(new_user(email), &format!("{email} co"))
        .await
        .unwrap()
}

fn ce(d: u32, service: &str, amount: &str, estimated: bool) -> CostRecord {
    CostRecord::from_cost_explorer(
        day(d),
        "111111111111",
        service,
        money(amount),
        money(amount),
        "USD",
        estimated,
    )
}

fn instance(id: &str, region: &str, state: &str) -> Instance {
    Instance {
        account_id: "111111111111".into(),
        region: region.into(),
        instance_id: id.into(),
        instance_type: "t3.micro".into(),
        state: state.into(),
        launch_time: Some(at(1, 0)),
        availability_zone: format!("{region}a"),
        platform: "Linux/UNIX".into(),
        tags: BTreeMap::from([("Name".to_string(), format!("web-{id}"))]),
        last_seen_at: at(2, 0) + Duration::nanoseconds(123_456_789),
        volume_ids: vec![format!("vol-{id}-root"), format!("vol-{id}-data")],
        state_since: (state == "stopped").then(|| at(1, 30)),
    }
}

fn cpu(id: &str, minute: u32, avg: f64) -> MetricPoint {
    MetricPoint {
        instance_id: id.into(),
        metric: "CPUUtilization".into(),
        period_seconds: 300,
        timestamp: at(3, minute),
        average: avg,
        maximum: avg * 2.0,
        unit: "Percent".into(),
    }
}

async fn users_have_unique_emails(store: Arc<dyn Store>) {
    let user = store
        .create_user(new_user("ana@example.com"))
        .await
        .unwrap();
    assert_eq!(user.email, "ana@example.com");
    assert!(!user.is_global_owner);
    match store.create_user(new_user("ana@example.com")).await {
        Err(StoreError::Conflict { field }) => assert_eq!(field, "email"),
        other => panic!("expected a conflict on email, got {other:?}"),
    }
    let (found, hash) = store
        .credentials_by_email("ana@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, user);
    assert!(hash.starts_with("$argon2id$"));
    assert_eq!(store.user_by_id(user.id).await.unwrap(), Some(user.clone()));
    assert!(
        store
            .credentials_by_email("nobody@example.com")
            .await
            .unwrap()
            .is_none()
    );
    store.set_global_owner(user.id, true).await.unwrap();
    assert!(
        store
            .user_by_id(user.id)
            .await
            .unwrap()
            .unwrap()
            .is_global_owner
    );
    assert!(matches!(
        store.set_global_owner(UserId::new(), true).await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn signup_makes_the_user_owner_of_a_new_tenant(store: Arc<dyn Store>) {
    let (user, tenant) = tenant_with_owner(&store, "owner@example.com").await;
    assert_eq!(
        store.role_in(tenant.id, user.id).await.unwrap(),
        Some(Role::Owner)
    );
    assert_eq!(
        store.tenants_of(user.id).await.unwrap(),
        vec![(tenant.clone(), Role::Owner)]
    );
    assert_eq!(store.tenant(tenant.id).await.unwrap(), Some(tenant.clone()));
    assert!(
        tenant.external_id.len() >= 32,
        "external id too short: {}",
        tenant.external_id
    );
    let (_, other) = tenant_with_owner(&store, "other@example.com").await;
    assert_ne!(tenant.external_id, other.external_id);
    let all = store.all_tenants().await.unwrap();
    assert_eq!(all.len(), 2);
    assert!(
        all.iter()
            .all(|t| t.members == 1 && t.connection_status.is_none())
    );
}

async fn signup_with_taken_email_creates_no_tenant(store: Arc<dyn Store>) {
    tenant_with_owner(&store, "ana@example.com").await;
    assert!(
        store
            .create_user_with_tenant(new_user("ana@example.com"), "Second")
            .await
            .is_err()
    );
    assert_eq!(store.all_tenants().await.unwrap().len(), 1);
}

async fn members_are_managed_and_the_last_owner_is_kept(store: Arc<dyn Store>) {
    let (owner, tenant) = tenant_with_owner(&store, "owner@example.com").await;
    let bob = store
        .create_user(new_user("bob@example.com"))
        .await
        .unwrap();
    store
        .put_member(tenant.id, bob.id, Role::Viewer)
        .await
        .unwrap();
    store
        .put_member(tenant.id, bob.id, Role::Admin)
        .await
        .unwrap();
    let members = store.members(tenant.id).await.unwrap();
    let roles: Vec<(String, Role)> = members.iter().map(|m| (m.email.clone(), m.role)).collect();
    assert_eq!(
        roles,
        vec![
            ("owner@example.com".into(), Role::Owner),
            ("bob@example.com".into(), Role::Admin)
        ]
    );

    assert!(matches!(
        store.remove_member(tenant.id, owner.id).await,
        Err(StoreError::LastOwner)
    ));
    assert!(matches!(
        store.put_member(tenant.id, owner.id, Role::Viewer).await,
        Err(StoreError::LastOwner)
    ));
    store
        .put_member(tenant.id, bob.id, Role::Owner)
        .await
        .unwrap();
    store
        .put_member(tenant.id, owner.id, Role::Viewer)
        .await
        .unwrap();
    store.remove_member(tenant.id, owner.id).await.unwrap();
    assert_eq!(store.role_in(tenant.id, owner.id).await.unwrap(), None);
    assert!(matches!(
        store.remove_member(tenant.id, owner.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store
            .put_member(tenant.id, UserId::new(), Role::Viewer)
            .await,
        Err(StoreError::NotFound { .. })
    ));
}

/// Two owners demoting each other at the same moment must not leave the tenant without one.
async fn the_last_owner_holds_under_concurrent_demotion(store: Arc<dyn Store>) {
    for round in 0..8 {
        let (ana, tenant) = tenant_with_owner(&store, &format!("ana{round}@example.com")).await;
        let bob = store
            .create_user(new_user(&format!("bob{round}@example.com")))
            .await
            .unwrap();
        store
            .put_member(tenant.id, bob.id, Role::Owner)
            .await
            .unwrap();
        let (a, b) = (store.clone(), store.clone());
        let (first, second) = tokio::join!(
            a.put_member(tenant.id, bob.id, Role::Admin),
            b.put_member(tenant.id, ana.id, Role::Admin),
        );
        let owners = store
            .members(tenant.id)
            .await
            .unwrap()
            .into_iter()
            .filter(|m| m.role == Role::Owner)
            .count();
        assert_eq!(owners, 1, "round {round}: {first:?} {second:?}");
        assert!(
            matches!(
                (&first, &second),
                (Ok(_), Err(StoreError::LastOwner)) | (Err(StoreError::LastOwner), Ok(_))
            ),
            "round {round}: {first:?} {second:?}"
        );
    }
}

fn invitation(
    email: &str,
    role: Role,
    hash: &str,
    by: UserId,
    expires: DateTime<Utc>,
) -> NewInvitation {
    NewInvitation {
        email: email.into(),
        role,
        token_hash: hash.repeat(32),
        invited_by: by,
        created_at: at(1, 0),
        expires_at: expires,
    }
}

/// A membership exists only once the invited address's own account accepts a pending
/// invitation, once; invitations are listed and revoked per tenant.
async fn invitations_become_memberships_only_for_the_invited_address_once(store: Arc<dyn Store>) {
    let (owner, tenant) = tenant_with_owner(&store, "owner@victim.com").await;
    let (other_owner, other) = tenant_with_owner(&store, "owner@elsewhere.com").await;
    let cfo = store.create_user(new_user("cfo@victim.com")).await.unwrap();
    let mallory = store
        .create_user(new_user("mallory@example.com"))
        .await
        .unwrap();
    let invited = store
        .create_invitation(
            tenant.id,
            invitation("cfo@victim.com", Role::Admin, "a1", owner.id, at(5, 0)),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            invited.tenant_id,
            invited.email.as_str(),
            invited.role,
            invited.invited_by
        ),
        (tenant.id, "cfo@victim.com", Role::Admin, Some(owner.id))
    );
    assert_eq!(
        store
            .pending_invitations(tenant.id, at(2, 0))
            .await
            .unwrap(),
        vec![invited.clone()]
    );
    assert!(
        store
            .pending_invitations(other.id, at(2, 0))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.invitation_by_token(&"a1".repeat(32)).await.unwrap(),
        Some(invited.clone())
    );
    assert_eq!(
        store.invitation_by_token(&"ff".repeat(32)).await.unwrap(),
        None
    );

    // Another tenant can neither revoke nor accept it through its own id.
    assert!(
        !store
            .revoke_invitation(other.id, invited.id, at(2, 0))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .accept_invitation(other.id, invited.id, cfo.id, at(2, 0))
            .await
            .unwrap(),
        InvitationAccepted::NotPending
    );
    assert_eq!(store.role_in(other.id, cfo.id).await.unwrap(), None);
    // Another address's account cannot accept it.
    assert_eq!(
        store
            .accept_invitation(tenant.id, invited.id, mallory.id, at(2, 0))
            .await
            .unwrap(),
        InvitationAccepted::OtherEmail
    );
    assert_eq!(store.role_in(tenant.id, mallory.id).await.unwrap(), None);

    // The invited account accepts, once.
    assert_eq!(
        store
            .accept_invitation(tenant.id, invited.id, cfo.id, at(2, 0))
            .await
            .unwrap(),
        InvitationAccepted::Joined
    );
    assert_eq!(
        store.role_in(tenant.id, cfo.id).await.unwrap(),
        Some(Role::Admin)
    );
    assert_eq!(
        store
            .accept_invitation(tenant.id, invited.id, cfo.id, at(2, 1))
            .await
            .unwrap(),
        InvitationAccepted::NotPending
    );
    let used = store
        .invitation_by_token(&"a1".repeat(32))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (used.accepted_at, used.state(at(2, 1))),
        (Some(at(2, 0)), InvitationState::Accepted)
    );
    assert!(
        store
            .pending_invitations(tenant.id, at(2, 1))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !store
            .revoke_invitation(tenant.id, invited.id, at(2, 2))
            .await
            .unwrap()
    );

    // Expired: not listed, not accepted.
    let late = store
        .create_user(new_user("late@victim.com"))
        .await
        .unwrap();
    let expiring = store
        .create_invitation(
            tenant.id,
            invitation("late@victim.com", Role::Viewer, "b1", owner.id, at(3, 0)),
        )
        .await
        .unwrap();
    assert_eq!(expiring.state(at(3, 0)), InvitationState::Expired);
    assert!(
        store
            .pending_invitations(tenant.id, at(3, 0))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .accept_invitation(tenant.id, expiring.id, late.id, at(3, 0))
            .await
            .unwrap(),
        InvitationAccepted::NotPending
    );

    // Revoked: once, by its tenant; then not accepted.
    let revoked = store
        .create_invitation(
            tenant.id,
            invitation("late@victim.com", Role::Viewer, "c1", owner.id, at(9, 0)),
        )
        .await
        .unwrap();
    assert!(
        store
            .revoke_invitation(tenant.id, revoked.id, at(4, 0))
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke_invitation(tenant.id, revoked.id, at(4, 1))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .invitation_by_token(&"c1".repeat(32))
            .await
            .unwrap()
            .unwrap()
            .state(at(4, 1)),
        InvitationState::Revoked
    );
    assert_eq!(
        store
            .accept_invitation(tenant.id, revoked.id, late.id, at(4, 2))
            .await
            .unwrap(),
        InvitationAccepted::NotPending
    );

    // A new invitation of an address replaces its pending one.
    let first = store
        .create_invitation(
            tenant.id,
            invitation("late@victim.com", Role::Viewer, "d1", owner.id, at(9, 0)),
        )
        .await
        .unwrap();
    let second = store
        .create_invitation(
            tenant.id,
            invitation("late@victim.com", Role::Admin, "d2", owner.id, at(9, 0)),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .pending_invitations(tenant.id, at(5, 0))
            .await
            .unwrap(),
        vec![second.clone()]
    );
    assert_eq!(
        store
            .accept_invitation(tenant.id, first.id, late.id, at(5, 0))
            .await
            .unwrap(),
        InvitationAccepted::NotPending
    );
    // The same address invited by another tenant is untouched by that replacement.
    let elsewhere = store
        .create_invitation(
            other.id,
            invitation(
                "late@victim.com",
                Role::Viewer,
                "e1",
                other_owner.id,
                at(9, 0),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .pending_invitations(tenant.id, at(5, 0))
            .await
            .unwrap(),
        vec![second.clone()]
    );
    assert_eq!(
        store.pending_invitations(other.id, at(5, 0)).await.unwrap(),
        vec![elsewhere]
    );

    // A member already: nothing changes, the invitation stays pending.
    let again = store
        .create_invitation(
            tenant.id,
            invitation("cfo@victim.com", Role::Viewer, "f1", owner.id, at(9, 0)),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .accept_invitation(tenant.id, again.id, cfo.id, at(5, 0))
            .await
            .unwrap(),
        InvitationAccepted::AlreadyMember
    );
    assert_eq!(
        store.role_in(tenant.id, cfo.id).await.unwrap(),
        Some(Role::Admin)
    );

    // Two acceptances at once: one joins.
    let (a, b) = (store.clone(), store.clone());
    let (one, two) = tokio::join!(
        a.accept_invitation(tenant.id, second.id, late.id, at(5, 0)),
        b.accept_invitation(tenant.id, second.id, late.id, at(5, 0)),
    );
    let mut outcomes = [one.unwrap(), two.unwrap()];
    outcomes.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(
        outcomes,
        [InvitationAccepted::Joined, InvitationAccepted::NotPending]
    );
    assert_eq!(
        store.role_in(tenant.id, late.id).await.unwrap(),
        Some(Role::Admin)
    );
}

/// A password change keeps only the session making it; a reset token works once, before it
/// expires, and revokes every token. Another user's tokens are untouched.
async fn password_changes_and_resets_revoke_tokens_and_spend_reset_tokens(store: Arc<dyn Store>) {
    let (ana, tenant) = tenant_with_owner(&store, "ana@example.com").await;
    let (bob, _) = tenant_with_owner(&store, "bob@example.com").await;
    let token = |hash: &str, user: UserId, name: Option<&str>| NewToken {
        token_hash: hash.repeat(32),
        user_id: user,
        tenant_id: Some(tenant.id),
        created_at: at(1, 0),
        expires_at: at(20, 0),
        name: name.map(str::to_string),
    };
    for t in [
        token("a1", ana.id, None),
        token("a2", ana.id, None),
        token("a3", ana.id, Some("CI")),
        token("b1", bob.id, None),
    ] {
        store.create_token(t).await.unwrap();
    }
    let reset = |hash: &str, user: UserId, expires: DateTime<Utc>| NewPasswordReset {
        token_hash: hash.repeat(32),
        user_id: user,
        created_at: at(1, 0),
        expires_at: expires,
    };
    store
        .create_password_reset(reset("r0", ana.id, at(9, 0)))
        .await
        .unwrap();
    let revoked = |hash: &'static str| {
        let store = store.clone();
        async move {
            store
                .token(&hash.repeat(32))
                .await
                .unwrap()
                .unwrap()
                .revoked_at
                .is_some()
        }
    };
    let hash_of = |email: &'static str| {
        let store = store.clone();
        async move { store.credentials_by_email(email).await.unwrap().unwrap().1 }
    };

    assert_eq!(
        store
            .change_password(ana.id, "changed", Some(&"a1".repeat(32)), at(2, 0))
            .await
            .unwrap(),
        2
    );
    assert_eq!(hash_of("ana@example.com").await, "changed");
    assert_eq!(
        (
            revoked("a1").await,
            revoked("a2").await,
            revoked("a3").await,
            revoked("b1").await
        ),
        (false, true, true, false)
    );
    // A reset token sent before the change is spent by it.
    assert_eq!(
        store
            .reset_password(&"r0".repeat(32), "stale", at(2, 1))
            .await
            .unwrap(),
        None
    );
    assert_eq!(hash_of("ana@example.com").await, "changed");

    store
        .create_password_reset(reset("r1", ana.id, at(9, 0)))
        .await
        .unwrap();
    store
        .create_password_reset(reset("r2", ana.id, at(9, 0)))
        .await
        .unwrap();
    store
        .create_password_reset(reset("r3", ana.id, at(3, 0)))
        .await
        .unwrap();
    assert_eq!(
        store
            .reset_password(&"r3".repeat(32), "late", at(3, 0))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .reset_password(&"zz".repeat(32), "unknown", at(3, 0))
            .await
            .unwrap(),
        None
    );
    assert_eq!(hash_of("ana@example.com").await, "changed");
    assert_eq!(
        store
            .reset_password(&"r1".repeat(32), "reset", at(3, 0))
            .await
            .unwrap(),
        Some(ana.id)
    );
    assert_eq!(hash_of("ana@example.com").await, "reset");
    assert!(revoked("a1").await, "a reset revokes every session");
    assert!(!revoked("b1").await);
    assert_eq!(
        hash_of("bob@example.com").await,
        new_user("x").password_hash
    );
    // Used once, and the other pending token of the user went with it.
    assert_eq!(
        store
            .reset_password(&"r1".repeat(32), "again", at(3, 1))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .reset_password(&"r2".repeat(32), "again", at(3, 1))
            .await
            .unwrap(),
        None
    );
    assert_eq!(hash_of("ana@example.com").await, "reset");
}

async fn tokens_are_found_by_hash_and_revoked_once(store: Arc<dyn Store>) {
    let (user, tenant) = tenant_with_owner(&store, "ana@example.com").await;
    store
        .create_token(NewToken {
            token_hash: "ab".repeat(32),
            user_id: user.id,
            tenant_id: Some(tenant.id),
            created_at: at(1, 0),
            expires_at: at(5, 0),
            name: None,
        })
        .await
        .unwrap();
    let token = store.token(&"ab".repeat(32)).await.unwrap().unwrap();
    assert_eq!(token.user, user);
    assert_eq!(token.tenant_id, Some(tenant.id));
    assert_eq!(token.expires_at, at(5, 0));
    assert_eq!(token.revoked_at, None);
    assert!(
        store
            .revoke_token(&"ab".repeat(32), at(2, 0))
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke_token(&"ab".repeat(32), at(3, 0))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .token(&"ab".repeat(32))
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(at(2, 0))
    );
    assert!(store.token(&"cd".repeat(32)).await.unwrap().is_none());
}

async fn tokens_are_listed_per_tenant_or_all_and_revoked_by_tenant_or_everywhere(
    store: Arc<dyn Store>,
) {
    let (user, first) = tenant_with_owner(&store, "ana@example.com").await;
    let (_, second) = tenant_with_owner(&store, "bob@example.com").await;
    store
        .put_member(second.id, user.id, Role::Viewer)
        .await
        .unwrap();
    let (_, bystander_tenant) = tenant_with_owner(&store, "cy@example.com").await;
    let token = |hash: &str, tenant: Option<TenantId>, name: Option<&str>, minute: u32| NewToken {
        token_hash: hash.repeat(32),
        user_id: user.id,
        tenant_id: tenant,
        created_at: at(1, minute),
        expires_at: at(9, 0),
        name: name.map(str::to_string),
    };
    for t in [
        token("a1", Some(first.id), Some("ci in first"), 1),
        token("a2", Some(second.id), Some("ci in second"), 2),
        token("a3", Some(first.id), None, 3),
        token("a4", None, None, 4),
    ] {
        store.create_token(t).await.unwrap();
    }
    let hashes = |tokens: Vec<cloudspend_store::TokenSummary>| {
        tokens
            .into_iter()
            .map(|t| (t.token_hash[..2].to_string(), t.tenant_id))
            .collect::<Vec<_>>()
    };
    let listed = hashes(
        store
            .tokens_of(user.id, Some(first.id), at(2, 0))
            .await
            .unwrap(),
    );
    assert_eq!(
        listed,
        [
            ("a4".to_string(), None),
            ("a3".to_string(), Some(first.id)),
            ("a1".to_string(), Some(first.id))
        ]
    );
    let all = hashes(store.tokens_of(user.id, None, at(2, 0)).await.unwrap());
    assert_eq!(all.len(), 4, "{all:?}");
    assert!(all.contains(&("a2".to_string(), Some(second.id))));
    assert!(
        store
            .tokens_of(user.id, Some(bystander_tenant.id), at(2, 0))
            .await
            .unwrap()
            .iter()
            .all(|t| t.tenant_id.is_none()),
        "another tenant's listing holds only tenant-less sessions"
    );
    // Leaving the first tenant revokes the API token made there, not its login session.
    assert_eq!(
        store
            .revoke_tokens_of(user.id, Some(first.id), at(2, 0))
            .await
            .unwrap(),
        1
    );
    assert!(
        store
            .token(&"a1".repeat(32))
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert!(
        store
            .token(&"a3".repeat(32))
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none()
    );
    // Logging out everywhere revokes the rest.
    assert_eq!(
        store
            .revoke_tokens_of(user.id, None, at(3, 0))
            .await
            .unwrap(),
        3
    );
    assert!(
        store
            .tokens_of(user.id, None, at(4, 0))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .revoke_tokens_of(user.id, None, at(4, 0))
            .await
            .unwrap(),
        0
    );
}

async fn cost_upserts_are_idempotent_and_replace_estimates(store: Arc<dyn Store>) {
    let (_, a) = tenant_with_owner(&store, "a@example.com").await;
    let (_, b) = tenant_with_owner(&store, "b@example.com").await;
    let first = vec![
        ce(1, "EC2", "10.123456789", false),
        ce(2, "EC2", "11.50", true),
        ce(2, "Credits", "-3.25", false),
    ];
    assert_eq!(store.upsert_daily_costs(a.id, &first).await.unwrap(), 3);
    // The same rows again change nothing, and say so.
    assert_eq!(store.upsert_daily_costs(a.id, &first).await.unwrap(), 0);
    let rows = store.daily_costs(a.id, day(1), day(3)).await.unwrap();
    assert_eq!(rows.len(), 3);
    let total: Money = rows.iter().map(|r| r.unblended).sum();
    assert_eq!(total, money("18.373456789"));

    // An estimate turning final with the same amount is still a change.
    assert_eq!(
        store
            .upsert_daily_costs(a.id, &[ce(2, "EC2", "11.50", false)])
            .await
            .unwrap(),
        1
    );
    let rows = store.daily_costs(a.id, day(2), day(3)).await.unwrap();
    let ec2 = rows.iter().find(|r| r.service == "EC2").unwrap();
    assert_eq!((ec2.unblended, ec2.estimated), (money("11.50"), false));

    store
        .upsert_daily_costs(a.id, &[ce(2, "EC2", "12.00", false)])
        .await
        .unwrap();
    let rows = store.daily_costs(a.id, day(2), day(3)).await.unwrap();
    let ec2 = rows.iter().find(|r| r.service == "EC2").unwrap();
    assert_eq!((ec2.unblended, ec2.estimated), (money("12.00"), false));
    assert_eq!(
        rows.iter()
            .find(|r| r.service == "Credits")
            .unwrap()
            .unblended,
        money("-3.25")
    );

    assert!(
        store
            .daily_costs(b.id, day(1), day(31))
            .await
            .unwrap()
            .is_empty(),
        "tenant B sees tenant A's costs"
    );
}

async fn cost_batches_collapse_duplicate_keys_to_the_last(store: Arc<dyn Store>) {
    let (_, a) = tenant_with_owner(&store, "a@example.com").await;
    store
        .upsert_daily_costs(a.id, &[ce(1, "EC2", "1", true), ce(1, "EC2", "2", false)])
        .await
        .unwrap();
    let rows = store.daily_costs(a.id, day(1), day(2)).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].unblended, rows[0].estimated), (money("2"), false));
}

async fn replacing_a_cost_window_touches_only_that_window_source_and_tenant(store: Arc<dyn Store>) {
    let (_, a) = tenant_with_owner(&store, "a@example.com").await;
    let (_, b) = tenant_with_owner(&store, "b@example.com").await;
    let mut cur = ce(2, "S3", "4", false);
    cur.source = CostSource::Cur;
    cur.resource_id = "bucket-1".into();
    store
        .upsert_daily_costs(
            a.id,
            &[
                ce(1, "EC2", "1", false),
                ce(2, "EC2", "2", true),
                ce(2, "RDS", "3", true),
                cur.clone(),
            ],
        )
        .await
        .unwrap();
    store
        .upsert_daily_costs(b.id, &[ce(2, "EC2", "9", false)])
        .await
        .unwrap();

    let written = store
        .replace_daily_costs(
            a.id,
            CostSource::Ce,
            day(2),
            day(3),
            &[ce(2, "EC2", "2.5", false)],
        )
        .await
        .unwrap();
    assert_eq!(written, 1);
    let rows = store.daily_costs(a.id, day(1), day(3)).await.unwrap();
    let seen: Vec<(NaiveDate, &str, &str, Money)> = rows
        .iter()
        .map(|r| (r.day, r.source.as_str(), r.service.as_str(), r.unblended))
        .collect();
    assert_eq!(
        seen,
        vec![
            (day(1), "ce", "EC2", money("1")),
            (day(2), "ce", "EC2", money("2.5")),
            (day(2), "cur", "S3", money("4"))
        ]
    );
    assert_eq!(
        store.daily_costs(b.id, day(1), day(3)).await.unwrap()[0].unblended,
        money("9")
    );
}

async fn large_cost_batches_are_written_in_chunks(store: Arc<dyn Store>) {
    let (_, a) = tenant_with_owner(&store, "a@example.com").await;
    let rows: Vec<CostRecord> = (0..2500)
        .map(|i| {
            ce(
                1 + (i % 28) as u32,
                &format!("svc-{i}"),
                "0.000000001",
                false,
            )
        })
        .collect();
    assert_eq!(store.upsert_daily_costs(a.id, &rows).await.unwrap(), 2500);
    let stored = store.daily_costs(a.id, day(1), day(31)).await.unwrap();
    assert_eq!(stored.len(), 2500);
    assert_eq!(
        stored.iter().map(|r| r.unblended).sum::<Money>(),
        money("0.0000025")
    );
}

/// Big enough for PostgreSQL's COPY path (from 5,000 rows), which must give exactly what the
/// multi-row INSERT path gives for small writes: same rows, same upsert and last-wins, same
/// rollups, values with COPY's special characters kept as they are.
async fn bulk_cost_writes_match_small_ones(store: Arc<dyn Store>) {
    let (_, bulk) = tenant_with_owner(&store, "bulk@example.com").await;
    let (_, small) = tenant_with_owner(&store, "small@example.com").await;
    let record = |i: usize, amount: i64| {
        let mut r = ce(
            1 + (i % 28) as u32,
            ["EC2", "S3\tx", "a\\b", "line\nbreak", "\\N"][i % 5],
            "0",
            i.is_multiple_of(7),
        );
        // Days 27 and 28 have Cost Explorer rows only; the others both sources.
        r.source = if i.is_multiple_of(3) || r.day >= day(27) {
            CostSource::Ce
        } else {
            CostSource::Cur
        };
        r.resource_id = format!("res-{i}");
        r.region = ["us-east-1", "eu-west-1", ""][i % 3].into();
        r.unblended = Money::from_nanos(amount);
        r.amortized = Money::from_nanos(-amount);
        r.usage_amount = (!i.is_multiple_of(4)).then(|| format!("{i}.5"));
        r
    };
    let first: Vec<CostRecord> = (0..6000).map(|i| record(i, i as i64 + 1)).collect();
    // Out of key order, existing keys with new values, and one key twice (the last wins).
    let mut second: Vec<CostRecord> = (3000..9000)
        .rev()
        .map(|i| record(i, 7 * i as i64))
        .collect();
    second.push(record(8999, 42));

    for batch in [&first, &second] {
        let written = store.upsert_daily_costs(bulk.id, batch).await.unwrap();
        let mut small_written = 0;
        for chunk in batch.chunks(700) {
            small_written += store.upsert_daily_costs(small.id, chunk).await.unwrap();
        }
        assert_eq!(written, 6000);
        // The small writes saw the duplicate in different chunks: one upsert more.
        assert!(small_written == 6000 || small_written == 6001);
        // The first batch goes into empty days, whose rollups PostgreSQL computes from the
        // rows in hand; the second refreshes them in SQL. Both must agree with the small path.
        for dimension in RollupDimension::ALL {
            assert_eq!(
                store
                    .cost_rollup_days(bulk.id, dimension, day(1), day(31), None)
                    .await
                    .unwrap(),
                store
                    .cost_rollup_days(small.id, dimension, day(1), day(31), None)
                    .await
                    .unwrap(),
                "{dimension:?} rollups"
            );
        }
    }
    let rows = store.daily_costs(bulk.id, day(1), day(31)).await.unwrap();
    assert_eq!(rows.len(), 9000);
    assert_eq!(
        rows,
        store.daily_costs(small.id, day(1), day(31)).await.unwrap()
    );
    let last = rows.iter().find(|r| r.resource_id == "res-8999").unwrap();
    assert_eq!(last.unblended, Money::from_nanos(42));
    let kept = rows.iter().find(|r| r.resource_id == "res-10").unwrap();
    assert_eq!(
        (kept.service.as_str(), kept.unblended),
        ("EC2", Money::from_nanos(11))
    );
    assert!(
        rows.iter()
            .any(|r| r.service == "line\nbreak" && r.usage_amount.is_none())
    );
    assert!(
        rows.iter()
            .any(|r| r.service == "\\N" && r.usage_amount.is_some())
    );

    // Replacing a window through the same path leaves only the new rows of that source.
    let replacement: Vec<CostRecord> = (0..12_000)
        .map(|i| record(3 * i, 1))
        .filter(|r| r.day < day(15))
        .collect();
    let written = store
        .replace_daily_costs(bulk.id, CostSource::Ce, day(1), day(15), &replacement)
        .await
        .unwrap();
    assert_eq!(written, replacement.len() as u64);
    let ce_rows: Vec<CostRecord> = store
        .daily_costs(bulk.id, day(1), day(15))
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.source == CostSource::Ce)
        .collect();
    assert_eq!(ce_rows.len(), replacement.len());
    assert!(ce_rows.iter().all(|r| r.unblended == Money::from_nanos(1)));
}

async fn instances_upsert_by_account_region_and_id(store: Arc<dyn Store>) {
    let (_, a) = tenant_with_owner(&store, "a@example.com").await;
    let (_, b) = tenant_with_owner(&store, "b@example.com").await;
    store
        .upsert_instances(
            a.id,
            &[
                instance("i-1", "us-east-1", "running"),
                instance("i-2", "eu-west-1", "running"),
            ],
        )
        .await
        .unwrap();
    store
        .upsert_instances(a.id, &[instance("i-1", "us-east-1", "stopped")])
        .await
        .unwrap();
    let got = store.instances(a.id).await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].instance_id, "i-2");
    assert_eq!(got[1].state, "stopped");
    assert_eq!(got[1].name(), Some("web-i-1"));
    assert_eq!(got[1].volume_ids, ["vol-i-1-root", "vol-i-1-data"]);
    assert_eq!(got[1].state_since, Some(at(1, 30)));
    assert_eq!(got[0].state_since, None);
    // Microsecond precision on both backends.
    assert_eq!(
        got[1].last_seen_at,
        at(2, 0) + Duration::microseconds(123_456)
    );
    assert!(store.instances(b.id).await.unwrap().is_empty());
}

async fn syncing_an_inventory_marks_vanished_instances_terminated(store: Arc<dyn Store>) {
    let (_, a) = tenant_with_owner(&store, "a@example.com").await;
    let regions = vec!["us-east-1".to_string()];
    store
        .upsert_instances(
            a.id,
            &[
                instance("i-1", "us-east-1", "running"),
                instance("i-2", "us-east-1", "running"),
                instance("i-3", "eu-west-1", "running"),
            ],
        )
        .await
        .unwrap();
    store
        .sync_instances(
            a.id,
            "111111111111",
            &regions,
            &[instance("i-2", "us-east-1", "stopped")],
        )
        .await
        .unwrap();
    let states: Vec<(String, String)> = store
        .instances(a.id)
        .await
        .unwrap()
        .into_iter()
        .map(|i| (i.instance_id, i.state))
        .collect();
    assert_eq!(
        states,
        vec![
            ("i-3".into(), "running".into()),
            ("i-1".into(), "terminated".into()),
            ("i-2".into(), "stopped".into())
        ],
        "only the synced region is reconciled"
    );
}

async fn metric_points_are_ranged_ordered_and_scoped(store: Arc<dyn Store>) {
    let (_, a) = tenant_with_owner(&store, "a@example.com").await;
    let (_, b) = tenant_with_owner(&store, "b@example.com").await;
    store
        .upsert_metric_points(
            a.id,
            &[
                cpu("i-1", 10, 5.0),
                cpu("i-1", 0, 1.5),
                cpu("i-1", 5, 2.0),
                cpu("i-2", 0, 9.0),
            ],
        )
        .await
        .unwrap();
    store
        .upsert_metric_points(a.id, &[cpu("i-1", 5, 3.0)])
        .await
        .unwrap();
    let got = store
        .metric_points(a.id, "i-1", "CPUUtilization", at(3, 0), at(3, 10))
        .await
        .unwrap();
    let values: Vec<(DateTime<Utc>, f64)> = got.iter().map(|p| (p.timestamp, p.average)).collect();
    assert_eq!(values, vec![(at(3, 0), 1.5), (at(3, 5), 3.0)]);
    assert!(
        store
            .metric_points(b.id, "i-1", "CPUUtilization", at(0, 0), at(23, 0))
            .await
            .unwrap()
            .is_empty()
    );
    // Instances with no CPU yet are the ones a CloudWatch run must backfill.
    store
        .upsert_instances(
            a.id,
            &[
                instance("i-1", "us-east-1", "running"),
                instance("i-3", "us-east-1", "running"),
                instance("i-4", "us-east-1", "stopped"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .instances_missing_metric(a.id, "CPUUtilization", at(0, 0))
            .await
            .unwrap(),
        vec!["i-3".to_string()]
    );
    assert_eq!(
        store
            .instances_missing_metric(a.id, "CPUUtilization", at(4, 0))
            .await
            .unwrap(),
        vec!["i-1".to_string(), "i-3".to_string()],
        "points older than `since` do not count"
    );
    assert!(
        store
            .instances_missing_metric(b.id, "CPUUtilization", at(0, 0))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn runs_record_outcomes_per_tenant(store: Arc<dyn Store>) {
    let (_, a) = tenant_with_owner(&store, "a@example.com").await;
    let (_, b) = tenant_with_owner(&store, "b@example.com").await;
    let run = NewRun {
        tenant_id: a.id,
        collector: "costexplorer".into(),
        window_start: at(0, 0),
        window_end: at(1, 0),
        started_at: at(1, 0),
    };
    let id = store.start_run(run).await.unwrap();
    let outcome = RunOutcome {
        status: RunStatus::Failed,
        finished_at: at(1, 5),
        rows_written: 0,
        aws_requests: 3,
        ce_requests: 3,
        retries: 2,
        error: Some("ThrottlingException".into()),
    };
    assert!(matches!(
        store.finish_run(b.id, id, outcome.clone()).await,
        Err(StoreError::NotFound { .. })
    ));
    store.finish_run(a.id, id, outcome).await.unwrap();
    let runs = store.runs(a.id, 10).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (runs[0].status, runs[0].ce_requests, runs[0].retries),
        (RunStatus::Failed, 3, 2)
    );
    assert_eq!(runs[0].error.as_deref(), Some("ThrottlingException"));
    assert!(store.runs(b.id, 10).await.unwrap().is_empty());
}

async fn jobs_are_leased_once_until_the_lease_expires(store: Arc<dyn Store>) {
    let (_, a) = tenant_with_owner(&store, "a@example.com").await;
    for collector in ["ec2", "costexplorer"] {
        store
            .ensure_job(NewJob {
                tenant_id: a.id,
                collector: collector.into(),
                interval_seconds: 3600,
                next_run_at: at(1, 0),
            })
            .await
            .unwrap();
    }
    // ensure_job keeps an existing schedule.
    store
        .ensure_job(NewJob {
            tenant_id: a.id,
            collector: "ec2".into(),
            interval_seconds: 60,
            next_run_at: at(9, 0),
        })
        .await
        .unwrap();
    let lease = std::time::Duration::from_secs(600);
    assert!(
        store
            .lease_due_jobs("r1", at(0, 59), lease, 10)
            .await
            .unwrap()
            .is_empty(),
        "not due yet"
    );
    let leased = store
        .lease_due_jobs("r1", at(1, 0), lease, 10)
        .await
        .unwrap();
    assert_eq!(leased.len(), 2);
    assert!(
        leased
            .iter()
            .all(|j| j.lease_owner.as_deref() == Some("r1") && j.interval_seconds == 3600)
    );
    assert!(
        store
            .lease_due_jobs("r2", at(1, 5), lease, 10)
            .await
            .unwrap()
            .is_empty(),
        "double lease"
    );

    // r1 went away; after its lease runs out r2 takes the jobs over.
    let taken = store
        .lease_due_jobs("r2", at(1, 11), lease, 1)
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    assert!(
        !store
            .complete_job(a.id, &taken[0].collector, "r1", at(2, 0))
            .await
            .unwrap(),
        "stale owner completed"
    );
    assert!(
        store
            .complete_job(a.id, &taken[0].collector, "r2", at(2, 11))
            .await
            .unwrap()
    );
    let jobs = store.jobs(a.id).await.unwrap();
    let done = jobs
        .iter()
        .find(|j| j.collector == taken[0].collector)
        .unwrap();
    assert_eq!(
        (done.next_run_at, done.lease_owner.clone()),
        (at(2, 11), None)
    );

    assert!(
        store
            .run_job_now(a.id, &taken[0].collector, at(1, 30))
            .await
            .unwrap()
    );
    let again = store
        .lease_due_jobs("r3", at(1, 30), lease, 10)
        .await
        .unwrap();
    assert!(again.iter().any(|j| j.collector == taken[0].collector));
    assert!(
        !store
            .run_job_now(TenantId::new(), "ec2", at(1, 30))
            .await
            .unwrap()
    );
    assert_eq!(store.delete_jobs(TenantId::new()).await.unwrap(), 0);
    assert_eq!(store.delete_jobs(a.id).await.unwrap(), 2);
    assert!(store.jobs(a.id).await.unwrap().is_empty());
}

async fn audit_entries_are_listed_per_tenant(store: Arc<dyn Store>) {
    let (user, a) = tenant_with_owner(&store, "a@example.com").await;
    let (_, b) = tenant_with_owner(&store, "b@example.com").await;
    store
        .record_audit(NewAuditEntry {
            tenant_id: Some(a.id),
            user_id: Some(user.id),
            user_email: Some(user.email.clone()),
            action: "member.add".into(),
            status: AuditStatus::Ok,
            detail: serde_json::json!({"email": "x@example.com", "role": "viewer"}),
            at: at(1, 0),
        })
        .await
        .unwrap();
    let log = store.audit_log(a.id, 10).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].action, "member.add");
    assert_eq!(log[0].detail["role"], "viewer");
    assert!(store.audit_log(b.id, 10).await.unwrap().is_empty());
    // The largest f64 is stored exactly by PostgreSQL and read back as a 309-digit integer
    // that f64 cannot hold: the entry is still listed (its detail as text).
    store
        .record_audit(NewAuditEntry {
            tenant_id: Some(a.id),
            user_id: Some(user.id),
            user_email: Some(user.email.clone()),
            action: "alarm.create".into(),
            status: AuditStatus::Ok,
            detail: serde_json::json!({"threshold": f64::MAX}),
            at: at(2, 0),
        })
        .await
        .unwrap();
    assert_eq!(store.audit_log(a.id, 10).await.unwrap().len(), 2);
}

fn connection(
    auth: cloudspend_core::connection::ConnectionAuth,
) -> cloudspend_core::connection::AwsConnection {
    use cloudspend_core::connection::*;
    AwsConnection {
        display_name: "Production".into(),
        account_id: "123456789012".into(),
        account_type: AccountType::Organization,
        auth,
        regions: vec!["eu-west-1".into(), "us-east-1".into()],
        cur: CurLocation {
            athena_database: Some("cur_db".into()),
            athena_table: Some("cur_table".into()),
            athena_workgroup: Some("primary".into()),
            ..Default::default()
        },
        status: ConnectionStatus::Degraded,
        last_verified_at: Some(at(1, 0)),
        last_error: None,
        warnings: vec!["Athena table not visible".into()],
        created_at: at(1, 0),
        updated_at: at(1, 0),
    }
}

async fn connections_are_one_per_tenant_and_scoped(store: Arc<dyn Store>) {
    use cloudspend_core::connection::*;
    let (_, a) = tenant_with_owner(&store, "a@example.com").await;
    let (_, b) = tenant_with_owner(&store, "b@example.com").await;
    assert!(store.connection(a.id).await.unwrap().is_none());
    let role = connection(ConnectionAuth::Role {
        role_arn: "arn:aws:iam::123456789012:role/CloudSpend".into(),
    });
    store.put_connection(a.id, &role).await.unwrap();
    assert_eq!(store.connection(a.id).await.unwrap(), Some(role.clone()));
    assert!(
        store.connection(b.id).await.unwrap().is_none(),
        "tenant B sees tenant A's connection"
    );

    let keys = connection(ConnectionAuth::AccessKey {
        access_key_id: "AKIAEXAMPLE".into(),
        secret_ciphertext: "bm9uY2U=".into(),
    });
    store.put_connection(a.id, &keys).await.unwrap();
    assert_eq!(store.connection(a.id).await.unwrap(), Some(keys));
    assert_eq!(store.connected_tenants().await.unwrap(), vec![a.id]);

    let update = ConnectionStatusUpdate {
        status: ConnectionStatus::Failed,
        verified_at: None,
        last_error: Some("AccessDenied".into()),
        warnings: vec![],
        at: at(2, 0),
    };
    assert!(
        store
            .update_connection_status(a.id, update.clone())
            .await
            .unwrap()
    );
    assert!(!store.update_connection_status(b.id, update).await.unwrap());
    let stored = store.connection(a.id).await.unwrap().unwrap();
    assert_eq!(
        (
            stored.status,
            stored.last_error.as_deref(),
            stored.last_verified_at
        ),
        (
            ConnectionStatus::Failed,
            Some("AccessDenied"),
            Some(at(1, 0))
        )
    );
    assert_eq!(
        store
            .all_tenants()
            .await
            .unwrap()
            .iter()
            .find(|t| t.tenant.id == a.id)
            .unwrap()
            .connection_status
            .as_deref(),
        Some("failed")
    );

    assert!(!store.delete_connection(b.id).await.unwrap());
    assert!(store.delete_connection(a.id).await.unwrap());
    assert!(store.connection(a.id).await.unwrap().is_none());

    let before = store.tenant(a.id).await.unwrap().unwrap().external_id;
    let rotated = store.rotate_external_id(a.id).await.unwrap();
    assert_ne!(before, rotated);
    assert_eq!(
        store.tenant(a.id).await.unwrap().unwrap().external_id,
        rotated
    );
}

/// Streams `batches` into [`Store::upsert_daily_costs_streamed`] as a producer would.
async fn stream_costs(
    store: &Arc<dyn Store>,
    tenant: TenantId,
    days: (NaiveDate, NaiveDate),
    batches: Vec<Result<Vec<CostRecord>, String>>,
) -> Result<u64, StoreError> {
    let (sender, receiver) = tokio::sync::mpsc::channel(2);
    let producer = tokio::spawn(async move {
        for batch in batches {
            if sender.send(batch).await.is_err() {
                break;
            }
        }
    });
    let written = store
        .upsert_daily_costs_streamed(tenant, days, receiver)
        .await;
    producer.await.unwrap();
    written
}

fn in_key_order(mut rows: Vec<CostRecord>) -> Vec<CostRecord> {
    rows.sort_by(|a, b| a.natural_key().cmp(&b.natural_key()));
    rows
}

async fn streamed_cost_writes_match_slice_ones_and_fail_whole(store: Arc<dyn Store>) {
    let (_, streamed) = tenant_with_owner(&store, "streamed@example.com").await;
    let (_, sliced) = tenant_with_owner(&store, "sliced@example.com").await;
    let (_, other) = tenant_with_owner(&store, "bystander@example.com").await;
    let record = |i: usize, amount: i64| {
        let mut r = cur(
            1 + (i % 28) as u32,
            ["EC2", "S3\tx", "line\nbreak"][i % 3],
            ["us-east-1", "eu-west-1", ""][i % 4 % 3],
            "0",
        );
        // A few Cost Explorer rows on CUR days (they do not count there) and days of their own.
        if i.is_multiple_of(11) || r.day >= day(27) {
            r.source = CostSource::Ce;
            r.estimated = i.is_multiple_of(2);
        }
        r.resource_id = format!("res-{i}");
        r.unblended = Money::from_nanos(amount);
        r.amortized = Money::from_nanos(amount / 2);
        r.usage_amount = (!i.is_multiple_of(4)).then(|| format!("{i}.25"));
        r
    };
    let days = (day(1), day(28));
    let batches = |rows: &[CostRecord]| rows.chunks(777).map(|c| Ok(c.to_vec())).collect();
    let compare = |label: &'static str| {
        let store = store.clone();
        async move {
            assert_eq!(
                store
                    .daily_costs(streamed.id, day(1), day(31))
                    .await
                    .unwrap(),
                store.daily_costs(sliced.id, day(1), day(31)).await.unwrap(),
                "{label}: rows"
            );
            for dimension in RollupDimension::ALL {
                assert_eq!(
                    rollup_map(&store, streamed.id, dimension).await,
                    rollup_map(&store, sliced.id, dimension).await,
                    "{label}: {dimension:?} rollups"
                );
            }
        }
    };

    // Into empty days (PostgreSQL: one COPY, rollups summed on the way), then over them (the
    // upsert): both as the slice write does it.
    let first = in_key_order((0..6000).map(|i| record(i, i as i64 - 700)).collect());
    let second = in_key_order((3000..9000).map(|i| record(i, 3 * i as i64)).collect());
    for (label, rows) in [("into empty days", &first), ("over existing rows", &second)] {
        let written = stream_costs(&store, streamed.id, days, batches(rows))
            .await
            .unwrap();
        let expected = store.upsert_daily_costs(sliced.id, rows).await.unwrap();
        assert_eq!(written, expected, "{label}: rows written");
        compare(label).await;
    }
    assert_eq!(
        stream_costs(&store, streamed.id, days, batches(&second))
            .await
            .unwrap(),
        0,
        "the same rows again change nothing"
    );

    // A producer that fails part-way, rows out of order, a row outside the days: an error
    // naming why, and nothing written.
    let before = store
        .daily_costs(streamed.id, day(1), day(31))
        .await
        .unwrap();
    let version_before = version(&store, streamed.id).await;
    let changed: Vec<CostRecord> = in_key_order((0..3000).map(|i| record(i, 5)).collect());
    let mut failing: Vec<Result<Vec<CostRecord>, String>> = batches(&changed);
    failing.insert(2, Err("line 7: currency EUR differs from USD".into()));
    let mut reversed = changed.clone();
    reversed.reverse();
    let mut outside = changed.clone();
    outside.last_mut().unwrap().day = day(30);
    for (label, sent, why) in [
        ("failed producer", failing, "currency EUR differs"),
        ("out of order", batches(&reversed), "out of key order"),
        ("outside the days", batches(&outside), "outside the days"),
    ] {
        let error = stream_costs(&store, streamed.id, days, sent)
            .await
            .unwrap_err();
        assert!(
            matches!(&error, StoreError::Source(m) if m.contains(why)),
            "{label}: {error}"
        );
        assert_eq!(
            store
                .daily_costs(streamed.id, day(1), day(31))
                .await
                .unwrap(),
            before,
            "{label}: nothing written"
        );
    }
    assert_eq!(version(&store, streamed.id).await, version_before);
    assert!(
        store
            .daily_costs(other.id, day(1), day(31))
            .await
            .unwrap()
            .is_empty()
    );
}

fn cur(d: u32, service: &str, region: &str, amount: &str) -> CostRecord {
    CostRecord {
        source: CostSource::Cur,
        region: region.into(),
        resource_id: format!("i-{service}"),
        ..ce(d, service, amount, false)
    }
}

async fn rollup_map(
    store: &Arc<dyn Store>,
    tenant: TenantId,
    dimension: RollupDimension,
) -> Vec<(NaiveDate, String, String, bool)> {
    store
        .cost_rollup_days(tenant, dimension, day(1), day(31), None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.day, r.key, r.amount.to_string(), r.estimated))
        .collect()
}

async fn rollups_follow_every_cost_write_with_cur_over_ce(store: Arc<dyn Store>) {
    let (_, t) = tenant_with_owner(&store, "roll@example.com").await;
    let (_, other) = tenant_with_owner(&store, "other-roll@example.com").await;
    store
        .upsert_daily_costs(
            t.id,
            &[
                ce(1, "AmazonEC2", "10.50", false),
                ce(1, "AmazonS3", "-2.25", false),
                ce(2, "AmazonEC2", "7", true),
            ],
        )
        .await
        .unwrap();
    store
        .upsert_daily_costs(other.id, &[ce(1, "AmazonEC2", "999", false)])
        .await
        .unwrap();
    assert_eq!(
        rollup_map(&store, t.id, RollupDimension::Total).await,
        vec![
            (day(1), "".into(), "8.25".into(), false),
            (day(2), "".into(), "7.00".into(), true),
        ]
    );
    // The CUR covers day 2: that day is the CUR's alone, Cost Explorer's rows no longer count.
    store
        .replace_daily_costs(
            t.id,
            CostSource::Cur,
            day(2),
            day(3),
            &[
                cur(2, "AmazonEC2", "eu-west-1", "6.10"),
                cur(2, "AWSLambda", "eu-west-1", "0.000000001"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        rollup_map(&store, t.id, RollupDimension::Service).await,
        vec![
            (day(1), "AmazonEC2".into(), "10.50".into(), false),
            (day(1), "AmazonS3".into(), "-2.25".into(), false),
            (day(2), "AWSLambda".into(), "0.000000001".into(), false),
            (day(2), "AmazonEC2".into(), "6.10".into(), false),
        ]
    );
    assert_eq!(
        rollup_map(&store, t.id, RollupDimension::Region).await[1..],
        [(day(2), "eu-west-1".into(), "6.100000001".into(), false)]
    );
    // Emptying the CUR window hands the day back to Cost Explorer.
    store
        .replace_daily_costs(t.id, CostSource::Cur, day(2), day(3), &[])
        .await
        .unwrap();
    let totals = store
        .cost_rollup_totals(t.id, RollupDimension::Service, day(1), day(31))
        .await
        .unwrap();
    assert_eq!(
        totals
            .iter()
            .map(|t| (t.key.as_str(), t.amount.to_string()))
            .collect::<Vec<_>>(),
        vec![
            ("AmazonEC2", "17.50".to_string()),
            ("AmazonS3", "-2.25".to_string())
        ]
    );
    let only_s3 = store
        .cost_rollup_days(
            t.id,
            RollupDimension::Service,
            day(1),
            day(31),
            Some(&["AmazonS3".to_string()]),
        )
        .await
        .unwrap();
    assert_eq!(only_s3.len(), 1);
    assert_eq!(
        rollup_map(&store, other.id, RollupDimension::Total).await,
        vec![(day(1), "".into(), "999.00".into(), false)]
    );
}

fn detected(series: &str, first: u32, impact: &str) -> NewAnomaly {
    NewAnomaly {
        series: series.into(),
        first_day: day(first),
        last_day: day(first),
        expected: money("10"),
        lower: money("8"),
        upper: money("12"),
        actual: money("10") + money(impact),
        impact: money(impact),
        impact_percent: 50.0,
        score: 6.5,
        severity: "high".into(),
        root_causes: serde_json::json!([{"dimension": "service", "key": "AmazonEC2"}]),
    }
}

async fn anomalies_keep_ids_and_user_verdicts_across_detections(store: Arc<dyn Store>) {
    let (_, t) = tenant_with_owner(&store, "anom@example.com").await;
    let (_, other) = tenant_with_owner(&store, "other-anom@example.com").await;
    let created = store
        .sync_anomalies(
            t.id,
            &[
                detected("total", 5, "5"),
                detected("service:AmazonEC2", 9, "7"),
            ],
            at(1, 0),
        )
        .await
        .unwrap();
    assert_eq!(created.len(), 2);
    let ec2 = created
        .iter()
        .find(|a| a.detection.series != "total")
        .unwrap()
        .id;
    let total = created
        .iter()
        .find(|a| a.detection.series == "total")
        .unwrap()
        .id;
    let acked = store
        .set_anomaly_status(t.id, ec2, AnomalyStatus::Acknowledged, at(2, 0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(acked.status, AnomalyStatus::Acknowledged);
    assert!(
        store
            .set_anomaly_status(other.id, ec2, AnomalyStatus::Resolved, at(2, 0))
            .await
            .unwrap()
            .is_none()
    );
    // A second pass that still sees the EC2 anomaly (bigger now) but no longer the total one.
    let again = store
        .sync_anomalies(t.id, &[detected("service:AmazonEC2", 9, "9")], at(3, 0))
        .await
        .unwrap();
    assert!(again.is_empty(), "nothing new");
    let all = store
        .anomalies(
            t.id,
            &AnomalyFilter {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 1, "the open total anomaly was revised away");
    assert_eq!(all[0].id, ec2);
    assert_eq!(all[0].status, AnomalyStatus::Acknowledged);
    assert_eq!(all[0].detection.impact, money("9"));
    assert_eq!(all[0].detection.root_causes[0]["key"], "AmazonEC2");
    assert!(store.anomaly(t.id, total).await.unwrap().is_none());
    assert!(store.anomaly(other.id, ec2).await.unwrap().is_none());
    assert_eq!(
        store
            .count_anomalies(t.id, AnomalyStatus::Acknowledged)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .count_anomalies(t.id, AnomalyStatus::Open)
            .await
            .unwrap(),
        0
    );
    let open_only = AnomalyFilter {
        status: Some(AnomalyStatus::Open),
        limit: 10,
        ..Default::default()
    };
    assert!(store.anomalies(t.id, &open_only).await.unwrap().is_empty());
    let window = AnomalyFilter {
        from: Some(day(10)),
        limit: 10,
        ..Default::default()
    };
    assert!(store.anomalies(t.id, &window).await.unwrap().is_empty());
    assert!(
        store
            .anomalies(
                other.id,
                &AnomalyFilter {
                    limit: 10,
                    ..Default::default()
                }
            )
            .await
            .unwrap()
            .is_empty()
    );
}

async fn recommendations_are_replaced_per_tenant(store: Arc<dyn Store>) {
    let (_, t) = tenant_with_owner(&store, "rec@example.com").await;
    let (_, other) = tenant_with_owner(&store, "other-rec@example.com").await;
    let rec = |id: &str, savings: &str| Recommendation {
        kind: "idle".into(),
        resource_id: id.into(),
        monthly_savings: money(savings),
        detail: serde_json::json!({"cpu_p95": 1.5}),
        computed_at: at(1, 0),
    };
    store
        .replace_recommendations(t.id, &[rec("i-a", "5"), rec("i-b", "70.08")])
        .await
        .unwrap();
    store
        .replace_recommendations(other.id, &[rec("i-z", "1")])
        .await
        .unwrap();
    let got = store.recommendations(t.id).await.unwrap();
    assert_eq!(
        got.iter()
            .map(|r| r.resource_id.as_str())
            .collect::<Vec<_>>(),
        ["i-b", "i-a"]
    );
    assert_eq!(got[0].detail["cpu_p95"], 1.5);
    store
        .replace_recommendations(t.id, &[rec("i-c", "1")])
        .await
        .unwrap();
    assert_eq!(store.recommendations(t.id).await.unwrap().len(), 1);
    assert_eq!(
        store.recommendations(other.id).await.unwrap()[0].resource_id,
        "i-z"
    );
}

async fn alert_deliveries_are_queued_once_and_claimed_once(store: Arc<dyn Store>) {
    let (owner, t) = tenant_with_owner(&store, "alert@example.com").await;
    let (_, other) = tenant_with_owner(&store, "other-alert@example.com").await;
    let sub = store
        .create_subscription(
            t.id,
            NewSubscription {
                name: "ops".into(),
                channel: "webhook".into(),
                target: "http://127.0.0.1:9/hook".into(),
                threshold_kind: "absolute".into(),
                threshold: "100".into(),
                frequency: "immediate".into(),
                secret_ciphertext: "v1:sealed".into(),
                created_by: Some(owner.id),
                created_at: at(1, 0),
            },
            20,
        )
        .await
        .unwrap();
    assert_eq!(store.subscriptions(t.id).await.unwrap(), vec![sub.clone()]);
    assert!(store.subscriptions(other.id).await.unwrap().is_empty());
    let delivery = |subject: &str| NewDelivery {
        subscription_id: sub.id,
        kind: "anomaly".into(),
        subject_key: subject.into(),
        payload: serde_json::json!({"subject": subject}),
        next_attempt_at: at(1, 0),
    };
    assert_eq!(
        store
            .enqueue_deliveries(t.id, &[delivery("a"), delivery("b")])
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .enqueue_deliveries(t.id, &[delivery("a")])
            .await
            .unwrap(),
        0,
        "one per subject"
    );
    let claimed = store
        .claim_due_deliveries("r1", at(1, 5), at(1, 10), 10, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    assert!(
        claimed
            .iter()
            .all(|d| d.attempts == 1 && d.tenant_id == t.id)
    );
    assert!(
        store
            .claim_due_deliveries("r2", at(1, 6), at(1, 10), 10, 10)
            .await
            .unwrap()
            .is_empty(),
        "claimed"
    );
    assert!(
        store
            .finish_delivery(
                t.id,
                claimed[0].id,
                "r1",
                DeliveryOutcome {
                    status: DeliveryStatus::Delivered,
                    next_attempt_at: at(1, 6),
                    response_code: Some(204),
                    last_error: None,
                    at: at(1, 6),
                },
            )
            .await
            .unwrap()
    );
    // The other claim was lost (a replica died): it is due again once the claim runs out.
    let retried = store
        .claim_due_deliveries("r2", at(1, 11), at(1, 20), 10, 10)
        .await
        .unwrap();
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].id, claimed[1].id);
    assert_eq!(retried[0].attempts, 2);
    let log = store.deliveries(t.id, 10).await.unwrap();
    assert_eq!(log.len(), 2);
    assert!(
        log.iter()
            .any(|d| d.status == DeliveryStatus::Delivered && d.response_code == Some(204))
    );
    assert!(store.deliveries(other.id, 10).await.unwrap().is_empty());
    assert!(!store.delete_subscription(other.id, sub.id).await.unwrap());
    assert!(store.delete_subscription(t.id, sub.id).await.unwrap());
    assert!(store.deliveries(t.id, 10).await.unwrap().is_empty());
}

fn subscription(name: &str, owner: &User) -> NewSubscription {
    NewSubscription {
        name: name.into(),
        channel: "webhook".into(),
        target: format!("http://127.0.0.1:9/{name}"),
        threshold_kind: "absolute".into(),
        threshold: "100".into(),
        frequency: "immediate".into(),
        secret_ciphertext: "v1:sealed".into(),
        created_by: Some(owner.id),
        created_at: at(1, 0),
    }
}

fn delivered_at(minute: u32) -> DeliveryOutcome {
    DeliveryOutcome {
        status: DeliveryStatus::Delivered,
        next_attempt_at: at(2, minute),
        response_code: Some(204),
        last_error: None,
        at: at(2, minute),
    }
}

/// A claim belongs to the deliverer that made it: only it extends the claim, and once the
/// claim ran out and another deliverer took the delivery, the first one's outcome changes
/// nothing (the alert counts as sent once, by the one that holds it).
async fn delivery_claims_belong_to_their_claimer(store: Arc<dyn Store>) {
    let (owner, t) = tenant_with_owner(&store, "claims@example.com").await;
    let sub = store
        .create_subscription(t.id, subscription("ops", &owner), 20)
        .await
        .unwrap();
    let queued = NewDelivery {
        subscription_id: sub.id,
        kind: "test".into(),
        subject_key: "test:1".into(),
        payload: serde_json::json!({}),
        next_attempt_at: at(2, 0),
    };
    store.enqueue_deliveries(t.id, &[queued]).await.unwrap();
    let a = store
        .claim_due_deliveries("replica-a", at(2, 0), at(2, 1), 10, 10)
        .await
        .unwrap();
    assert_eq!(a.len(), 1);
    let id = a[0].id;

    // A extends its claim while it sends; B can neither extend nor take it meanwhile.
    assert!(
        !store
            .extend_delivery_claim(t.id, id, "replica-b", at(2, 5))
            .await
            .unwrap()
    );
    assert!(
        store
            .extend_delivery_claim(t.id, id, "replica-a", at(2, 3))
            .await
            .unwrap()
    );
    assert!(
        store
            .extend_delivery_claim(t.id, id, "replica-a", at(2, 2))
            .await
            .unwrap(),
        "an extension never shortens"
    );
    assert!(
        store
            .claim_due_deliveries("replica-b", at(2, 2), at(2, 4), 10, 10)
            .await
            .unwrap()
            .is_empty(),
        "extended past 02:02"
    );
    assert!(
        !store
            .finish_delivery(t.id, id, "replica-b", delivered_at(2))
            .await
            .unwrap(),
        "not B's to finish"
    );
    assert_eq!(
        store.deliveries(t.id, 10).await.unwrap()[0].status,
        DeliveryStatus::Pending
    );

    // A stalls past its claim: B takes the delivery, and A's late outcome changes nothing.
    let b = store
        .claim_due_deliveries("replica-b", at(2, 4), at(2, 6), 10, 10)
        .await
        .unwrap();
    assert_eq!(
        b.iter().map(|d| (d.id, d.attempts)).collect::<Vec<_>>(),
        [(id, 2)]
    );
    assert!(
        !store
            .extend_delivery_claim(t.id, id, "replica-a", at(2, 9))
            .await
            .unwrap()
    );
    let failed = DeliveryOutcome {
        status: DeliveryStatus::Failed,
        last_error: Some("stale".into()),
        ..delivered_at(5)
    };
    assert!(
        !store
            .finish_delivery(t.id, id, "replica-a", failed)
            .await
            .unwrap()
    );
    let log = store.deliveries(t.id, 10).await.unwrap();
    assert_eq!(
        (log[0].status, log[0].last_error.clone()),
        (DeliveryStatus::Pending, None)
    );
    assert!(
        store
            .finish_delivery(t.id, id, "replica-b", delivered_at(5))
            .await
            .unwrap()
    );
    let log = store.deliveries(t.id, 10).await.unwrap();
    assert_eq!(
        (log[0].status, log[0].attempts, log[0].response_code),
        (DeliveryStatus::Delivered, 2, Some(204))
    );
    // Finished is final: no one finishes or extends it again.
    assert!(
        !store
            .finish_delivery(t.id, id, "replica-b", delivered_at(6))
            .await
            .unwrap()
    );
    assert!(
        !store
            .extend_delivery_claim(t.id, id, "replica-b", at(3, 0))
            .await
            .unwrap()
    );
}

/// Tenants take turns: a tenant with a backlog gets one delivery per turn like any other, and
/// never more than `per_tenant` claimed at once across deliverers.
async fn due_deliveries_are_claimed_in_turns_and_capped_per_tenant(store: Arc<dyn Store>) {
    let (busy_owner, busy) = tenant_with_owner(&store, "busy@example.com").await;
    let (quiet_owner, quiet) = tenant_with_owner(&store, "quiet@example.com").await;
    let busy_sub = store
        .create_subscription(busy.id, subscription("busy", &busy_owner), 20)
        .await
        .unwrap();
    let quiet_sub = store
        .create_subscription(quiet.id, subscription("quiet", &quiet_owner), 20)
        .await
        .unwrap();
    let queue = |sub: uuid::Uuid, n: u32, minute: u32| NewDelivery {
        subscription_id: sub,
        kind: "test".into(),
        subject_key: format!("test:{n}"),
        payload: serde_json::json!({"n": n}),
        next_attempt_at: at(3, minute),
    };
    // The busy tenant queued ten before the quiet one queued two.
    let backlog: Vec<NewDelivery> = (0..10).map(|n| queue(busy_sub.id, n, 0)).collect();
    store.enqueue_deliveries(busy.id, &backlog).await.unwrap();
    store
        .enqueue_deliveries(
            quiet.id,
            &[queue(quiet_sub.id, 0, 1), queue(quiet_sub.id, 1, 1)],
        )
        .await
        .unwrap();
    // How many of a claim went to (busy, quiet); the order of a claim's rows is unspecified.
    let split = |claimed: &[Delivery]| {
        let busy_count = claimed.iter().filter(|d| d.tenant_id == busy.id).count();
        (busy_count, claimed.len() - busy_count)
    };
    let first = store
        .claim_due_deliveries("a", at(3, 2), at(3, 10), 2, 3)
        .await
        .unwrap();
    assert_eq!(
        split(&first),
        (1, 1),
        "in turns, though the busy backlog is older"
    );
    // Another deliverer: each tenant has one in flight, so two more each at most; the quiet
    // tenant has only one left.
    let second = store
        .claim_due_deliveries("b", at(3, 2), at(3, 10), 10, 3)
        .await
        .unwrap();
    assert_eq!(split(&second), (2, 1));
    assert!(
        store
            .claim_due_deliveries("c", at(3, 2), at(3, 10), 10, 3)
            .await
            .unwrap()
            .is_empty(),
        "the busy tenant is at its cap, the quiet one has nothing left"
    );
    // One finished frees one place for its tenant.
    let busy_first = first.iter().find(|d| d.tenant_id == busy.id).unwrap();
    assert!(
        store
            .finish_delivery(busy.id, busy_first.id, "a", delivered_at(3))
            .await
            .unwrap()
    );
    let third = store
        .claim_due_deliveries("c", at(3, 3), at(3, 10), 10, 3)
        .await
        .unwrap();
    assert_eq!(split(&third), (1, 0));
}

/// A tenant's subscriptions stop at the limit, even when many are created at once.
async fn subscriptions_stop_at_the_per_tenant_limit_even_when_created_at_once(
    store: Arc<dyn Store>,
) {
    let (owner, t) = tenant_with_owner(&store, "many@example.com").await;
    let (other_owner, other) = tenant_with_owner(&store, "few@example.com").await;
    let mut attempts = tokio::task::JoinSet::new();
    for n in 0..8 {
        let store = store.clone();
        let new = subscription(&format!("s{n}"), &owner);
        attempts.spawn(async move { store.create_subscription(t.id, new, 5).await });
    }
    let results = attempts.join_all().await;
    let created = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(created, 5, "{results:?}");
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| matches!(
                e,
                StoreError::LimitReached {
                    what: "alert subscriptions",
                    limit: 5
                }
            ))
    );
    assert_eq!(store.subscriptions(t.id).await.unwrap().len(), 5);
    store
        .create_subscription(other.id, subscription("own", &other_owner), 5)
        .await
        .expect("another tenant's count is its own");
}

async fn collector_health_and_aws_usage_sum_runs(store: Arc<dyn Store>) {
    let (_, t) = tenant_with_owner(&store, "health@example.com").await;
    let run = |collector: &str, h: u32, status: RunStatus, requests: i64| {
        let store = store.clone();
        let collector = collector.to_string();
        async move {
            let id = store
                .start_run(NewRun {
                    tenant_id: t.id,
                    collector,
                    window_start: at(0, 0),
                    window_end: at(h, 0),
                    started_at: at(h, 0),
                })
                .await
                .unwrap();
            store
                .finish_run(
                    t.id,
                    id,
                    RunOutcome {
                        status,
                        finished_at: at(h, 1),
                        rows_written: 1,
                        aws_requests: requests,
                        ce_requests: requests / 2,
                        retries: 0,
                        error: (status == RunStatus::Failed).then(|| "boom".to_string()),
                    },
                )
                .await
                .unwrap();
        }
    };
    run("ec2", 1, RunStatus::Succeeded, 4).await;
    run("ec2", 2, RunStatus::Failed, 2).await;
    run("costexplorer", 3, RunStatus::Succeeded, 10).await;
    let health = store.collector_health(t.id).await.unwrap();
    assert_eq!(health.len(), 2);
    assert_eq!(health[0].collector, "costexplorer");
    assert_eq!(health[1].collector, "ec2");
    assert_eq!(health[1].last_run.status, RunStatus::Failed);
    assert_eq!(health[1].last_success_at, Some(at(1, 1)));
    let usage = store.aws_usage_since(t.id, at(2, 0)).await.unwrap();
    assert_eq!(
        usage,
        AwsUsage {
            requests: 12,
            ce_requests: 6
        }
    );
    store
        .upsert_instances(
            t.id,
            &[
                instance("i-1", "us-east-1", "running"),
                instance("i-2", "us-east-1", "running"),
            ],
        )
        .await
        .unwrap();
    let counts = store.instance_counts(t.id).await.unwrap();
    assert_eq!(
        counts,
        vec![InstanceCount {
            state: "running".into(),
            instance_type: "t3.micro".into(),
            count: 2
        }]
    );
}

async fn resource_tags_are_replaced_per_resource_and_scoped(store: Arc<dyn Store>) {
    let (_, t) = tenant_with_owner(&store, "tags@example.com").await;
    let (_, other) = tenant_with_owner(&store, "other-tags@example.com").await;
    let tags = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let first = BTreeMap::from([
        ("i-1".to_string(), tags(&[("team", "web"), ("env", "prod")])),
        ("vol-2".to_string(), tags(&[("team", "data")])),
    ]);
    assert_eq!(
        store
            .upsert_resource_tags(t.id, &first, at(1, 0))
            .await
            .unwrap(),
        2
    );
    let second = BTreeMap::from([("i-1".to_string(), tags(&[("team", "search")]))]);
    store
        .upsert_resource_tags(t.id, &second, at(2, 0))
        .await
        .unwrap();
    let got = store.resource_tags(t.id).await.unwrap();
    assert_eq!(got["i-1"], tags(&[("team", "search")]));
    assert_eq!(got["vol-2"], tags(&[("team", "data")]));
    assert!(store.resource_tags(other.id).await.unwrap().is_empty());
}

async fn version(store: &Arc<dyn Store>, tenant: TenantId) -> i64 {
    store.tenant(tenant).await.unwrap().unwrap().data_version
}

async fn every_write_the_dashboard_reads_moves_the_data_version(store: Arc<dyn Store>) {
    let (_, t) = tenant_with_owner(&store, "version@example.com").await;
    let (_, other) = tenant_with_owner(&store, "other-version@example.com").await;
    let mut last = version(&store, t.id).await;
    let mut moved = |label: &str, now: i64| {
        assert!(now > last, "{label} did not move the version");
        last = now;
    };
    store
        .upsert_daily_costs(t.id, &[ce(1, "AmazonEC2", "1", false)])
        .await
        .unwrap();
    moved("costs", version(&store, t.id).await);
    store
        .replace_daily_costs(t.id, CostSource::Ce, day(1), day(2), &[])
        .await
        .unwrap();
    moved("replace", version(&store, t.id).await);
    let created = store
        .sync_anomalies(t.id, &[detected("total", 5, "5")], at(1, 0))
        .await
        .unwrap();
    moved("anomalies", version(&store, t.id).await);
    store
        .set_anomaly_status(t.id, created[0].id, AnomalyStatus::Planned, at(2, 0))
        .await
        .unwrap();
    moved("status", version(&store, t.id).await);
    store.replace_recommendations(t.id, &[]).await.unwrap();
    moved("recommendations", version(&store, t.id).await);
    store
        .upsert_instances(t.id, &[instance("i-1", "us-east-1", "running")])
        .await
        .unwrap();
    moved("instances", version(&store, t.id).await);
    let run = store
        .start_run(NewRun {
            tenant_id: t.id,
            collector: "ec2".into(),
            window_start: at(0, 0),
            window_end: at(1, 0),
            started_at: at(1, 0),
        })
        .await
        .unwrap();
    moved("run start", version(&store, t.id).await);
    store
        .finish_run(
            t.id,
            run,
            RunOutcome {
                status: RunStatus::Succeeded,
                finished_at: at(1, 1),
                rows_written: 0,
                aws_requests: 0,
                ce_requests: 0,
                retries: 0,
                error: None,
            },
        )
        .await
        .unwrap();
    moved("run end", version(&store, t.id).await);
    assert_eq!(
        version(&store, other.id).await,
        0,
        "another tenant's writes"
    );
}

async fn a_refresh_during_a_run_runs_the_job_again_and_dead_runs_are_marked_failed(
    store: Arc<dyn Store>,
) {
    let (_, t) = tenant_with_owner(&store, "rerun@example.com").await;
    let lease = std::time::Duration::from_secs(600);
    for collector in ["ec2", "cloudwatch"] {
        store
            .ensure_job(NewJob {
                tenant_id: t.id,
                collector: collector.into(),
                interval_seconds: 3600,
                next_run_at: at(1, 0),
            })
            .await
            .unwrap();
    }
    let taken = store
        .lease_due_jobs("r1", at(1, 0), lease, 10)
        .await
        .unwrap();
    assert_eq!(taken.len(), 2);
    // "Refresh now" for ec2 while both run.
    assert!(store.run_job_now(t.id, "ec2", at(1, 5)).await.unwrap());
    assert!(
        store
            .lease_due_jobs("r2", at(1, 6), lease, 10)
            .await
            .unwrap()
            .is_empty(),
        "still leased"
    );
    for collector in ["ec2", "cloudwatch"] {
        assert!(
            store
                .complete_job(t.id, collector, "r1", at(2, 0))
                .await
                .unwrap()
        );
    }
    let again = store
        .lease_due_jobs("r2", at(1, 10), lease, 10)
        .await
        .unwrap();
    assert_eq!(
        again
            .iter()
            .map(|j| j.collector.as_str())
            .collect::<Vec<_>>(),
        ["ec2"],
        "the refresh was kept"
    );
    assert!(
        store
            .complete_job(t.id, "ec2", "r2", at(2, 10))
            .await
            .unwrap()
    );
    assert!(
        store
            .lease_due_jobs("r3", at(1, 20), lease, 10)
            .await
            .unwrap()
            .is_empty(),
        "and run once"
    );

    let run = store
        .start_run(NewRun {
            tenant_id: t.id,
            collector: "ec2".into(),
            window_start: at(0, 0),
            window_end: at(1, 0),
            started_at: at(1, 0),
        })
        .await
        .unwrap();
    assert_eq!(
        store
            .abandon_running_runs(t.id, "cloudwatch", at(1, 30))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .abandon_running_runs(t.id, "ec2", at(1, 30))
            .await
            .unwrap(),
        1
    );
    let runs = store.runs(t.id, 10).await.unwrap();
    let dead = runs.iter().find(|r| r.id == run).unwrap();
    assert_eq!(dead.status, RunStatus::Failed);
    assert!(dead.error.as_deref().unwrap().starts_with("abandoned"));
}

async fn ping_answers(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
    // Migrating twice is a no-op.
    store.migrate().await.unwrap();
}

// --- actions, budgets, alarms (issue 9) ---

fn action_token(user: UserId, hash: &str, expires_at: DateTime<Utc>) -> NewActionToken {
    NewActionToken {
        token_hash: hash.into(),
        user_id: user,
        instance_id: "i-0abc".into(),
        region: "eu-west-1".into(),
        action: "stop".into(),
        created_at: at(9, 0),
        expires_at,
        detail: serde_json::json!({"monthly_cost": "7.49"}),
    }
}

async fn action_tokens_are_used_once_before_they_expire(store: Arc<dyn Store>) {
    let (ana, acme) = tenant_with_owner(&store, "ana@example.com").await;
    let (_, bobco) = tenant_with_owner(&store, "bob@example.com").await;
    store
        .create_action_token(acme.id, action_token(ana.id, "h1", at(9, 5)))
        .await
        .unwrap();
    store
        .create_action_token(acme.id, action_token(ana.id, "h2", at(9, 5)))
        .await
        .unwrap();
    let found = store.action_token("h1").await.unwrap().unwrap();
    assert_eq!(
        (
            found.tenant_id,
            found.user_id,
            found.instance_id.as_str(),
            found.region.as_str()
        ),
        (acme.id, ana.id, "i-0abc", "eu-west-1")
    );
    assert_eq!((found.action.as_str(), found.used_at), ("stop", None));
    assert_eq!(found.detail["monthly_cost"], "7.49");
    assert!(store.action_token("nope").await.unwrap().is_none());

    // Another tenant cannot use it, an expired one cannot be used, and it is used once.
    assert!(
        !store
            .use_action_token(bobco.id, "h1", at(9, 1))
            .await
            .unwrap()
    );
    assert!(
        !store
            .use_action_token(acme.id, "h2", at(9, 5))
            .await
            .unwrap()
    );
    let mut racers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let store = store.clone();
        racers.spawn(async move {
            store
                .use_action_token(acme.id, "h1", at(9, 1))
                .await
                .unwrap()
        });
    }
    let won = racers
        .join_all()
        .await
        .into_iter()
        .filter(|won| *won)
        .count();
    assert_eq!(won, 1, "exactly one concurrent use wins");
    assert_eq!(
        store.action_token("h1").await.unwrap().unwrap().used_at,
        Some(at(9, 1))
    );
    assert_eq!(
        store.action_token("h2").await.unwrap().unwrap().used_at,
        None
    );

    // The purge removes tokens that expired before the cut-off.
    store.purge_audit(at(10, 0)).await.unwrap();
    assert!(store.action_token("h1").await.unwrap().is_none());
}

async fn audit_entries_filter_by_user_action_status_and_age(store: Arc<dyn Store>) {
    let (ana, acme) = tenant_with_owner(&store, "ana@example.com").await;
    let (_, bobco) = tenant_with_owner(&store, "bob@example.com").await;
    let entry = |tenant: TenantId, email: &str, action: &str, status: AuditStatus, minute: u32| {
        NewAuditEntry {
            tenant_id: Some(tenant),
            user_id: Some(ana.id),
            user_email: Some(email.into()),
            action: action.into(),
            status,
            detail: serde_json::json!({"instance_id": "i-0abc"}),
            at: at(8, minute),
        }
    };
    for e in [
        entry(
            acme.id,
            "ana@example.com",
            "action.request",
            AuditStatus::Succeeded,
            1,
        ),
        entry(
            acme.id,
            "ana@example.com",
            "action.confirm",
            AuditStatus::Refused,
            2,
        ),
        entry(
            acme.id,
            "cy@example.com",
            "alarm.create",
            AuditStatus::Failed,
            3,
        ),
        entry(
            acme.id,
            "ana@example.com",
            "connection.verify",
            AuditStatus::Ok,
            4,
        ),
        entry(
            bobco.id,
            "ana@example.com",
            "action.request",
            AuditStatus::Succeeded,
            5,
        ),
    ] {
        store.record_audit(e).await.unwrap();
    }
    let all = AuditFilter {
        from: at(0, 0),
        ..AuditFilter::everything()
    };
    let list = |f: AuditFilter, limit: i64| {
        let store = store.clone();
        async move {
            store
                .audit_page(acme.id, &f, None, limit)
                .await
                .unwrap()
                .entries
                .into_iter()
                .map(|e| (e.action, e.status))
                .collect::<Vec<_>>()
        }
    };
    let s = |a: &str, b: AuditStatus| (a.to_string(), b);
    assert_eq!(
        list(all.clone(), 100).await,
        vec![
            s("connection.verify", AuditStatus::Ok),
            s("alarm.create", AuditStatus::Failed),
            s("action.confirm", AuditStatus::Refused),
            s("action.request", AuditStatus::Succeeded),
        ]
    );
    assert_eq!(
        list(
            AuditFilter {
                user_email: Some("ANA@example.com".into()),
                ..all.clone()
            },
            100
        )
        .await
        .len(),
        3
    );
    assert_eq!(
        list(
            AuditFilter {
                action: Some("action".into()),
                ..all.clone()
            },
            100
        )
        .await,
        vec![
            s("action.confirm", AuditStatus::Refused),
            s("action.request", AuditStatus::Succeeded)
        ]
    );
    assert_eq!(
        list(
            AuditFilter {
                action: Some("action.request".into()),
                ..all.clone()
            },
            100
        )
        .await,
        vec![s("action.request", AuditStatus::Succeeded)]
    );
    assert_eq!(
        list(
            AuditFilter {
                status: Some(AuditStatus::Failed),
                ..all.clone()
            },
            100
        )
        .await,
        vec![s("alarm.create", AuditStatus::Failed)]
    );
    assert_eq!(
        list(
            AuditFilter {
                from: at(8, 3),
                ..all.clone()
            },
            1
        )
        .await,
        vec![s("connection.verify", AuditStatus::Ok)]
    );
    let full = store.audit_page(acme.id, &all, None, 100).await.unwrap();
    assert_eq!(full.next, None, "everything fits in one page");
    assert_eq!(
        full.entries[0].user_email.as_deref(),
        Some("ana@example.com")
    );
    assert_eq!(full.entries[0].detail["instance_id"], "i-0abc");
    assert_eq!(full.entries[0].at, at(8, 4));

    assert_eq!(store.purge_audit(at(8, 3)).await.unwrap(), 2);
    assert_eq!(list(all.clone(), 100).await.len(), 2);
    assert_eq!(
        store
            .audit_page(bobco.id, &all, None, 100)
            .await
            .unwrap()
            .entries
            .len(),
        1
    );
}

/// Pages follow one another by position: every entry once, in order, ties on the same instant
/// broken by id, whatever is recorded between two pages; a time range and the counts select
/// the same entries; one tenant's position never reaches another tenant's entries.
async fn audit_pages_follow_positions_and_counts_match_the_filter(store: Arc<dyn Store>) {
    let (ana, acme) = tenant_with_owner(&store, "ana@example.com").await;
    let (bob, bobco) = tenant_with_owner(&store, "bob@example.com").await;
    let statuses = [
        AuditStatus::Succeeded,
        AuditStatus::Refused,
        AuditStatus::Failed,
        AuditStatus::Ok,
    ];
    let record = |tenant: TenantId, user: &User, n: usize, at: DateTime<Utc>| {
        let store = store.clone();
        let entry = NewAuditEntry {
            tenant_id: Some(tenant),
            user_id: Some(user.id),
            user_email: Some(user.email.clone()),
            action: format!("test.entry{n}"),
            status: statuses[n % 4],
            detail: serde_json::json!({"n": n}),
            at,
        };
        async move { store.record_audit(entry).await.unwrap() }
    };
    // 23 entries over 8 instants: three share each instant (the last two).
    for n in 0..23 {
        record(acme.id, &ana, n, at(9, (n / 3) as u32)).await;
        record(bobco.id, &bob, n, at(9, (n / 3) as u32)).await;
    }
    let all = AuditFilter {
        from: at(0, 0),
        ..AuditFilter::everything()
    };
    let numbers = |page: &AuditPage| -> Vec<u64> {
        page.entries
            .iter()
            .map(|e| e.detail["n"].as_u64().unwrap())
            .collect()
    };
    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = store.audit_page(acme.id, &all, after, 5).await.unwrap();
        assert!(page.entries.len() <= 5);
        seen.extend(numbers(&page));
        pages += 1;
        // Newer entries recorded between pages are not in the older pages.
        record(acme.id, &ana, 100 + pages, at(10, pages as u32)).await;
        match page.next {
            Some(next) => {
                assert_eq!(Some(next), page.entries.last().map(AuditRecord::position));
                after = Some(next);
            }
            None => break,
        }
    }
    assert_eq!(pages, 5, "23 entries in pages of 5");
    assert_eq!(seen.len(), 23, "{seen:?}");
    let distinct: std::collections::BTreeSet<u64> = seen.iter().copied().collect();
    assert_eq!(distinct, (0..23).collect(), "every entry once");
    let instants: Vec<u64> = seen.iter().map(|n| n / 3).collect();
    assert!(
        instants.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {seen:?}"
    );

    // The last page ends exactly: a full last page says no more.
    let exact = store.audit_page(bobco.id, &all, None, 23).await.unwrap();
    assert_eq!((exact.entries.len(), exact.next), (23, None));

    // A time range: `from` inclusive, `to` exclusive.
    let range = AuditFilter {
        from: at(9, 2),
        to: Some(at(9, 4)),
        ..all.clone()
    };
    let in_range = store.audit_page(acme.id, &range, None, 100).await.unwrap();
    let mut got = numbers(&in_range);
    got.sort_unstable();
    assert_eq!(got, (6..12).collect::<Vec<u64>>());

    // Counts: everything the filter selects, over all pages, by outcome.
    let counts = store.audit_counts(acme.id, &range).await.unwrap();
    assert_eq!(
        counts,
        AuditCounts {
            total: 6,
            succeeded: 1,
            refused: 1,
            failed: 2,
            ok: 2,
        }
    );
    let refused = AuditFilter {
        status: Some(AuditStatus::Refused),
        ..all.clone()
    };
    let counts = store.audit_counts(acme.id, &refused).await.unwrap();
    let listed = store
        .audit_page(acme.id, &refused, None, 200)
        .await
        .unwrap();
    assert!(
        listed
            .entries
            .iter()
            .all(|e| e.status == AuditStatus::Refused)
    );
    assert_eq!(counts.total, listed.entries.len() as i64);
    assert_eq!((counts.refused, counts.succeeded), (counts.total, 0));
    assert_eq!(
        store.audit_counts(bobco.id, &all).await.unwrap().total,
        23,
        "bobco's own entries only"
    );

    // A position taken from one tenant's log lists only the other tenant's own entries.
    let acme_first = store.audit_page(acme.id, &all, None, 1).await.unwrap();
    let from_bobco = store
        .audit_page(bobco.id, &all, acme_first.next, 100)
        .await
        .unwrap();
    assert!(
        from_bobco
            .entries
            .iter()
            .all(|e| e.user_email.as_deref() == Some("bob@example.com"))
    );
    assert!(
        store
            .audit_page(TenantId::new(), &all, acme_first.next, 100)
            .await
            .unwrap()
            .entries
            .is_empty()
    );
}

async fn budgets_are_one_per_tenant_and_keep_their_alerted_state(store: Arc<dyn Store>) {
    let (ana, acme) = tenant_with_owner(&store, "ana@example.com").await;
    let (_, bobco) = tenant_with_owner(&store, "bob@example.com").await;
    assert!(store.budget(acme.id).await.unwrap().is_none());
    let budget = Budget {
        amount: money("1000.50"),
        currency: "USD".into(),
        actual_thresholds: vec![50, 80, 100],
        forecast_thresholds: vec![100],
        alerted: BudgetAlerted::default(),
        updated_by: Some(ana.id),
        updated_at: at(7, 0) + Duration::nanoseconds(123_456_789),
    };
    store.put_budget(acme.id, &budget).await.unwrap();
    let stored = store.budget(acme.id).await.unwrap().unwrap();
    assert_eq!(stored.amount, money("1000.50"));
    assert_eq!(stored.actual_thresholds, vec![50, 80, 100]);
    assert_eq!(
        stored.updated_at,
        at(7, 0) + Duration::microseconds(123_456)
    );
    assert!(store.budget(bobco.id).await.unwrap().is_none());

    let alerted = BudgetAlerted {
        month: "2026-11".into(),
        actual: vec![50],
        forecast: vec![100],
    };
    store.set_budget_alerted(acme.id, &alerted).await.unwrap();
    // Changing the amount keeps what was already alerted this month.
    store
        .put_budget(
            acme.id,
            &Budget {
                amount: money("2000"),
                ..budget.clone()
            },
        )
        .await
        .unwrap();
    let stored = store.budget(acme.id).await.unwrap().unwrap();
    assert_eq!((stored.amount, &stored.alerted), (money("2000"), &alerted));

    assert!(!store.delete_budget(bobco.id).await.unwrap());
    assert!(store.delete_budget(acme.id).await.unwrap());
    assert!(store.budget(acme.id).await.unwrap().is_none());
}

/// Two collections writing the same tenant's days at once (Cost Explorer and the CUR run as
/// separate jobs) both succeed, and the rollups end up what the rows say: neither write's rollup
/// refresh misses the other's rows or collides with its rollup rows.
async fn concurrent_cost_writes_for_one_tenant_both_land_in_the_rollups(store: Arc<dyn Store>) {
    let (_, t) = tenant_with_owner(&store, "race@example.com").await;
    for round in 0..8u32 {
        let ce_rows: Vec<CostRecord> = (1..=28)
            .map(|d| ce(d, "AmazonEC2", &format!("{}.00", 10 + round), false))
            .collect();
        let cur_rows: Vec<CostRecord> = (1..=14)
            .map(|d| {
                let mut r = ce(d, "AmazonS3", &format!("{}.00", 3 + round), false);
                r.source = CostSource::Cur;
                r
            })
            .collect();
        let (a, b) = tokio::join!(
            store.upsert_daily_costs(t.id, &ce_rows),
            store.upsert_daily_costs(t.id, &cur_rows)
        );
        a.unwrap_or_else(|e| panic!("round {round}: Cost Explorer write failed: {e}"));
        b.unwrap_or_else(|e| panic!("round {round}: CUR write failed: {e}"));
        // Days 1-14 are the CUR's (S3 only); 15-28 Cost Explorer's (EC2 only).
        let totals = rollup_map(&store, t.id, RollupDimension::Total).await;
        assert_eq!(totals.len(), 28, "round {round}: {totals:?}");
        for (d, _, amount, _) in &totals {
            let expected = if *d <= day(14) { 3 + round } else { 10 + round };
            assert_eq!(amount, &format!("{expected}.00"), "round {round}, {d}");
        }
    }
}

async fn sealed_secrets_are_listed_across_tenants_and_resealed_only_when_unchanged(
    store: Arc<dyn Store>,
) {
    use cloudspend_core::connection::ConnectionAuth;
    let (_, a) = tenant_with_owner(&store, "a@example.com").await;
    let (_, b) = tenant_with_owner(&store, "b@example.com").await;
    let (_, role_only) = tenant_with_owner(&store, "c@example.com").await;
    let keys = |ciphertext: &str| {
        connection(ConnectionAuth::AccessKey {
            access_key_id: "AKIAEXAMPLE".into(),
            secret_ciphertext: ciphertext.into(),
        })
    };
    store.put_connection(a.id, &keys("v1:a-key")).await.unwrap();
    store.put_connection(b.id, &keys("v1:b-key")).await.unwrap();
    let role = connection(ConnectionAuth::Role {
        role_arn: "arn:aws:iam::123456789012:role/CloudSpend".into(),
    });
    store.put_connection(role_only.id, &role).await.unwrap();
    store
        .create_subscription(
            b.id,
            NewSubscription {
                name: "ops".into(),
                channel: "webhook".into(),
                target: "https://hooks.example.com/x".into(),
                threshold_kind: "absolute".into(),
                threshold: "10".into(),
                frequency: "immediate".into(),
                secret_ciphertext: "v1:b-hook".into(),
                created_by: None,
                created_at: at(1, 0),
            },
            20,
        )
        .await
        .unwrap();
    let listed = store.sealed_secrets().await.unwrap();
    let mut expected = vec![
        SealedSecret {
            kind: SealedSecretKind::AwsSecretAccessKey,
            tenant: a.id,
            ciphertext: "v1:a-key".into(),
        },
        SealedSecret {
            kind: SealedSecretKind::AwsSecretAccessKey,
            tenant: b.id,
            ciphertext: "v1:b-key".into(),
        },
        SealedSecret {
            kind: SealedSecretKind::AlertSigningSecret,
            tenant: b.id,
            ciphertext: "v1:b-hook".into(),
        },
    ];
    expected.sort();
    assert_eq!(listed, expected, "a role connection holds no secret");

    for secret in &listed {
        let resealed = format!("{}-new", secret.ciphertext);
        assert!(store.reseal(secret, &resealed).await.unwrap());
        // The listed ciphertext is gone: a second replacement from the same listing changes nothing.
        assert!(!store.reseal(secret, "v1:stale").await.unwrap());
    }
    let mut after: Vec<String> = store
        .sealed_secrets()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.ciphertext)
        .collect();
    after.sort();
    assert_eq!(after, ["v1:a-key-new", "v1:b-hook-new", "v1:b-key-new"]);
    // Only the ciphertext changed, in its own tenant's row.
    match store.connection(a.id).await.unwrap().unwrap().auth {
        ConnectionAuth::AccessKey {
            access_key_id,
            secret_ciphertext,
        } => assert_eq!(
            (access_key_id.as_str(), secret_ciphertext.as_str()),
            ("AKIAEXAMPLE", "v1:a-key-new")
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(store.connection(role_only.id).await.unwrap(), Some(role));
    // A secret listed for one tenant does not replace another tenant's equal ciphertext.
    let foreign = SealedSecret {
        kind: SealedSecretKind::AwsSecretAccessKey,
        tenant: a.id,
        ciphertext: "v1:b-key-new".into(),
    };
    assert!(!store.reseal(&foreign, "v1:hijack").await.unwrap());
}

async fn diagnostic_calls_count_in_aws_usage_and_their_allowance_holds_per_tenant(
    store: Arc<dyn Store>,
) {
    let (_, t) = tenant_with_owner(&store, "diag@example.com").await;
    let (_, other) = tenant_with_owner(&store, "other-diag@example.com").await;
    let hour = Some(Allowance {
        since: at(3, 0),
        max_calls: 2,
    });
    let cost = DiagnosticEndpoint::TestCost;
    let start = |tenant: TenantId, endpoint, when, allowance| {
        let store = store.clone();
        async move {
            store
                .start_diagnostic_call(tenant, endpoint, when, allowance)
                .await
                .unwrap()
        }
    };
    let admitted = |admission: Admission| match admission {
        Admission::Admitted(id) => id,
        refused => panic!("{refused:?}"),
    };
    // Before the window: does not count against it.
    let early = admitted(start(t.id, cost, at(2, 59), None).await);
    let first = admitted(start(t.id, cost, at(3, 1), hour).await);
    let second = admitted(start(t.id, cost, at(3, 2), hour).await);
    let before = version(&store, t.id).await;
    assert_eq!(
        start(t.id, cost, at(3, 3), hour).await,
        Admission::Refused {
            oldest_in_window: at(3, 1)
        },
        "the third call in the hour is refused until the first leaves the window"
    );
    assert!(
        matches!(
            start(t.id, cost, at(3, 4), hour).await,
            Admission::Refused { .. }
        ),
        "a refused call is not recorded, and does not free a slot either"
    );
    // Other endpoints and other tenants have their own allowance.
    let ec2 = admitted(start(t.id, DiagnosticEndpoint::TestEc2, at(3, 5), hour).await);
    admitted(start(other.id, cost, at(3, 5), hour).await);

    for (id, aws, ce) in [(early, 1, 1), (first, 2, 2), (second, 1, 1), (ec2, 3, 0)] {
        store
            .finish_diagnostic_call(t.id, id, aws, ce)
            .await
            .unwrap();
    }
    assert!(
        version(&store, t.id).await > before,
        "the dashboard's AWS usage changed"
    );
    // Another tenant's id finishes nothing here.
    store
        .finish_diagnostic_call(other.id, ec2, 100, 100)
        .await
        .unwrap();
    assert_eq!(
        store.aws_usage_since(t.id, at(3, 0)).await.unwrap(),
        AwsUsage {
            requests: 6,
            ce_requests: 3
        }
    );
    assert_eq!(
        store.aws_usage_since(t.id, at(0, 0)).await.unwrap(),
        AwsUsage {
            requests: 7,
            ce_requests: 4
        }
    );
    assert_eq!(
        store.aws_usage_since(other.id, at(0, 0)).await.unwrap(),
        AwsUsage {
            requests: 0,
            ce_requests: 0
        },
        "the other tenant's call was started but never finished"
    );
}

/// A cost row's value of one grouping.
type KeyOf = fn(&CostRecord) -> &str;

/// The sums `/api/costs` shows, as the route computed them from every row before they were
/// summed in SQL: one source per day, then per period and key.
fn sums_in_memory(rows: Vec<CostRecord>, key: KeyOf, monthly: bool) -> Vec<GroupedCost> {
    let mut sums: BTreeMap<(String, String), (Money, bool)> = BTreeMap::new();
    for row in cloudspend_core::records::one_source_per_day(rows) {
        let period = if monthly {
            row.day.format("%Y-%m").to_string()
        } else {
            row.day.to_string()
        };
        let sum = sums
            .entry((period, key(&row).to_string()))
            .or_insert((Money::ZERO, false));
        sum.0 += row.unblended;
        sum.1 |= row.estimated;
    }
    sums.into_iter()
        .map(|((period, key), (amount, estimated))| GroupedCost {
            period,
            key,
            amount,
            estimated,
        })
        .collect()
}

async fn grouped_costs_match_the_sums_of_the_chosen_rows_and_stop_at_the_cap(
    store: Arc<dyn Store>,
) {
    let (_, t) = tenant_with_owner(&store, "grouped@example.com").await;
    let (_, other) = tenant_with_owner(&store, "other-grouped@example.com").await;
    let mut rows = Vec::new();
    for d in 1..=20 {
        // Cost Explorer every day (the last three estimated); the CUR on days 5 to 12 only,
        // with several resources and usage types per service.
        rows.push(ce(d, "AmazonEC2", &format!("{d}.25"), d > 17));
        rows.push(ce(d, "AmazonS3", "0.000000001", d > 17));
        if (5..=12).contains(&d) {
            for (n, service) in ["AmazonEC2", "AmazonRDS"].iter().enumerate() {
                for resource in 0..3 {
                    rows.push(CostRecord {
                        usage_type: format!("usage-{}", resource % 2),
                        resource_id: format!("arn:{service}:{resource}"),
                        ..cur(
                            d,
                            service,
                            "eu-west-1",
                            if n == 0 { "1.5" } else { "-0.75" },
                        )
                    });
                }
            }
        }
    }
    // Two days in the next month, so months group differently from days.
    let next_month = |d: u32| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
    for d in [1, 2] {
        rows.push(CostRecord {
            day: next_month(d),
            ..ce(1, "AmazonEC2", "7", false)
        });
    }
    store.upsert_daily_costs(t.id, &rows).await.unwrap();
    store
        .upsert_daily_costs(other.id, &[ce(3, "AmazonEC2", "999", false)])
        .await
        .unwrap();
    let (from, to) = (day(1), next_month(30));
    let stored = store.daily_costs(t.id, from, to).await.unwrap();
    let groupings: [(CostGrouping, KeyOf); 5] = [
        (CostGrouping::Service, |r| &r.service),
        (CostGrouping::Account, |r| &r.account_id),
        (CostGrouping::Region, |r| &r.region),
        (CostGrouping::UsageType, |r| &r.usage_type),
        (CostGrouping::Resource, |r| &r.resource_id),
    ];
    for (grouping, key) in groupings {
        for monthly in [false, true] {
            let got = store
                .grouped_costs(t.id, from, to, grouping, monthly, 10_000)
                .await
                .unwrap();
            assert_eq!(
                got,
                GroupedCosts::Rows {
                    rows: sums_in_memory(stored.clone(), key, monthly),
                    currency: Some("USD".into()),
                },
                "{grouping:?}, monthly: {monthly}"
            );
        }
    }
    // Exactly at the cap: answered; one over: nothing but the cap.
    let GroupedCosts::Rows { rows: all, .. } = store
        .grouped_costs(t.id, from, to, CostGrouping::Service, false, 10_000)
        .await
        .unwrap()
    else {
        panic!("too many")
    };
    assert!(matches!(
        store
            .grouped_costs(t.id, from, to, CostGrouping::Service, false, all.len())
            .await
            .unwrap(),
        GroupedCosts::Rows { .. }
    ));
    assert_eq!(
        store
            .grouped_costs(t.id, from, to, CostGrouping::Service, false, all.len() - 1)
            .await
            .unwrap(),
        GroupedCosts::TooMany { cap: all.len() - 1 }
    );
    assert_eq!(
        store
            .grouped_costs(t.id, day(21), day(30), CostGrouping::Service, false, 10)
            .await
            .unwrap(),
        GroupedCosts::Rows {
            rows: vec![],
            currency: None
        }
    );
}

async fn the_purge_removes_invitations_and_reset_tokens_that_expired_before_it(
    store: Arc<dyn Store>,
) {
    let (ana, acme) = tenant_with_owner(&store, "purge@example.com").await;
    let invite = |email: &str, expires_at| NewInvitation {
        email: email.into(),
        role: Role::Viewer,
        token_hash: format!("hash-{email}"),
        invited_by: ana.id,
        created_at: at(7, 0),
        expires_at,
    };
    store
        .create_invitation(acme.id, invite("old@example.com", at(9, 0)))
        .await
        .unwrap();
    store
        .create_invitation(acme.id, invite("new@example.com", at(11, 0)))
        .await
        .unwrap();
    for (hash, expires_at) in [("reset-old", at(9, 0)), ("reset-new", at(11, 0))] {
        store
            .create_password_reset(NewPasswordReset {
                token_hash: hash.into(),
                user_id: ana.id,
                created_at: at(7, 0),
                expires_at,
            })
            .await
            .unwrap();
    }
    store.purge_audit(at(10, 0)).await.unwrap();
    // Seen from before either expired: only what outlived the cut-off is left.
    let pending: Vec<String> = store
        .pending_invitations(acme.id, at(8, 0))
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.email)
        .collect();
    assert_eq!(pending, ["new@example.com"]);
    assert_eq!(
        store
            .reset_password("reset-old", "$argon2id$new", at(8, 0))
            .await
            .unwrap(),
        None,
        "the expired reset token is gone"
    );
    assert_eq!(
        store
            .reset_password("reset-new", "$argon2id$new", at(8, 0))
            .await
            .unwrap(),
        Some(ana.id)
    );
}

macro_rules! conformance {
    ($backend:ident, $make:path) => {
        mod $backend {
            conformance!(@cases $make;
                users_have_unique_emails,
                signup_makes_the_user_owner_of_a_new_tenant,
                signup_with_taken_email_creates_no_tenant,
                members_are_managed_and_the_last_owner_is_kept,
                tokens_are_found_by_hash_and_revoked_once,
                the_last_owner_holds_under_concurrent_demotion,
                invitations_become_memberships_only_for_the_invited_address_once,
                password_changes_and_resets_revoke_tokens_and_spend_reset_tokens,
                tokens_are_listed_per_tenant_or_all_and_revoked_by_tenant_or_everywhere,
                cost_upserts_are_idempotent_and_replace_estimates,
                cost_batches_collapse_duplicate_keys_to_the_last,
                replacing_a_cost_window_touches_only_that_window_source_and_tenant,
                large_cost_batches_are_written_in_chunks,
                bulk_cost_writes_match_small_ones,
                streamed_cost_writes_match_slice_ones_and_fail_whole,
                instances_upsert_by_account_region_and_id,
                syncing_an_inventory_marks_vanished_instances_terminated,
                metric_points_are_ranged_ordered_and_scoped,
                runs_record_outcomes_per_tenant,
                jobs_are_leased_once_until_the_lease_expires,
                audit_entries_are_listed_per_tenant,
                connections_are_one_per_tenant_and_scoped,
                sealed_secrets_are_listed_across_tenants_and_resealed_only_when_unchanged,
                ping_answers,
                rollups_follow_every_cost_write_with_cur_over_ce,
                concurrent_cost_writes_for_one_tenant_both_land_in_the_rollups,
                anomalies_keep_ids_and_user_verdicts_across_detections,
                recommendations_are_replaced_per_tenant,
                alert_deliveries_are_queued_once_and_claimed_once,
                delivery_claims_belong_to_their_claimer,
                due_deliveries_are_claimed_in_turns_and_capped_per_tenant,
                subscriptions_stop_at_the_per_tenant_limit_even_when_created_at_once,
                collector_health_and_aws_usage_sum_runs,
                diagnostic_calls_count_in_aws_usage_and_their_allowance_holds_per_tenant,
                grouped_costs_match_the_sums_of_the_chosen_rows_and_stop_at_the_cap,
                the_purge_removes_invitations_and_reset_tokens_that_expired_before_it,
                action_tokens_are_used_once_before_they_expire,
                audit_entries_filter_by_user_action_status_and_age,
                audit_pages_follow_positions_and_counts_match_the_filter,
                budgets_are_one_per_tenant_and_keep_their_alerted_state,
                resource_tags_are_replaced_per_resource_and_scoped,
                every_write_the_dashboard_reads_moves_the_data_version,
                a_refresh_during_a_run_runs_the_job_again_and_dead_runs_are_marked_failed,
            );
        }
    };
    (@cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                super::$case($make().await).await;
            }
        )*
    };
}

conformance!(postgres, cloudspend_store::testing::fresh_postgres);
conformance!(sqlite, cloudspend_store::testing::fresh_sqlite);
