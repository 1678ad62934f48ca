//! Alerts: which subscriptions hear about an anomaly, daily digests, and the worker that
//! delivers them.
//!
//! Deliveries are queued in the store (one per subscription and subject, so re-detecting an
//! anomaly never alerts twice) and sent by [`Deliverer`], which any `serve` replica may run.
//! A delivery is claimed before it is sent, under the deliverer's own claimer id; the claim is
//! extended while the attempt runs and only its holder records the outcome, so two replicas
//! never send the same one, however slow the endpoint. Deliveries go out concurrently, tenants
//! taking turns with a cap per tenant, and each attempt has a time budget
//! ([`DeliveryLimits`]): one tenant's slow endpoint or backlog holds back no other tenant.
//! Webhooks are POSTed as JSON, signed `X-CloudSpend-Signature: sha256=<hex HMAC-SHA256 of the
//! body>` with the subscription's secret, and retried with exponential backoff; every
//! attempt's outcome is in the delivery log.

use crate::egress::EgressPolicy;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cloudspend_core::{Money, TenantId};
use cloudspend_secrets::MasterKey;
use cloudspend_store::{
    AnomalyFilter, AnomalyStatus, Delivery, DeliveryOutcome, DeliveryStatus, NewDelivery, Store,
    StoreError, StoredAnomaly, Subscription,
};
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use serde_json::json;
use sha2::Sha256;

use crate::view::AnomalyView;

pub const SIGNATURE_HEADER: &str = "X-CloudSpend-Signature";

/// Whether an anomaly is big enough for this subscription.
pub fn passes_threshold(subscription: &Subscription, anomaly: &StoredAnomaly) -> bool {
    let d = &anomaly.detection;
    match subscription.threshold_kind.as_str() {
        "absolute" => subscription
            .threshold
            .parse::<Money>()
            .is_ok_and(|min| d.impact.abs() >= min),
        "percent" => subscription
            .threshold
            .parse::<f64>()
            .is_ok_and(|min| d.impact_percent.abs() >= min),
        _ => false,
    }
}

fn anomaly_payload(
    tenant: TenantId,
    subscription: &Subscription,
    a: &StoredAnomaly,
) -> serde_json::Value {
    json!({
        "event": "anomaly.detected",
        "tenant_id": tenant,
        "subscription": {"id": subscription.id, "name": subscription.name},
        "anomaly": AnomalyView::from(a),
    })
}

/// Queues an alert to every immediate subscription whose threshold `anomalies` pass.
pub async fn enqueue_immediate(
    store: &dyn Store,
    tenant: TenantId,
    anomalies: &[StoredAnomaly],
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    if anomalies.is_empty() {
        return Ok(0);
    }
    let mut queued = Vec::new();
    for subscription in store.subscriptions(tenant).await? {
        if subscription.frequency != "immediate" {
            continue;
        }
        for anomaly in anomalies
            .iter()
            .filter(|a| passes_threshold(&subscription, a))
        {
            queued.push(NewDelivery {
                subscription_id: subscription.id,
                kind: "anomaly".into(),
                subject_key: format!("anomaly:{}", anomaly.id),
                payload: anomaly_payload(tenant, &subscription, anomaly),
                next_attempt_at: now,
            });
        }
    }
    store.enqueue_deliveries(tenant, &queued).await
}

/// Queues each daily subscription's digest once a day: the open anomalies found since its last
/// digest that pass its threshold (nothing is sent when there are none).
pub async fn enqueue_digests(
    store: &dyn Store,
    tenant: TenantId,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let mut queued = 0;
    for subscription in store.subscriptions(tenant).await? {
        if subscription.frequency != "daily" {
            continue;
        }
        let since = subscription
            .last_digest_at
            .unwrap_or(subscription.created_at - chrono::Duration::days(1));
        if now - since < chrono::Duration::days(1) {
            continue;
        }
        let open = store
            .anomalies(
                tenant,
                &AnomalyFilter {
                    status: Some(AnomalyStatus::Open),
                    limit: 500,
                    ..Default::default()
                },
            )
            .await?;
        let fresh: Vec<AnomalyView> = open
            .iter()
            .filter(|a| a.created_at > since && passes_threshold(&subscription, a))
            .map(AnomalyView::from)
            .collect();
        if !fresh.is_empty() {
            let day = now.date_naive();
            queued += store
                .enqueue_deliveries(
                    tenant,
                    &[NewDelivery {
                        subscription_id: subscription.id,
                        kind: "digest".into(),
                        subject_key: format!("digest:{day}"),
                        payload: json!({
                            "event": "anomaly.digest",
                            "tenant_id": tenant,
                            "subscription": {"id": subscription.id, "name": subscription.name},
                            "day": day,
                            "anomalies": fresh,
                        }),
                        next_attempt_at: now,
                    }],
                )
                .await?;
        }
        store.set_digest_sent(tenant, subscription.id, now).await?;
    }
    Ok(queued)
}

