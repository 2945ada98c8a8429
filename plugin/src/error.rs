//! The plugin's errors. Each says what went wrong, in the words an operator needs, and keeps
//! its cause (printed as a chain: `what: why: deeper why`, TLS and connection causes included).
//! `exit::exit_code` maps them to exit codes, in one place.

use std::error::Error as StdError;
use std::fmt;

use rollout_safe_policy::PolicyError;
use rollout_safe_policy::gates::{GateSyntaxError, ResponseError};
use rollout_safe_policy::strategy::bluegreen::Refusal;
use rollout_safe_policy::strategy::canary::CanaryRefusal;
use rollout_safe_policy::strategy::edit::EditError;
use rollout_safe_policy::strategy::gates::RecordError;
use rollout_safe_policy::strategy::siblings::SiblingError;
use rollout_safe_policy::strategy::switch::Conflict;

/// A boxed cause, for the few sources whose type is not worth naming.
pub type Cause = Box<dyn StdError + Send + Sync>;

/// What the plugin asked the API server when it got an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiOp {
    /// RBAC verb: `get`, `list`, `watch`, `patch`, `create`, `delete`.
    pub verb: &'static str,
    /// `deployments.apps`, `replicasets.apps`, `pods`, `events`, `services`.
    pub resource: &'static str,
    pub name: Option<String>,
    /// The namespace (empty: every namespace).
    pub namespace: String,
    /// The API server's URL.
    pub server: String,
    /// A 422 on this request comes from what the user asked for (exit 2) rather than from the
    /// cluster (exit 5).
    pub user_input: bool,
}

impl ApiOp {
    pub fn user_input(mut self) -> Self {
        self.user_input = true;
        self
    }

    /// `deployments.apps "web" in namespace "shop"`
    pub fn object(&self) -> String {
        match &self.name {
            Some(n) => format!("{} {n:?} in namespace {:?}", self.resource, self.namespace),
            None => format!("{} in namespace {:?}", self.resource, self.namespace),
        }
    }
}

/// How the API server refused a request (its `Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    NotFound,
    /// An admission webhook denied the write (a policy, whatever code it chose).
    AdmissionDenied,
    Forbidden,
    Unauthorized,
    Conflict,
    /// 422: the object is invalid.
    Invalid,
    Other,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input or usage.
    #[error("{0}")]
    Usage(String),
    #[error("cannot read policy file {path}")]
    PolicyUnreadable {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("in {path}")]
    PolicyInvalid {
        path: String,
        #[source]
        source: PolicyError,
    },
    /// An image or env edit names what the workload does not have.
    #[error(transparent)]
    Edit(#[from] EditError),
    #[error(transparent)]
    Sibling(#[from] SiblingError),
    /// The workload is kept in step with Git by Argo CD or Flux (`--allow-gitops-owned`).
    #[error(transparent)]
    GitopsOwned(#[from] rollout_safe_policy::gitops::Refusal),
    /// A blue-green that cannot go on as asked; `hint`: a command that helps.
    #[error("{refusal}{}", hint_text(.hint))]
    BlueGreen {
        refusal: Refusal,
        hint: Option<String>,
    },
    /// A canary that cannot go on as asked; `hint`: a command that helps.
    #[error("{refusal}{}", hint_text(.hint))]
    Canary {
        refusal: CanaryRefusal,
        hint: Option<String>,
    },
    /// The pre-flight refused the spec about to be written (`action`: `update deployment/web`).
    #[error(
        "refusing to {action}: the resulting spec violates {enforced} enforced rule(s) (listed above); fix them, or pass --force to apply anyway"
    )]
    Violations { action: String, enforced: usize },
    /// Someone else changed the Service meanwhile; nothing was clobbered.
    #[error(transparent)]
    Conflict(#[from] Conflict),
    /// The rollout did not happen as asked (and what was left in place).
    #[error("{0}")]
    RolloutFailed(String),
    /// The API server answered with an error `Status`; `message` says what was refused and
    /// quotes the server.
    #[error("{message}")]
    ApiStatus {
        op: Box<ApiOp>,
        refused: Refused,
        message: String,
    },
    /// The request got no answer from the API server (connection, TLS, timeout…).
    #[error("cannot {} {} (API server {})", .op.verb, .op.object(), .op.server)]
    ApiUnreachable {
        op: Box<ApiOp>,
        #[source]
        source: kube::Error,
    },
    #[error("cannot load the kubeconfig")]
    Kubeconfig(#[source] kube::config::KubeconfigError),
    #[error("the kubeconfig has no current-context; pass --context NAME")]
    NoCurrentContext,
    /// `--context` names a context the kubeconfig does not have (`known`: the ones it has).
    #[error("context {context:?} is not in the kubeconfig (contexts: {known})")]
    UnknownContext { context: String, known: String },
    /// `$KUBECONFIG` lists only files that do not exist.
    #[error(
        "no kubeconfig: none of the files in $KUBECONFIG exist ({listed}); pass --kubeconfig FILE or fix $KUBECONFIG"
    )]
    NoKubeconfig { listed: String },
    #[error("cannot build a client for {server}")]
    Client {
        server: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "gave up after {attempts} conflicting writes: {what} keeps changing under us (another controller or user is writing to it); nothing was written"
    )]
    KeepsChanging { what: String, attempts: usize },
    #[error(
        "{what} in namespace {namespace:?} as read has no resourceVersion to guard the write with"
    )]
    NoResourceVersion { what: String, namespace: String },
    #[error("the selector of {owner} in namespace {namespace:?} cannot be used")]
    Selector {
        owner: String,
        namespace: String,
        #[source]
        source: Cause,
    },
    /// The watched workload was deleted; `context` says when (` during the rollback`).
    #[error("{workload} was deleted{context}")]
    Deleted {
        workload: String,
        context: &'static str,
    },
    #[error("every watch of {workload} ended")]
    WatchesEnded { workload: String },
    #[error("cannot encode {what}")]
    Encode {
        what: String,
        #[source]
        source: Cause,
    },
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    /// `export admission-policy` cannot express the policy as asked (`context`: the file).
    #[error("cannot export the admission policies{}", .context.as_ref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Export {
        context: Option<String>,
        #[source]
        source: rollout_safe_policy::admission_policy::ExportError,
    },
    #[error("cannot write to stdout")]
    Stdout(#[source] std::io::Error),
    /// A `--gate` that cannot be read.
    #[error(transparent)]
    GateSyntax(#[from] GateSyntaxError),
    /// The Prometheus client cannot be built (URL, token or CA file).
    #[error("metric gates")]
    Prometheus(#[source] Box<crate::metrics::MetricsError>),
    /// The pre-flight query of a gate was refused by Prometheus: nothing was written.
    #[error(
        "gate {gate}: the pre-flight query was refused; nothing was written. Query sent: {query}"
    )]
    GateQueryRefused {
        gate: String,
        query: String,
        #[source]
        source: Box<crate::metrics::MetricsError>,
    },
    /// A gate's query cannot be judged (several series, a range vector): nothing was written.
    #[error(
        "gate {gate}: the pre-flight query cannot be used as a gate; nothing was written. Query sent: {query}"
    )]
    GateQueryUnusable {
        gate: String,
        query: String,
        #[source]
        source: Box<ResponseError>,
    },
    /// The gates recorded on the workload cannot be read back.
    #[error("cannot read the metric gates recorded on {workload}")]
    GateRecord {
        workload: String,
        #[source]
        source: RecordError,
    },
    /// A gate fails (or cannot be judged): the step asked for is refused.
    #[error("{action} refused: {why}{}", hint_text(.hint))]
    GateRefused {
        action: String,
        why: String,
        hint: Option<String>,
        /// Inconclusive rather than failed (no answer, no data).
        inconclusive: bool,
    },
    /// An error already printed where it happened (before the clean-up that followed it); it
    /// ends the command as the error itself would.
    #[error("{0}")]
    Reported(Box<Error>),
}

