//! Every operation of the OpenAPI document, with a valid request against tenant A (see
//! `full_tenant`) and what each kind of caller must get. The isolation test fails for an
//! operation the document has and this table does not, so a new route cannot go untested.

use crate::full_tenant::{BUDGET, FullTenant, PASSWORD, Person, connect_body};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A user who exists and belongs to no tenant of the test: the member the add-member request
/// names. (Naming one of A's members instead would be the e-mail squatting of issue 16 item 8,
/// tested with its fix.)
pub const NEWCOMER: &str = "newcomer@elsewhere.example";

/// What one request is about: the tenant, who sends it and which member it names.
pub struct Call<'a> {
    pub a: &'a FullTenant,
    pub caller_email: &'a str,
    /// The member of A a membership request names: A's viewer, or A's owner when the viewer
    /// calls (removing itself is allowed and would end the viewer's part of the test).
    pub member: &'a Person,
}

/// Whose data an operation touches.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Scope {
    /// No caller at all (health, metrics, the document, sign-up, login).
    Public,
    /// The calling user's own sessions, in whatever tenant.
    User,
    /// The tenant the caller acts in: `X-Tenant-Id` naming a foreign tenant must be refused.
    Tenant,
}

/// When an operation runs in a pass: reads first, then writes, then what uses up a fixture
/// thing (a token spent, a row deleted, the external ID rotated), then disconnecting, then
/// ending the caller's session.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Phase {
    Read,
    Write,
    Consume,
    Disconnect,
    EndSession,
}