/// `sha256=<hex>` of the body under the subscription's secret.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A fresh signing secret for a subscription (shown to the user once).
pub fn new_signing_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("whsec_{}", hex::encode(bytes))
}

/// When to retry: `base`, then 4x longer each attempt, capped at six hours, `max_attempts`
/// attempts in all (defaults: 30 s, 2 min, 8 min, 32 min, ~2 h, 6 h).
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub base: Duration,
    pub max_attempts: i64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(30),
            max_attempts: 6,
        }
    }
}

impl RetryPolicy {
    pub fn delay_after(&self, attempts: i64) -> Duration {
        let factor = 4u32.saturating_pow(attempts.saturating_sub(1).clamp(0, 10) as u32);
        (self.base.saturating_mul(factor)).min(Duration::from_secs(6 * 3600))
    }
}

/// How a deliverer shares out its work.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryLimits {
    /// Deliveries one deliverer sends at once, across tenants.
    pub concurrent: usize,
    /// Deliveries of one tenant claimed at once, by every deliverer together: a tenant with a
    /// backlog (or a slow endpoint) occupies this many senders at most.
    pub per_tenant: usize,
    /// How long one attempt may take, resolving, connecting, sending and the answer included;
    /// then it counts as failed and is retried later. A slow endpoint spends its own budget.
    pub attempt_budget: Duration,
    /// How long a claim holds before it must be extended; the deliverer extends it every third
    /// of this while the attempt runs. If the deliverer dies, another one retries the delivery
    /// this long after the last extension.
    pub claim: Duration,
}

impl Default for DeliveryLimits {
    fn default() -> Self {
        Self {
            concurrent: 16,
            per_tenant: 4,
            attempt_budget: Duration::from_secs(10),
            claim: Duration::from_secs(60),
        }
    }
}

/// Sends queued deliveries.
pub struct Deliverer {
    store: std::sync::Arc<dyn Store>,
    key: MasterKey,
    http: reqwest::Client,
    retry: RetryPolicy,
    poll: Duration,
    smtp: Option<Mailer>,
    /// Where webhooks may go (see [`crate::egress`]).
    egress: EgressPolicy,
    limits: DeliveryLimits,
    /// Who holds this deliverer's claims: unique per deliverer (per replica), so a claim that
    /// ran out and was taken by another replica is told apart from this one's.
    claimer: String,
}

/// Where alert e-mail goes out: an SMTP relay URL as lettre reads it
/// (`smtps://user:pass@host:465`, `smtp://host:587?tls=required`, `smtp://host:25` for a local
/// relay) and the sender address.
#[derive(Clone)]
pub struct SmtpSettings {
    pub url: String,
    pub from: String,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password.
        f.debug_struct("SmtpSettings")
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

struct Mailer {
    transport: lettre::AsyncSmtpTransport<lettre::Tokio1Executor>,
    from: lettre::message::Mailbox,
}

impl Mailer {
    fn new(settings: &SmtpSettings) -> Result<Self, String> {
        let transport = lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(&settings.url)
            .map_err(|e| format!("CLOUDSPEND_SMTP_URL is not an SMTP URL ({e}): use smtps://user:pass@host:465 or smtp://host:25"))?
            .timeout(Some(SMTP_TIMEOUT))
            .build();
        let from = settings.from.parse().map_err(|e| {
            format!(
                "CLOUDSPEND_SMTP_FROM `{}` is not an address: {e}",
                settings.from
            )
        })?;
        Ok(Self { transport, from })
    }
}

impl std::fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliverer").finish_non_exhaustive()
    }
}