fn hint_text(hint: &Option<String>) -> String {
    hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default()
}

impl Error {
    pub fn usage(msg: impl fmt::Display) -> Self {
        Error::Usage(msg.to_string())
    }

    pub fn encode(what: impl Into<String>, source: impl Into<Cause>) -> Self {
        Error::Encode {
            what: what.into(),
            source: source.into(),
        }
    }

    /// A blue-green refusal, with the command that would help.
    pub fn blue_green(refusal: Refusal, hint: Option<String>) -> Self {
        Error::BlueGreen { refusal, hint }
    }

    /// A canary refusal, with the command that would help.
    pub fn canary(refusal: CanaryRefusal, hint: Option<String>) -> Self {
        Error::Canary { refusal, hint }
    }

    /// Whether the error was printed already (see [`Error::Reported`]).
    pub fn is_reported(&self) -> bool {
        matches!(self, Error::Reported(_))
    }
}

impl From<Refusal> for Error {
    fn from(refusal: Refusal) -> Self {
        Error::BlueGreen {
            refusal,
            hint: None,
        }
    }
}

impl From<CanaryRefusal> for Error {
    fn from(refusal: CanaryRefusal) -> Self {
        Error::Canary {
            refusal,
            hint: None,
        }
    }
}

/// The error and every cause under it, `: `-separated. A cause whose text its parent already
/// quotes (kube's `ServiceError: client error (Connect)` quotes hyper's `client error
/// (Connect)`) is not repeated.
pub fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Quoting(#[source] std::io::Error);

    #[test]
    fn the_chain_names_every_cause_once() {
        let io = std::io::Error::other("invalid peer certificate: UnknownIssuer");
        let e = Error::encode("the answer", Quoting(io));
        assert_eq!(
            chain(&e),
            "cannot encode the answer: outer: invalid peer certificate: UnknownIssuer"
        );
        let e = Error::blue_green(
            Refusal::CanaryUnderWay {
                deployment: "shop".into(),
            },
            Some("kubectl rollout-safe canary abort deployment/shop -n x".into()),
        );
        assert_eq!(
            chain(&e),
            "deployment/shop has a canary under way; finish or abort it first (kubectl rollout-safe canary abort deployment/shop -n x)"
        );
        let inner = Error::usage("bad");
        let e = Error::Reported(Box::new(inner));
        assert!(e.is_reported());
        assert_eq!(chain(&e), "bad");
    }
}