/// What A's own owner gets with the same request.
#[derive(Clone, Copy, Debug)]
pub enum Owner {
    Succeeds,
    /// Refused for the owner too, for the reason given.
    Refused(StatusCode, &'static str),
}

/// What A's viewer gets from a mutating operation.
#[derive(Clone, Copy, Debug)]
pub enum Viewer {
    /// Not a mutating operation.
    Reads,
    /// 403: only owners and admins may.
    Refused,
    /// Allowed to viewers, for the reason given; it must not change anything of A but the
    /// viewer's own sessions and tokens.
    Allowed(&'static str),
    /// Allowed on the viewer's own things only; on A's owner's (what the table names) the
    /// answer is 404, for the reason given.
    OwnOnly(&'static str),
    /// Answered to the viewer as to the owner ([`Owner`]): the request's own credential decides
    /// (a reset or invitation token), not the caller's role, for the reason given.
    AsTheOwner(&'static str),
}

/// What the owner's pass puts back after an operation, so later ones still find it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Restore {
    Nothing,
    /// The operation removed A's viewer: add it again.
    Viewer,
}

pub struct Operation {
    /// `METHOD /path` as in the document.
    pub key: &'static str,
    pub scope: Scope,
    pub phase: Phase,
    pub body: fn(&Call) -> Option<Value>,
    pub owner: Owner,
    pub viewer: Viewer,
    pub restore: Restore,
}

impl Operation {
    pub fn method(&self) -> reqwest::Method {
        let (method, _) = self.key.split_once(' ').unwrap();
        reqwest::Method::from_bytes(method.as_bytes()).unwrap()
    }

    pub fn template(&self) -> &'static str {
        self.key.split_once(' ').unwrap().1
    }

    pub fn mutates(&self) -> bool {
        !matches!(
            self.method(),
            reqwest::Method::GET | reqwest::Method::HEAD | reqwest::Method::OPTIONS
        )
    }

    /// The path with A's real ids in place of its parameters.
    pub fn path(&self, call: &Call) -> String {
        let template = self.template();
        let mut path = String::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            let close = rest[open..].find('}').unwrap() + open;
            path.push_str(&rest[..open]);
            path.push_str(&real_id(template, &rest[open + 1..close], call));
            rest = &rest[close + 1..];
        }
        path.push_str(rest);
        path
    }
}

/// A's id for path parameter `param` of `template`.
fn real_id(template: &str, param: &str, call: &Call) -> String {
    let a = call.a;
    match (param, template) {
        ("user_id", _) => call.member.user_id.clone(),
        ("instance_id", _) => a.instance.clone(),
        ("name", t) if t.contains("/alarms/") => a.alarm.clone(),
        ("id", t) if t.starts_with("/api/alerts/subscriptions/") => a.subscription.clone(),
        ("id", t) if t.starts_with("/api/tokens/") => a.api_token_id.clone(),
        ("id", t) if t.starts_with("/api/anomalies/") => a.anomaly.clone(),
        ("id", t) if t.starts_with("/api/tenants/invitations/") => a.invitation.clone(),
        _ => panic!(
            "no id of tenant A for {{{param}}} in {template}: give FullTenant one of the thing it \
             names and add it to real_id"
        ),
    }
}

fn read(key: &'static str, scope: Scope) -> Operation {
    Operation {
        key,
        scope,
        phase: Phase::Read,
        body: |_| None,
        owner: Owner::Succeeds,
        viewer: Viewer::Reads,
        restore: Restore::Nothing,
    }
}

/// An owners-and-admins operation of the caller's tenant.
fn manage(key: &'static str, phase: Phase, body: fn(&Call) -> Option<Value>) -> Operation {
    Operation {
        key,
        scope: Scope::Tenant,
        phase,
        body,
        owner: Owner::Succeeds,
        viewer: Viewer::Refused,
        restore: Restore::Nothing,
    }
}

/// The table. Bodies are valid for A's owner (the sanity pass proves it) and name A's things
/// wherever an operation takes an id of one.
pub fn operations() -> Vec<Operation> {
    use Phase::*;
    use Scope::*;
    vec![
        read("GET /healthz", Public),
        read("GET /readyz", Public),
        read("GET /metrics", Public),
        read("GET /api/openapi.json", Public),
        Operation {
            scope: Public,
            phase: Write,
            body: |_| {
                Some(
                    json!({"email": format!("signup-{}@elsewhere.example", uuid::Uuid::new_v4()),
                            "password": PASSWORD, "tenant_name": "Newly signed up"}),
                )
            },
            viewer: Viewer::Allowed("anyone may sign up: a new user and tenant, nothing of A"),
            ..read("POST /api/auth/signup", Public)
        },
        Operation {
            phase: Write,
            body: |c| {
                Some(json!({"email": c.caller_email, "password": PASSWORD, "tenant_id": c.a.id}))
            },
            viewer: Viewer::Allowed("a member logs in to its tenant: a session of its own"),
            ..read("POST /api/auth/login", Public)
        },
        Operation {
            phase: EndSession,
            viewer: Viewer::Allowed("anyone ends its own session"),
            ..read("POST /api/auth/logout", User)
        },
        Operation {
            phase: EndSession,
            viewer: Viewer::Allowed("anyone revokes all its own sessions and tokens"),
            ..read("POST /api/auth/logout-everywhere", User)
        },
        read("GET /api/me", Tenant),
        read("GET /api/tokens", Tenant),
        Operation {
            phase: Write,
            body: |_| Some(json!({"name": "isolation probe token"})),
            viewer: Viewer::Allowed(
                "any member makes API tokens for itself, acting with its own role",
            ),
            ..read("POST /api/tokens", Tenant)
        },
        Operation {
            phase: Consume,
            viewer: Viewer::OwnOnly("a member revokes its own tokens; the owner's is not found"),
            ..read("DELETE /api/tokens/{id}", Tenant)
        },
        Operation {
            phase: EndSession,
            body: |_| Some(json!({"current_password": PASSWORD, "new_password": PASSWORD})),
            viewer: Viewer::Allowed(
                "anyone changes its own password: its own user row, its other sessions revoked",
            ),
            ..read("POST /api/auth/password", User)
        },
        Operation {
            phase: Write,
            body: |c| Some(json!({"email": c.caller_email})),
            owner: Owner::Refused(
                StatusCode::CONFLICT,
                "the fixture's server sends no e-mail, and a reset needs it (the passwords tests \
                 run resets with a relay)",
            ),
            viewer: Viewer::AsTheOwner("anyone may ask for a reset of an address"),
            ..read("POST /api/auth/password-reset", Public)
        },
        Operation {
            phase: Write,
            body: |_| {
                Some(
                    json!({"token": "a-reset-token-that-was-never-sent", "new_password": PASSWORD}),
                )
            },
            owner: Owner::Refused(
                StatusCode::BAD_REQUEST,
                "a reset token arrives only by e-mail, which the fixture's server does not send",
            ),
            viewer: Viewer::AsTheOwner("the reset token decides, not the caller"),
            ..read("POST /api/auth/password-reset/confirm", Public)
        },
        read("GET /api/tenants/members", Tenant),
        read("GET /api/tenants/invitations", Tenant),
        manage("DELETE /api/tenants/invitations/{id}", Consume, |_| None),
        Operation {
            phase: Write,
            body: |c| Some(json!({"token": c.a.invitation_token})),
            owner: Owner::Refused(
                StatusCode::FORBIDDEN,
                "only the invited address's account may accept A's pending invitation",
            ),
            viewer: Viewer::AsTheOwner("the invited address decides, not the caller's role"),
            ..read("POST /api/invitations/accept", User)
        },
        manage("POST /api/tenants/members", Write, |_| {
            Some(json!({"email": NEWCOMER, "role": "viewer"}))
        }),
        Operation {
            restore: Restore::Viewer,
            ..manage("DELETE /api/tenants/members", Consume, |c| {
                Some(json!({"email": c.member.email}))
            })
        },
        Operation {
            restore: Restore::Viewer,
            ..manage("DELETE /api/tenants/members/{user_id}", Consume, |_| None)
        },
        Operation {
            owner: Owner::Refused(
                StatusCode::FORBIDDEN,
                "only the platform's global owner lists every tenant",
            ),
            ..read("GET /api/admin/tenants", Tenant)
        },
        manage("POST /api/collect", Write, |_| {
            Some(json!({"collectors": ["ec2"]}))
        }),
        read("GET /api/collections", Tenant),
        read("GET /api/costs", Tenant),
        read("GET /api/instances", Tenant),
        read("GET /api/instances/{instance_id}/cpu", Tenant),
        read("GET /api/dashboard", Tenant),
        read("GET /api/anomalies", Tenant),
        read("GET /api/anomalies/series", Tenant),
        read("GET /api/anomalies/{id}", Tenant),
        manage("POST /api/anomalies/{id}/status", Write, |_| {
            Some(json!({"status": "acknowledged"}))
        }),
        read("GET /api/recommendations", Tenant),
        read("GET /api/alerts/subscriptions", Tenant),
        manage("POST /api/alerts/subscriptions", Write, |_| {
            Some(json!({"name": "probe alerts", "channel": "webhook",
                        "target": "http://127.0.0.1:9/probe", "threshold_kind": "absolute",
                        "threshold": "10"}))
        }),
        manage("DELETE /api/alerts/subscriptions/{id}", Consume, |_| None),
        manage("POST /api/alerts/subscriptions/{id}/test", Write, |_| None),
        read("GET /api/alerts/deliveries", Tenant),
        read("GET /test-ec2", Tenant),
        read("GET /test-cpu/{instance_id}", Tenant),
        read("GET /test-cost", Tenant),
        read("GET /api/tenants/onboarding", Tenant),
        // The connect form carries the current external ID: rotating it uses it up.
        manage(
            "POST /api/tenants/onboarding/rotate-external-id",
            Consume,
            |_| None,
        ),
        manage("POST /api/tenants/connect", Write, |c| {
            Some(connect_body(
                &c.a.account,
                &c.a.external_id,
                "Probe connection",
            ))
        }),
        read("GET /api/tenants/connection", Tenant),
        manage("DELETE /api/tenants/connection", Disconnect, |_| None),
        manage("POST /api/tenants/connection/verify", Write, |_| None),
        manage("POST /api/instances/{instance_id}/actions", Write, |_| {
            Some(json!({"action": "stop"}))
        }),
        manage("POST /api/actions/confirm", Consume, |c| {
            Some(json!({"token": c.a.action_token}))
        }),
        read("GET /api/actions/status", Tenant),
        read("GET /api/audit", Tenant),
        manage("POST /api/instances/{instance_id}/alarms", Write, |_| {
            Some(json!({"threshold": 87.5}))
        }),
        read("GET /api/instances/{instance_id}/alarms", Tenant),
        manage(
            "DELETE /api/instances/{instance_id}/alarms/{name}",
            Consume,
            |_| None,
        ),
        read("GET /api/budgets", Tenant),
        manage("PUT /api/budgets", Write, |_| {
            Some(json!({"amount": "999.99"}))
        }),
        manage("DELETE /api/budgets", Consume, |_| None),
    ]
}

/// One of A's values that must never reach another tenant.
pub struct Secret {
    pub what: &'static str,
    pub value: String,
    /// Shown to A once, when made (a bearer or confirmation token): the owner's pass cannot
    /// see it again.
    pub shown_once: bool,
    /// Not for A's viewers either: the webhook's full URL (its path is often the credential),
    /// and the owner's own tokens.
    pub kept_from_viewers: bool,
}

pub fn secrets(a: &FullTenant) -> Vec<Secret> {
    let seen = |what, value: &str| Secret {
        what,
        value: value.to_string(),
        shown_once: false,
        kept_from_viewers: false,
    };
    let owners = |what, value: &str| Secret {
        kept_from_viewers: true,
        ..seen(what, value)
    };
    vec![
        seen("tenant id", &a.id.to_string()),
        seen("tenant name", &a.name),
        seen("external ID", &a.external_id),
        seen("owner's e-mail", &a.owner.email),
        seen("owner's user id", &a.owner.user_id),
        seen("viewer's e-mail", &a.viewer.email),
        seen("viewer's user id", &a.viewer.user_id),
        seen("AWS account id", &a.account),
        seen("connection name", &a.connection_name),
        seen("instance id", &a.instance),
        seen("instance name", &a.instance_name),
        seen("cost service", crate::full_tenant::COST_SERVICE),
        seen("daily cost", crate::full_tenant::DAILY_COST),
        seen("budget", BUDGET),
        seen("anomaly id", &a.anomaly),
        seen("finding evidence", &a.finding_evidence),
        seen("subscription id", &a.subscription),
        seen("subscription name", &a.subscription_name),
        owners("subscription target", &a.subscription_target),
        owners("API token id", &a.api_token_id),
        owners("API token name", &a.api_token_name),
        seen("alarm name", &a.alarm),
        owners("invitation id", &a.invitation),
        owners("invitee's e-mail", &a.invitee),
        Secret {
            shown_once: true,
            ..owners("invitation token", &a.invitation_token)
        },
        Secret {
            shown_once: true,
            ..owners("API token", &a.api_token)
        },
        Secret {
            shown_once: true,
            ..owners("confirmation token", &a.action_token)
        },
    ]
}