/// The webhook client: no redirects (a public URL must not bounce a delivery inward), no proxy
/// from the environment (HTTP(S)_PROXY would carry deliveries past the checks, to wherever the
/// proxy reaches), and a resolver that keeps only the addresses the egress policy allows.
fn http_client(egress: &EgressPolicy) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(egress.resolver())
        .user_agent(concat!("CloudSpend-Alerts/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("HTTP client")
}

/// The SMTP transport's own timeout per command; an attempt as a whole has the
/// [`DeliveryLimits::attempt_budget`].
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

impl Deliverer {
    pub fn new(store: std::sync::Arc<dyn Store>, key: MasterKey) -> Self {
        Self {
            store,
            key,
            http: http_client(&EgressPolicy::public_only()),
            retry: RetryPolicy::default(),
            poll: Duration::from_secs(5),
            smtp: None,
            egress: EgressPolicy::public_only(),
            limits: DeliveryLimits::default(),
            claimer: format!("deliverer-{}", uuid::Uuid::new_v4()),
        }
    }

    pub fn with_limits(mut self, limits: DeliveryLimits) -> Self {
        self.limits = DeliveryLimits {
            concurrent: limits.concurrent.max(1),
            per_tenant: limits.per_tenant.max(1),
            // Extended every third of it: a claim needs some length to be extended in time.
            claim: limits.claim.max(Duration::from_millis(300)),
            ..limits
        };
        self
    }

    /// Where deliveries may go: public addresses only by default; internal ones too for a
    /// receiver on the operator's own network (and tests with a receiver on loopback); or only
    /// an operator's list.
    pub fn with_egress(mut self, egress: EgressPolicy) -> Self {
        self.http = http_client(&egress);
        self.egress = egress;
        self
    }

    /// Sends e-mail alerts through this relay; without it they fail with a message saying
    /// SMTP is not configured.
    /// Call after [`Deliverer::with_egress`]: a relay outside a limited egress policy is
    /// refused (e-mail would leave by a way the operator did not list).
    pub fn with_smtp(mut self, settings: &SmtpSettings) -> Result<Self, String> {
        if self.egress.is_limited() {
            let host = reqwest::Url::parse(&settings.url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .ok_or("CLOUDSPEND_SMTP_URL has no host: use smtp://host:25 or smtps://host:465")?;
            self.egress
                .check_host(&host)
                .map_err(|e| format!("the SMTP relay in CLOUDSPEND_SMTP_URL: {e}"))?;
        }
        self.smtp = Some(Mailer::new(settings)?);
        Ok(self)
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn with_poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// Delivers until `shutdown` resolves: whenever a sender is free, claims what is due and
    /// sends each delivery on its own task, so a slow attempt holds its own sender only.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let deliverer = std::sync::Arc::new(self);
        let mut sending = tokio::task::JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            let free = deliverer.limits.concurrent.saturating_sub(sending.len());
            if free > 0 {
                match deliverer.claim(Utc::now(), free).await {
                    Ok(claimed) => {
                        if !claimed.is_empty() {
                            tracing::info!(deliveries = claimed.len(), "alert deliveries claimed");
                        }
                        for delivery in claimed {
                            let deliverer = deliverer.clone();
                            sending.spawn(async move { deliverer.deliver(delivery).await });
                        }
                    }
                    Err(err) => tracing::warn!(error = %err, "claiming alert deliveries failed"),
                }
            }
            tokio::select! {
                _ = &mut shutdown => break,
                Some(_) = sending.join_next(), if !sending.is_empty() => {}
                _ = tokio::time::sleep(deliverer.poll) => {}
            }
        }
        // Attempts under way end within their budget: let them record their outcome rather
        // than leave their claims to run out and the alerts to be sent again.
        while sending.join_next().await.is_some() {}
    }

    /// Claims and attempts what is due at `now` until nothing is left due (a failed attempt
    /// whose retry falls before `now` is tried again); returns how many attempts were made.
    pub async fn deliver_due(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let mut attempted = 0;
        loop {
            let claimed = self.claim(now, self.limits.concurrent).await?;
            if claimed.is_empty() {
                return Ok(attempted);
            }
            attempted += claimed.len();
            futures::future::join_all(claimed.into_iter().map(|d| self.deliver(d))).await;
        }
    }

    async fn claim(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        let claim_until = now + self.claim_duration();
        self.store
            .claim_due_deliveries(
                &self.claimer,
                now,
                claim_until,
                i64::try_from(limit).unwrap_or(i64::MAX),
                i64::try_from(self.limits.per_tenant).unwrap_or(i64::MAX),
            )
            .await
    }

    fn claim_duration(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.limits.claim).unwrap_or(chrono::Duration::seconds(60))
    }

    /// Attempts one claimed delivery and records the outcome, if the claim is still this
    /// deliverer's.
    async fn deliver(&self, delivery: Delivery) {
        let Some(outcome) = self.attempt_holding_claim(&delivery).await else {
            return;
        };
        match self
            .store
            .finish_delivery(delivery.tenant_id, delivery.id, &self.claimer, outcome)
            .await
        {
            Ok(true) => {}
            Ok(false) => tracing::warn!(delivery = %delivery.id, claimer = %self.claimer,
                "the claim on an alert delivery ran out before its outcome was recorded; the deliverer that holds it now records its own"),
            Err(err) => tracing::warn!(delivery = %delivery.id, error = %err,
                "recording an alert delivery's outcome failed; it is retried once its claim runs out"),
        }
    }

    /// The attempt within its budget, the claim extended every third of the claim time while
    /// it runs. `None` when the claim could not be extended (another deliverer may hold the
    /// delivery by now): the attempt is abandoned rather than risk a second send.
    async fn attempt_holding_claim(&self, delivery: &Delivery) -> Option<DeliveryOutcome> {
        let budget = self.limits.attempt_budget;
        let attempt = tokio::time::timeout(budget, self.send(delivery));
        tokio::pin!(attempt);
        let mut extend = tokio::time::interval(self.limits.claim / 3);
        extend.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate and the claim is fresh.
        extend.tick().await;
        loop {
            tokio::select! {
                result = &mut attempt => {
                    let result = result.unwrap_or_else(|_| Err((None, format!(
                        "no answer within {} s (each attempt's budget, so one slow endpoint holds back no other)",
                        budget.as_secs_f64()
                    ))));
                    return Some(self.outcome(delivery, result));
                }
                _ = extend.tick() => {
                    let until = Utc::now() + self.claim_duration();
                    match self.store.extend_delivery_claim(delivery.tenant_id, delivery.id, &self.claimer, until).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(delivery = %delivery.id, claimer = %self.claimer,
                                "lost the claim on an alert delivery while sending it; abandoning this attempt");
                            return None;
                        }
                        Err(err) => {
                            tracing::warn!(delivery = %delivery.id, error = %err,
                                "could not extend the claim on an alert delivery; abandoning this attempt");
                            return None;
                        }
                    }
                }
            }
        }
    }

    fn outcome(
        &self,
        delivery: &Delivery,
        result: Result<i64, (Option<i64>, String)>,
    ) -> DeliveryOutcome {
        let now = Utc::now();
        match result {
            Ok(code) => DeliveryOutcome {
                status: DeliveryStatus::Delivered,
                next_attempt_at: now,
                response_code: Some(code),
                last_error: None,
                at: now,
            },
            Err((code, error)) => {
                let give_up = delivery.attempts >= self.retry.max_attempts;
                let delay = chrono::Duration::from_std(self.retry.delay_after(delivery.attempts))
                    .unwrap_or_else(|_| chrono::Duration::hours(6));
                tracing::warn!(delivery = %delivery.id, attempts = delivery.attempts, %error, give_up, "alert delivery failed");
                DeliveryOutcome {
                    status: if give_up {
                        DeliveryStatus::Failed
                    } else {
                        DeliveryStatus::Pending
                    },
                    next_attempt_at: now + delay,
                    response_code: code,
                    last_error: Some(error),
                    at: now,
                }
            }
        }
    }

    /// Sends one delivery; the HTTP status on success, or the status (if any) and why not.
    async fn send(&self, delivery: &Delivery) -> Result<i64, (Option<i64>, String)> {
        let subscription = self
            .store
            .subscriptions(delivery.tenant_id)
            .await
            .map_err(|e| (None, format!("reading the subscription: {e}")))?
            .into_iter()
            .find(|s| s.id == delivery.subscription_id)
            .ok_or((None, "the subscription was deleted".to_string()))?;
        match subscription.channel.as_str() {
            "webhook" => self.send_webhook(delivery, &subscription).await,
            "email" => self.send_email(delivery, &subscription).await,
            other => Err((None, format!("unknown channel `{other}`"))),
        }
    }

    async fn send_webhook(
        &self,
        delivery: &Delivery,
        subscription: &Subscription,
    ) -> Result<i64, (Option<i64>, String)> {
        let secret = self
            .key
            .open(delivery.tenant_id, &subscription.secret_ciphertext)
            .map_err(|e| (None, format!("opening the signing secret: {e}")))?;
        // Literal addresses never reach the resolver, and the policy may have changed since the
        // subscription was made: check the URL here.
        let url = reqwest::Url::parse(&subscription.target)
            .map_err(|e| (None, format!("`{}` is not a URL: {e}", subscription.target)))?;
        self.egress.check_url(&url).map_err(|e| (None, e))?;
        let mut body = delivery.payload.clone();
        if let Some(obj) = body.as_object_mut() {
            obj.insert("delivery_id".into(), json!(delivery.id));
            obj.insert("attempt".into(), json!(delivery.attempts));
            obj.insert("sent_at".into(), json!(Utc::now()));
        }
        let body = serde_json::to_vec(&body).expect("payload serialises");
        let signature = sign(secret.expose_secret().as_bytes(), &body);
        let response = self
            .http
            .post(&subscription.target)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .header("X-CloudSpend-Event", delivery.kind.as_str())
            .header("X-CloudSpend-Delivery", delivery.id.to_string())
            .body(body)
            .send()
            .await
            .map_err(|e| {
                (
                    None,
                    format!("POST {}: {}", subscription.target, describe(&e)),
                )
            })?;
        let code = i64::from(response.status().as_u16());
        if response.status().is_success() {
            Ok(code)
        } else {
            Err((Some(code), format!("the endpoint answered HTTP {code}")))
        }
    }
}

