//! Prometheus metrics, served as text on the plain-HTTP metrics port.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Which webhook path answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Webhook {
    Mutate,
    Validate,
}

impl Webhook {
    pub fn as_str(self) -> &'static str {
        match self {
            Webhook::Mutate => "mutate",
            Webhook::Validate => "validate",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    webhook: &'static str,
    operation: &'static str,
    kind: &'static str,
    decision: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct FindingLabels {
    rule: &'static str,
    action: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RuleLabels {
    rule: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct WebhookLabels {
    webhook: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct FileLabels {
    file: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CacheLabels {
    resource: &'static str,
}

/// The outcome of one admission request, as the `decision` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Allowed with nothing to change.
    Allowed,
    /// Allowed with warnings (validate) or with warnings and no patch (mutate).
    Warned,
    /// Allowed with a JSONPatch.
    Patched,
    /// Denied by an `enforce` rule.
    Denied,
    /// Denied because the object could not be read (a field of the wrong type).
    Invalid,
    /// Not answered with an AdmissionReview: 4xx for a malformed body.
    BadRequest,
    /// The evaluation failed internally (answered per `--fail-open`).
    Error,
    /// Not answered within `--request-timeout` (503; failurePolicy decides).
    Timeout,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::Warned => "warned",
            Decision::Patched => "patched",
            Decision::Denied => "denied",
            Decision::Invalid => "invalid",
            Decision::BadRequest => "bad_request",
            Decision::Error => "error",
            Decision::Timeout => "timeout",
        }
    }
}

/// The file a reload failure is about (the `file` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchedFile {
    Certificate,
    Policy,
}

impl WatchedFile {
    pub fn as_str(self) -> &'static str {
        match self {
            WatchedFile::Certificate => "certificate",
            WatchedFile::Policy => "policy",
        }
    }
}

/// Every metric the webhook exports, and the registry that encodes them. Clones share the
/// same series (prometheus-client metrics are reference-counted).
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    requests: Family<RequestLabels, Counter>,
    findings: Family<FindingLabels, Counter>,
    mutations: Family<RuleLabels, Counter>,
    duration: Family<WebhookLabels, Histogram>,
    reload_failures: Family<FileLabels, Counter>,
    reloads: Family<FileLabels, Counter>,
    cert_expiry: Gauge,
    cache_ready: Family<CacheLabels, Gauge>,
    server_version_known: Gauge,
}

/// Latency buckets from 50 µs: the policy itself takes tens of microseconds, and the API
/// server's default webhook timeout is 10 s.
const BUCKETS: [f64; 16] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0,
];

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let findings = Family::<FindingLabels, Counter>::default();
        let mutations = Family::<RuleLabels, Counter>::default();
        let duration = Family::<WebhookLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(BUCKETS)) as fn() -> Histogram,
        );
        let reload_failures = Family::<FileLabels, Counter>::default();
        let reloads = Family::<FileLabels, Counter>::default();
        let cert_expiry = Gauge::default();
        let cache_ready = Family::<CacheLabels, Gauge>::default();
        let server_version_known = Gauge::default();
        // Counter names get `_total` from the encoder.
        registry.register(
            "rollout_safe_admission_requests",
            "Admission requests by webhook, operation, kind and decision",
            requests.clone(),
        );
        registry.register(
            "rollout_safe_findings",
            "Validation findings by rule and the action in force",
            findings.clone(),
        );
        registry.register(
            "rollout_safe_mutations",
            "Fixes applied by the mutating webhook, by rule",
            mutations.clone(),
        );
        registry.register(
            "rollout_safe_admission_duration_seconds",
            "Time to answer an admission request, from body read to response",
            duration.clone(),
        );
        registry.register(
            "rollout_safe_reload_failures",
            "Changed certificate or policy files that could not be loaded (the previous one is kept)",
            reload_failures.clone(),
        );
        registry.register(
            "rollout_safe_reloads",
            "Certificate or policy files reloaded after a change",
            reloads.clone(),
        );
        registry.register(
            "rollout_safe_certificate_expiry_timestamp_seconds",
            "notAfter of the serving certificate, as a Unix timestamp",
            cert_expiry.clone(),
        );
        registry.register(
            "rollout_safe_cluster_cache_ready",
            "1 once the watch-fed cache of a resource kind has synced (--cluster-lookups)",
            cache_ready.clone(),
        );
        registry.register(
            "rollout_safe_kubernetes_version_known",
            "1 when the API server's version is known (given or discovered); 0: RS201 does not inject the native preStop sleep",
            server_version_known.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            requests,
            findings,
            mutations,
            duration,
            reload_failures,
            reloads,
            cert_expiry,
            cache_ready,
            server_version_known,
        }
    }

    /// Counts one answered request. `operation` and `kind` are bounded label values (see
    /// [`kind_label`]), so a client sending random kinds cannot blow up the series count.
    pub fn request(
        &self,
        webhook: Webhook,
        operation: &'static str,
        kind: &'static str,
        decision: Decision,
        took: Duration,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                webhook: webhook.as_str(),
                operation,
                kind,
                decision: decision.as_str(),
            })
            .inc();
        self.duration
            .get_or_create(&WebhookLabels {
                webhook: webhook.as_str(),
            })
            .observe(took.as_secs_f64());
    }

    pub fn finding(&self, rule: &'static str, action: &'static str) {
        self.findings
            .get_or_create(&FindingLabels { rule, action })
            .inc();
    }

    pub fn mutation(&self, rule: &'static str) {
        self.mutations.get_or_create(&RuleLabels { rule }).inc();
    }

    pub fn reload_failure(&self, file: WatchedFile) {
        self.reload_failures
            .get_or_create(&FileLabels {
                file: file.as_str(),
            })
            .inc();
    }

    pub fn reloaded(&self, file: WatchedFile) {
        self.reloads
            .get_or_create(&FileLabels {
                file: file.as_str(),
            })
            .inc();
    }

    pub fn set_certificate_expiry(&self, unix_seconds: i64) {
        self.cert_expiry.set(unix_seconds);
    }

    pub fn set_cache_ready(&self, resource: &'static str, ready: bool) {
        self.cache_ready
            .get_or_create(&CacheLabels { resource })
            .set(i64::from(ready));
    }

    pub fn set_server_version_known(&self, known: bool) {
        self.server_version_known.set(i64::from(known));
    }

    /// The OpenMetrics text exposition (Prometheus scrapes it as is).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an encoder error would be a bug in a label value.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

/// The `Content-Type` of [`Metrics::encode`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `kind` label: the kinds the webhook is registered for, everything else as `other`.
pub fn kind_label(kind: &str) -> &'static str {
    match kind {
        "Deployment" => "Deployment",
        "StatefulSet" => "StatefulSet",
        "DaemonSet" => "DaemonSet",
        "Scale" => "Scale",
        "Service" => "Service",
        "" => "unknown",
        _ => "other",
    }
}
