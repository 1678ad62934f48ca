//! Tenant isolation: one tenant's token never reads or changes another tenant's rows, and a
//! viewer changes nothing of its tenant.

mod operations;

use crate::common::{Reply, TestApp};
use crate::dump::{self, Difference};
use crate::full_tenant::{self, FullTenant, Person};
use operations::{Call, NEWCOMER, Operation, Owner, Phase, Restore, Scope, Viewer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeSet;

#[tokio::test]
async fn x_tenant_id_must_name_a_tenant_the_caller_belongs_to() {
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let bob = app.signup("bob@example.com", "Bobco").await;
    let foreign = app
        .call_with(
            Method::GET,
            "/api/tenants/members",
            Some(&bob.token),
            &[("x-tenant-id", ana.tenant_id.as_str())],
            None,
        )
        .await;
    assert_eq!(
        (foreign.status, foreign.code(), foreign.field()),
        (
            StatusCode::FORBIDDEN,
            Some("not_a_member"),
            Some("X-Tenant-Id")
        )
    );
    assert!(!foreign.text.contains("ana@example.com"));
    let unknown = app
        .call_with(
            Method::GET,
            "/api/tenants/members",
            Some(&bob.token),
            &[("x-tenant-id", "0b8f4c39-6a7e-4a43-9d1c-0e7ad1b3c5a1")],
            None,
        )
        .await;
    assert_eq!(
        unknown.status,
        StatusCode::FORBIDDEN,
        "unknown and foreign tenants must look alike"
    );
    assert_eq!(unknown.body, foreign.body);
    let malformed = app
        .call_with(
            Method::GET,
            "/api/me",
            Some(&bob.token),
            &[("x-tenant-id", "acme")],
            None,
        )
        .await;
    assert_eq!(
        (malformed.status, malformed.field()),
        (StatusCode::BAD_REQUEST, Some("X-Tenant-Id"))
    );
}

#[tokio::test]
async fn another_tenants_owner_cannot_read_or_change_its_members() {
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let eve = app.signup("eve@example.com", "Evil").await;
    app.signup("bob@example.com", "Bobco").await;
    app.add_member(&ana.token, "bob@example.com", "viewer")
        .await;

    let listed = app.get("/api/tenants/members", Some(&eve.token)).await;
    assert_eq!(
        listed.body["members"].as_array().unwrap().len(),
        1,
        "eve sees only her own tenant"
    );
    assert!(!listed.text.contains("ana@example.com"));

    let remove = app
        .call(
            Method::DELETE,
            &format!("/api/tenants/members/{}", ana.user_id),
            Some(&eve.token),
            None,
        )
        .await;
    assert_eq!(remove.status, StatusCode::NOT_FOUND);
    let remove_by_email = app
        .call(
            Method::DELETE,
            "/api/tenants/members",
            Some(&eve.token),
            Some(json!({"email": "bob@example.com"})),
        )
        .await;
    assert_eq!(remove_by_email.status, StatusCode::NOT_FOUND);
    // Adding ana to Evil only touches Evil's members; Acme is unchanged.
    app.add_member(&eve.token, "ana@example.com", "viewer")
        .await;
    let acme = app
        .store
        .members(ana.tenant_id.parse().unwrap())
        .await
        .unwrap();
    let acme: Vec<(&str, cloudspend_core::Role)> =
        acme.iter().map(|m| (m.email.as_str(), m.role)).collect();
    assert_eq!(
        acme,
        vec![
            ("ana@example.com", cloudspend_core::Role::Owner),
            ("bob@example.com", cloudspend_core::Role::Viewer)
        ]
    );
    let me = app.get("/api/me", Some(&ana.token)).await;
    assert_eq!(
        me.body["current_tenant"]["id"],
        ana.tenant_id.as_str(),
        "being invited elsewhere must not move ana's default tenant"
    );
}

#[tokio::test]
async fn a_tenant_id_in_a_body_is_ignored_never_trusted() {
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let eve = app.signup("eve@example.com", "Evil").await;
    let sneaky = app
        .post(
            "/api/tenants/members",
            Some(&eve.token),
            json!({"email": "eve@example.com", "role": "owner", "tenant_id": ana.tenant_id}),
        )
        .await;
    assert_eq!(
        (sneaky.status, sneaky.field()),
        (StatusCode::BAD_REQUEST, Some("tenant_id"))
    );
    assert_eq!(
        app.store
            .members(ana.tenant_id.parse().unwrap())
            .await
            .unwrap()
            .len(),
        1
    );
}

/// Tenant A owns one of everything (`full_tenant`). Tenant B's owner sends every operation of
/// the OpenAPI document with A's real ids and a valid body, without and with `X-Tenant-Id: A`;
/// A's viewer sends every read (and must not see the managers' secrets) and every mutating
/// operation; A's rows are dumped before and after each pass. Then A's
/// owner sends the same requests, which must succeed: the ids and bodies are real, so B's and
/// the viewer's refusals are refusals, not 404s of a made-up id or 422s of an empty body.
#[tokio::test]
async fn no_operation_lets_another_tenant_or_a_viewer_read_or_change_what_it_may_not() {
    let _moto = cloudspend_aws_access::testing::shared().await;
    let a = FullTenant::build().await;
    let operations = documented_operations(&a.app).await;
    let b = tenant_b(&a.app).await;

    let untouched = dump::tenant_rows(&a.database_url, a.id).await;
    another_tenant_reads_and_changes_nothing(&a, &b, &operations).await;
    let after_b = dump::tenant_rows(&a.database_url, a.id).await;
    let changed = dump::differences(&untouched, &after_b);
    assert!(
        changed.is_empty(),
        "tenant B changed tenant A's rows: {changed:#?}"
    );

    a_viewer_reads_nothing_kept_from_viewers(&a, &operations).await;
    a_viewer_is_refused_every_change(&a, &operations).await;
    let after_viewer = dump::tenant_rows(&a.database_url, a.id).await;
    only_the_viewers_own_traces_changed(&a, &dump::differences(&after_b, &after_viewer));

    the_owner_gets_every_request_answered(&a, &operations).await;
}

/// The table's operations, in the order of their phases, once the table is known to cover
/// exactly the operations the server documents.
async fn documented_operations(app: &TestApp) -> Vec<Operation> {
    let doc = app.get("/api/openapi.json", None).await;
    let methods = [
        "get", "put", "post", "delete", "patch", "head", "options", "trace",
    ];
    let mut documented = BTreeSet::new();
    for (path, item) in doc.body["paths"]
        .as_object()
        .expect("a document with paths")
    {
        for method in item.as_object().unwrap().keys() {
            if methods.contains(&method.as_str()) {
                documented.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    let mut table = operations::operations();
    let listed: BTreeSet<String> = table.iter().map(|o| o.key.to_string()).collect();
    assert_eq!(listed.len(), table.len(), "an operation is listed twice");
    let missing: Vec<&String> = documented.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "operations with no entry in isolation/operations.rs (give each a valid request against \
         tenant A and what each caller must get): {missing:?}"
    );
    let stale: Vec<&String> = listed.difference(&documented).collect();
    assert!(
        stale.is_empty(),
        "entries for operations the server no longer has: {stale:?}"
    );
    table.sort_by_key(|o| o.phase);
    table
}

/// Tenant B's owner, and the user B's add-member request names.
async fn tenant_b(app: &TestApp) -> Person {
    app.signup(NEWCOMER, "Newcomer's own").await;
    let email = "owner-of-b@bobco.example";
    full_tenant::person(email, app.signup(email, "Bobco").await)
}

/// Every answer to B is a 4xx, or a 2xx with nothing of A in it; a 4xx may repeat an id B sent
/// in the path or body, nothing else of A. With `X-Tenant-Id: A`, whatever acts in a tenant is
/// 403.
async fn another_tenant_reads_and_changes_nothing(a: &FullTenant, b: &Person, ops: &[Operation]) {
    let secrets = operations::secrets(a);
    let tenant_a = a.id.to_string();
    let call = Call {
        a,
        caller_email: &b.email,
        member: &a.viewer,
    };
    for op in ops {
        for headers in [vec![], vec![("x-tenant-id", tenant_a.as_str())]] {
            let token = token_for(op, &a.app, b, None).await;
            let (request, reply) = send(&a.app, op, &call, &token, &headers).await;
            let what = format!("{} {headers:?} by tenant B", op.key);
            assert!(
                reply.status.is_success() || reply.status.is_client_error(),
                "{what} answered {}: {}",
                reply.status,
                reply.text
            );
            if !headers.is_empty() && op.scope == Scope::Tenant {
                assert_eq!(
                    reply.status,
                    StatusCode::FORBIDDEN,
                    "{what}: {}",
                    reply.text
                );
            }
            for secret in &secrets {
                let echoed = !reply.status.is_success() && request.contains(&secret.value);
                assert!(
                    echoed || !reply.text.contains(&secret.value),
                    "{what} showed A's {} `{}`: {}",
                    secret.what,
                    secret.value,
                    reply.text
                );
            }
        }
    }
}

/// A's viewer reads A's data, but not what only managers or the owner's own sessions see.
async fn a_viewer_reads_nothing_kept_from_viewers(a: &FullTenant, ops: &[Operation]) {
    let kept: Vec<operations::Secret> = operations::secrets(a)
        .into_iter()
        .filter(|s| s.kept_from_viewers)
        .collect();
    let call = Call {
        a,
        caller_email: &a.viewer.email,
        member: &a.owner,
    };
    for op in ops.iter().filter(|o| !o.mutates()) {
        let (_, reply) = send(&a.app, op, &call, &a.viewer.token, &[]).await;
        let what = format!("{} by A's viewer answered {}", op.key, reply.status);
        assert!(
            reply.status.is_success() || reply.status.is_client_error(),
            "{what}: {}",
            reply.text
        );
        for secret in &kept {
            assert!(
                !reply.text.contains(&secret.value),
                "{what} with the {} `{}`: {}",
                secret.what,
                secret.value,
                reply.text
            );
        }
    }
}

/// A's viewer gets 403 from every mutating operation but those the table allows, with reasons.
async fn a_viewer_is_refused_every_change(a: &FullTenant, ops: &[Operation]) {
    let tenant_a = a.id.to_string();
    let call = Call {
        a,
        caller_email: &a.viewer.email,
        member: &a.owner,
    };
    for op in ops.iter().filter(|o| o.mutates()) {
        let token = token_for(op, &a.app, &a.viewer, Some(&tenant_a)).await;
        let (_, reply) = send(&a.app, op, &call, &token, &[]).await;
        let what = format!(
            "{} by A's viewer answered {}: {}",
            op.key, reply.status, reply.text
        );
        match op.viewer {
            Viewer::Reads => panic!(
                "{} changes things: give it a viewer rule in isolation/operations.rs",
                op.key
            ),
            Viewer::Refused => assert_eq!(reply.status, StatusCode::FORBIDDEN, "{what}"),
            Viewer::Allowed(why) => assert!(reply.status.is_success(), "{what} ({why})"),
            Viewer::OwnOnly(why) => {
                assert_eq!(reply.status, StatusCode::NOT_FOUND, "{what} ({why})")
            }
            Viewer::AsTheOwner(why) => match op.owner {
                Owner::Succeeds => assert!(reply.status.is_success(), "{what} ({why})"),
                Owner::Refused(status, _) => assert_eq!(reply.status, status, "{what} ({why})"),
            },
        }
    }
}

/// The audited operations (EC2 actions, alarms, the budget) record who tried what, refusals
/// included, in the tenant's audit log: the only rows a viewer's refused requests add.
const REFUSALS_AUDITED: [&str; 6] = [
    "budget.delete",
    "budget.update",
    "instance.action.confirm",
    "instance.action.request",
    "instance.alarm.create",
    "instance.alarm.delete",
];

/// The diagnostics a viewer may run, each recorded with the AWS requests it cost A (A's usage
/// figure counts them). `/test-cost`, billed, is for managers: it must not be among them.
const DIAGNOSTICS_RECORDED: [&str; 2] = ["test-cpu", "test-ec2"];

/// What the viewer's pass may change of A: the viewer's own sessions and API token (log in,
/// make a token, change its password, log out), its own password hash, the audit entry of that
/// token, one refusal entry per audited operation, the record of each diagnostic it ran and the
/// tenant's data version those records move (the dashboard shows the AWS usage), nothing else.
fn only_the_viewers_own_traces_changed(a: &FullTenant, changes: &[Difference]) {
    let mut refusals = BTreeSet::new();
    let mut diagnostics = BTreeSet::new();
    let (mut tenant_now, mut tenant_before) = (Vec::new(), Vec::new());
    let (mut viewer_now, mut viewer_before) = (Vec::new(), Vec::new());
    for change in changes {
        let row = &change.row;
        let the_viewers = row["user_id"] == a.viewer.user_id.as_str();
        let action = row["action"].as_str().unwrap_or_default();
        match change.table.as_str() {
            "api_tokens" if the_viewers => {}
            "audit_log" if the_viewers && change.added && row["status"] == "refused" => {
                refusals.insert(action);
            }
            "audit_log" if the_viewers && change.added && action == "token.create" => {}
            "diagnostic_calls" if change.added => {
                diagnostics.insert(row["endpoint"].as_str().unwrap_or_default());
            }
            "tenants" if change.added => tenant_now.push(without_data_version(row)),
            "tenants" => tenant_before.push(without_data_version(row)),
            // The viewer changed its own password: its row, and its password hash only.
            "users of members" if row["id"] == a.viewer.user_id.as_str() => {
                let row = without(row, "password_hash");
                if change.added {
                    viewer_now.push(row)
                } else {
                    viewer_before.push(row)
                }
            }
            _ => panic!("the viewer's requests changed A's rows: {change:#?}"),
        }
    }
    assert_eq!(refusals, BTreeSet::from(REFUSALS_AUDITED), "{changes:#?}");
    assert_eq!(
        diagnostics,
        BTreeSet::from(DIAGNOSTICS_RECORDED),
        "{changes:#?}"
    );
    assert_eq!(tenant_now, tenant_before, "the tenant's row changed");
    assert_eq!(
        viewer_now, viewer_before,
        "the viewer's user row changed beyond its password"
    );
}

fn without_data_version(row: &Value) -> Value {
    without(row, "data_version")
}

fn without(row: &Value, column: &str) -> Value {
    let mut row = row.clone();
    row.as_object_mut().unwrap().remove(column);
    row
}

/// A's owner sends the same requests (A's viewer named where B's named it) and gets them
/// answered, and has seen every value the leak check looks for: the check looks for real values.
async fn the_owner_gets_every_request_answered(a: &FullTenant, ops: &[Operation]) {
    let tenant_a = a.id.to_string();
    let call = Call {
        a,
        caller_email: &a.owner.email,
        member: &a.viewer,
    };
    let mut answers = String::new();
    for op in ops {
        let token = token_for(op, &a.app, &a.owner, Some(&tenant_a)).await;
        let (request, reply) = send(&a.app, op, &call, &token, &[]).await;
        let what = format!(
            "{} {request} by A's owner answered {}",
            op.key, reply.status
        );
        match op.owner {
            Owner::Succeeds => assert!(
                reply.status.is_success(),
                "{what} (fix its id or body in isolation/operations.rs): {}",
                reply.text
            ),
            Owner::Refused(status, why) => {
                assert_eq!(reply.status, status, "{what}, not {status} ({why})")
            }
        }
        if reply.status.is_success() {
            answers.push_str(&reply.text);
        }
        if op.restore == Restore::Viewer {
            a.app
                .add_member(&a.owner.token, &a.viewer.email, "viewer")
                .await;
        }
    }
    for secret in operations::secrets(a).iter().filter(|s| !s.shown_once) {
        assert!(
            answers.contains(&secret.value),
            "A's owner never saw its {} `{}`: the leak checks look for a value no answer holds",
            secret.what,
            secret.value
        );
    }
}

/// The token to send: a new session for operations that end the session they come with, so
/// the caller's own token lasts the pass.
async fn token_for(op: &Operation, app: &TestApp, who: &Person, tenant: Option<&str>) -> String {
    if op.phase == Phase::EndSession {
        full_tenant::log_in(app, &who.email, tenant).await
    } else {
        who.token.clone()
    }
}

/// Sends `op` with A's ids and its body; returns the request's path and body as text, and the
/// answer.
async fn send(
    app: &TestApp,
    op: &Operation,
    call: &Call<'_>,
    token: &str,
    headers: &[(&str, &str)],
) -> (String, Reply) {
    let path = op.path(call);
    let body = (op.body)(call);
    let request = format!(
        "{path} {}",
        body.as_ref().map(Value::to_string).unwrap_or_default()
    );
    let reply = app
        .call_with(op.method(), &path, Some(token), headers, body)
        .await;
    (request, reply)
}