impl Deliverer {
    async fn send_email(
        &self,
        delivery: &Delivery,
        subscription: &Subscription,
    ) -> Result<i64, (Option<i64>, String)> {
        use lettre::AsyncTransport;
        let Some(mailer) = &self.smtp else {
            return Err((
                None,
                "e-mail cannot be sent: SMTP is not configured on this server (set CLOUDSPEND_SMTP_URL and CLOUDSPEND_SMTP_FROM)"
                    .to_string(),
            ));
        };
        let to: lettre::message::Mailbox = subscription.target.parse().map_err(|e| {
            (
                None,
                format!("`{}` is not an address: {e}", subscription.target),
            )
        })?;
        let (subject, text) = email_text(&delivery.payload);
        let message = lettre::Message::builder()
            .from(mailer.from.clone())
            .to(to)
            .subject(subject)
            .header(lettre::message::header::ContentType::TEXT_PLAIN)
            .body(text)
            .map_err(|e| (None, format!("building the e-mail: {e}")))?;
        match mailer.transport.send(message).await {
            Ok(response) => Ok(i64::from(u16::from(response.code()))),
            Err(e) => Err((
                e.status().map(|c| i64::from(u16::from(c))),
                format!("SMTP: {e}"),
            )),
        }
    }
}

/// A plain-text rendering of an alert payload: subject line and body. Amounts are shown in
/// cents; the JSON payload keeps the exact figures.
pub fn email_text(payload: &serde_json::Value) -> (String, String) {
    fn text(v: &serde_json::Value) -> &str {
        v.as_str().unwrap_or("?")
    }
    fn cents(v: &serde_json::Value) -> String {
        v.as_str()
            .and_then(|s| s.parse::<Money>().ok())
            .map_or_else(|| "?".to_string(), |m| m.round_to_cents().to_string())
    }
    fn describe(a: &serde_json::Value) -> String {
        let cause = a["root_causes"]
            .as_array()
            .and_then(|c| c.first())
            .map(|c| {
                format!(
                    "; top cause {} {} (+{})",
                    text(&c["dimension"]),
                    text(&c["key"]),
                    cents(&c["impact"])
                )
            })
            .unwrap_or_default();
        format!(
            "{} {} to {}: expected {}, actual {} (impact {}, {}%), severity {}{cause}",
            text(&a["series"]),
            text(&a["first_day"]),
            text(&a["last_day"]),
            cents(&a["expected"]),
            cents(&a["actual"]),
            cents(&a["impact"]),
            a["impact_percent"]
                .as_f64()
                .map_or("?".into(), |p| format!("{p:.1}")),
            text(&a["severity"]),
        )
    }
    match payload["event"].as_str() {
        Some("anomaly.detected") => {
            let a = &payload["anomaly"];
            (
                format!(
                    "[CloudSpend] Cost anomaly: {} +{} ({})",
                    text(&a["series"]),
                    cents(&a["impact"]),
                    text(&a["severity"])
                ),
                format!(
                    "CloudSpend found a cost anomaly.\n\n{}\n\nOpen the dashboard's Anomalies page to acknowledge it or mark it planned.\n",
                    describe(a)
                ),
            )
        }
        Some("anomaly.digest") => {
            let list = payload["anomalies"].as_array().cloned().unwrap_or_default();
            (
                format!("[CloudSpend] {} new cost anomalies", list.len()),
                list.iter()
                    .map(|a| format!("- {}\n", describe(a)))
                    .collect(),
            )
        }
        _ => (
            format!("[CloudSpend] {}", text(&payload["event"])),
            serde_json::to_string_pretty(payload).unwrap_or_default(),
        ),
    }
}

fn describe(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "timed out".into()
    } else if err.is_connect() {
        "could not connect".into()
    } else {
        err.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn backoff_grows_fourfold_and_is_capped() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay_after(1), Duration::from_secs(30));
        assert_eq!(p.delay_after(2), Duration::from_secs(120));
        assert_eq!(p.delay_after(5), Duration::from_secs(7680));
        assert_eq!(p.delay_after(9), Duration::from_secs(6 * 3600));
    }
}
