//! The rules RS001–RS501 on one workload. Each rule is one function; `check` runs those the
//! policy turns on and the skip annotation does not exempt.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::change_cause;
use crate::config::{EffectivePolicy, Params};
use crate::finding::Finding;
use crate::rule::{Action, RuleId, Severity};
use crate::workload::{AppContainer, ProbeTiming, Workload, defaults, scaled_value};

pub const SKIP_ANNOTATION: &str = "rollout-safe.dev/skip";
pub const SKIP_REASON_ANNOTATION: &str = "rollout-safe.dev/skip-reason";
pub const CHANGE_CAUSE_ANNOTATION: &str = "kubernetes.io/change-cause";

/// What is known about the workload's surroundings (other files in an audit, or the cluster).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// A HorizontalPodAutoscaler targets the workload (RS405 does not apply).
    pub autoscaled: bool,
    /// Whether a PodDisruptionBudget selects the workload's pods; `None` when unknown (RS601 is skipped).
    pub pdb_covered: Option<bool>,
}

impl Facts {
    /// The facts for `w` from what its namespace holds: the selectors of its
    /// PodDisruptionBudgets and the (kind, name) scale targets of its HPAs. RS601 is only
    /// asked of workloads that run (or may scale to) several replicas.
    pub fn gather<'a>(
        w: &Workload,
        pdb_selectors: impl IntoIterator<
            Item = &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
        >,
        hpa_targets: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Facts {
        let autoscaled = hpa_targets
            .into_iter()
            .any(|(kind, name)| kind == w.kind().as_str() && name == w.name());
        let multi = autoscaled || w.replicas().is_some_and(|r| r >= 2);
        let labels = w.pod_labels();
        Facts {
            autoscaled,
            pdb_covered: multi.then(|| {
                pdb_selectors
                    .into_iter()
                    .any(|s| crate::selector::selector_matches(s, &labels))
            }),
        }
    }
}

/// Runs every applicable rule. `old` is the object before an update (RS301 needs it).
pub fn check(
    workload: &Workload,
    old: Option<&Workload>,
    policy: &EffectivePolicy,
    facts: &Facts,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let skipped = skipped_rules(workload, policy, &mut out);
    let mut ctx = Ctx {
        w: workload,
        policy,
        skipped,
        out,
    };
    ctx.run(RuleId::RS101, |c| probes_present(c, RuleId::RS101));
    ctx.run(RuleId::RS102, |c| probes_present(c, RuleId::RS102));
    ctx.run(RuleId::RS103, rs103_liveness_differs);
    ctx.run(RuleId::RS104, rs104_startup_time);
    ctx.run(RuleId::RS105, rs105_named_ports);
    ctx.run(RuleId::RS201, rs201_prestop);
    ctx.run(RuleId::RS202, rs202_grace_period);
    if let Some(old) = old {
        ctx.run(RuleId::RS301, |c| rs301_change_cause(c, old));
    }
    ctx.run(RuleId::RS401, rs401_max_unavailable);
    ctx.run(RuleId::RS402, rs402_recreate);
    ctx.run(RuleId::RS403, rs403_history);
    ctx.run(RuleId::RS404, rs404_progress_deadline);
    if !facts.autoscaled {
        ctx.run(RuleId::RS405, rs405_replicas);
    }
    ctx.run(RuleId::RS501, rs501_image_pinned);
    if facts.pdb_covered == Some(false) {
        ctx.run(RuleId::RS601, |c| {
            c.report(
                RuleId::RS601,
                None,
                "spec.selector".into(),
                "no PodDisruptionBudget selects its pods, so a node drain can evict them all at once".into(),
                "add a PodDisruptionBudget (e.g. maxUnavailable: 1) whose selector matches the pod labels".into(),
            )
        });
    }
    ctx.out
}

struct Ctx<'a> {
    w: &'a Workload,
    policy: &'a EffectivePolicy,
    skipped: BTreeSet<RuleId>,
    out: Vec<Finding>,
}

impl Ctx<'_> {
    fn run(&mut self, rule: RuleId, f: impl FnOnce(&mut Self)) {
        if rule.applies_to(self.w.kind())
            && self.policy.action(rule) != Action::Off
            && !self.skipped.contains(&rule)
        {
            f(self);
        }
    }

    fn params(&self) -> &Params {
        &self.policy.params
    }

    fn report(
        &mut self,
        rule: RuleId,
        container: Option<&Container>,
        field: String,
        what: String,
        fix: String,
    ) {
        let action = self.policy.action(rule);
        let object = self.w.object_ref();
        let message = match container {
            Some(c) => format!("{object}: container {:?} {what} ({field})", c.name),
            None => format!("{object}: {what} ({field})"),
        };
        self.out.push(Finding {
            rule,
            action,
            severity: action.severity().unwrap_or(Severity::Warning),
            object,
            container: container.map(|c| c.name.clone()),
            field,
            message,
            fix,
        });
    }
}

/// A `rollout-safe.dev/skip` annotation, read once for every place that honours it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    /// The annotation as written.
    pub list: String,
    pub rules: BTreeSet<RuleId>,
    /// Entries that name no rule.
    pub unknown: Vec<String>,
    /// A non-empty `rollout-safe.dev/skip-reason` is present; without it the skip is ignored.
    pub has_reason: bool,
}

impl Skip {
    /// Reads the annotations through `get`; `None` when there is no skip annotation.
    pub fn read<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Option<Skip> {
        let list = get(SKIP_ANNOTATION)?;
        let mut rules = BTreeSet::new();
        let mut unknown = Vec::new();
        for id in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match id.parse() {
                Ok(r) => {
                    rules.insert(r);
                }
                Err(_) => unknown.push(id.to_string()),
            }
        }
        Some(Skip {
            list: list.to_string(),
            rules,
            unknown,
            has_reason: get(SKIP_REASON_ANNOTATION).is_some_and(|r| !r.trim().is_empty()),
        })
    }

    /// Whether `rule` is exempted (named, with a reason).
    pub fn exempts(&self, rule: RuleId) -> bool {
        self.has_reason && self.rules.contains(&rule)
    }

    pub fn of(w: &Workload) -> Option<Skip> {
        Skip::read(|k| w.annotation(k))
    }
}

/// The rules a workload's skip annotation exempts; RS001 reports a skip without a reason
/// (which is then ignored) and unknown rule IDs.
fn skipped_rules(
    w: &Workload,
    policy: &EffectivePolicy,
    out: &mut Vec<Finding>,
) -> BTreeSet<RuleId> {
    let Some(skip) = Skip::of(w) else {
        return BTreeSet::new();
    };
    let action = policy.action(RuleId::RS001);
    if action != Action::Off {
        let object = w.object_ref();
        let mut note = |what: String, fix: &str| {
            out.push(Finding {
                rule: RuleId::RS001,
                action,
                severity: action.severity().unwrap_or(Severity::Warning),
                object: object.clone(),
                container: None,
                field: format!("metadata.annotations[{SKIP_ANNOTATION}]"),
                message: format!("{object}: {what} (metadata.annotations[{SKIP_ANNOTATION}])"),
                fix: fix.to_string(),
            })
        };
        if !skip.has_reason {
            note(
                format!(
                    "skips {:?} without a {SKIP_REASON_ANNOTATION} annotation, so the skip is ignored",
                    skip.list
                ),
                "add rollout-safe.dev/skip-reason saying why these rules do not apply",
            );
        }
        if !skip.unknown.is_empty() {
            note(
                format!("skip names unknown rule IDs {}", skip.unknown.join(", ")),
                "use IDs from the catalogue, e.g. RS102,RS501",
            );
        }
    }
    if skip.has_reason {
        skip.rules
    } else {
        BTreeSet::new()
    }
}

fn probes_present(c: &mut Ctx<'_>, rule: RuleId) {
    let (field, fix) = match rule {
        RuleId::RS101 => (
            "readinessProbe",
            "add a readinessProbe so the Service and the rollout only count pods that can serve",
        ),
        _ => (
            "livenessProbe",
            "add a livenessProbe (a cheaper check than readiness, with a higher failureThreshold) so a hung process is restarted",
        ),
    };
    for ac in c.w.app_containers() {
        let probe = match rule {
            RuleId::RS101 => &ac.container.readiness_probe,
            _ => &ac.container.liveness_probe,
        };
        if probe.is_none() {
            c.report(
                rule,
                Some(ac.container),
                format!("{}.{field}", ac.field_path()),
                format!("has no {field}"),
                fix.into(),
            );
        }
    }
}

/// A probe with Kubernetes' defaults filled in, so that spelled-out defaults compare equal.
fn normalized(p: &Probe) -> Probe {
    let mut p = p.clone();
    p.initial_delay_seconds
        .get_or_insert(defaults::PROBE_INITIAL_DELAY_SECONDS);
    p.timeout_seconds
        .get_or_insert(defaults::PROBE_TIMEOUT_SECONDS);
    p.period_seconds
        .get_or_insert(defaults::PROBE_PERIOD_SECONDS);
    p.success_threshold
        .get_or_insert(defaults::PROBE_SUCCESS_THRESHOLD);
    p.failure_threshold
        .get_or_insert(defaults::PROBE_FAILURE_THRESHOLD);
    if let Some(h) = p.http_get.as_mut() {
        h.scheme.get_or_insert_with(|| "HTTP".into());
        h.path.get_or_insert_with(|| "/".into());
    }
    p
}

fn rs103_liveness_differs(c: &mut Ctx<'_>) {
    for ac in c.w.app_containers() {
        let (Some(l), Some(r)) = (&ac.container.liveness_probe, &ac.container.readiness_probe)
        else {
            continue;
        };
        if normalized(l) == normalized(r) {
            c.report(
                RuleId::RS103,
                Some(ac.container),
                format!("{}.livenessProbe", ac.field_path()),
                "has a livenessProbe identical to its readinessProbe, so a pod that is merely busy gets restarted instead of just taken out of the Service".into(),
                "make liveness more tolerant than readiness (higher failureThreshold or periodSeconds) or check a cheaper endpoint".into(),
            );
        }
    }
}

fn rs104_startup_time(c: &mut Ctx<'_>) {
    let floor = c.params().min_startup_seconds;
    for ac in c.w.app_containers() {
        let Some(l) = &ac.container.liveness_probe else {
            continue;
        };
        if ac.container.startup_probe.is_some() {
            continue;
        }
        let timing = ProbeTiming::of(l);
        let budget = timing.failure_budget();
        if budget < i64::from(floor) {
            let ProbeTiming {
                initial_delay: delay,
                period,
                failure_threshold: failures,
            } = timing;
            c.report(
                RuleId::RS104,
                Some(ac.container),
                format!("{}.livenessProbe", ac.field_path()),
                format!(
                    "livenessProbe can restart the container {budget}s after it starts (initialDelaySeconds {delay} + periodSeconds {period} × failureThreshold {failures}), less than the {floor}s floor"
                ),
                format!("add a startupProbe, or raise initialDelaySeconds/failureThreshold so the budget is at least {floor}s"),
            );
        }
    }
}

fn rs105_named_ports(c: &mut Ctx<'_>) {
    for ac in c.w.app_containers() {
        let names: BTreeSet<&str> = ac
            .container
            .ports
            .iter()
            .flatten()
            .filter_map(|p| p.name.as_deref())
            .collect();
        let probes = [
            ("readinessProbe", &ac.container.readiness_probe),
            ("livenessProbe", &ac.container.liveness_probe),
            ("startupProbe", &ac.container.startup_probe),
        ];
        for (probe_name, probe) in probes {
            let Some(p) = probe else { continue };
            let ports = [
                ("httpGet", p.http_get.as_ref().map(|h| &h.port)),
                ("tcpSocket", p.tcp_socket.as_ref().map(|t| &t.port)),
            ];
            for (handler, port) in ports {
                if let Some(IntOrString::String(name)) = port
                    && !names.contains(name.as_str())
                {
                    c.report(
                        RuleId::RS105,
                        Some(ac.container),
                        format!("{}.{probe_name}.{handler}.port", ac.field_path()),
                        format!("{probe_name} uses port {name:?}, which is not a named port of the container, so the probe can never succeed"),
                        format!("name a containerPort {name:?} in ports, or use the port number"),
                    );
                }
            }
        }
    }
}

/// How long a preStop hook holds the pod: native sleep, or `sleep N` in an exec command.
/// `None` when it cannot be known (httpGet, scripts).
pub fn prestop_seconds(container: &Container) -> Option<i64> {
    let pre = container.lifecycle.as_ref()?.pre_stop.as_ref()?;
    if let Some(s) = &pre.sleep {
        return Some(s.seconds.clamp(0, MAX_KNOWN_PRESTOP_SECONDS));
    }
    let cmd = pre.exec.as_ref()?.command.as_ref()?;
    let words: Vec<&str> = cmd.iter().flat_map(|a| a.split_whitespace()).collect();
    words.windows(2).find_map(|w| {
        let prog = w[0].rsplit('/').next().unwrap_or(w[0]);
        (prog == "sleep").then(|| sleep_arg_seconds(w[1])).flatten()
    })
}

/// A preStop longer than this is not a drain delay but a hang (`sleep infinity`); RS202 does
/// not ask for a grace period to cover it.
pub const MAX_KNOWN_PRESTOP_SECONDS: i64 = 3600;

/// `sleep`'s argument: `15`, `15s`, `2m`, `1h`, `1.5` (rounded up); `infinity` and anything
/// else is unknown.
fn sleep_arg_seconds(arg: &str) -> Option<i64> {
    let arg = arg.trim_end_matches([';', '&']);
    let (num, unit) = match arg
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_digit() || *c == '.'))
    {
        Some((i, _)) => arg.split_at(i),
        None => (arg, ""),
    };
    let factor = match unit {
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return None,
    };
    let secs = (num.parse::<f64>().ok()? * factor).ceil();
    (secs.is_finite() && (0.0..=MAX_KNOWN_PRESTOP_SECONDS as f64).contains(&secs))
        .then_some(secs as i64)
}

fn rs201_prestop(c: &mut Ctx<'_>) {
    for ac in c.w.app_containers() {
        let has = ac
            .container
            .lifecycle
            .as_ref()
            .and_then(|l| l.pre_stop.as_ref())
            .is_some();
        if !has {
            let secs = c.params().prestop_sleep_seconds;
            c.report(
                RuleId::RS201,
                Some(ac.container),
                format!("{}.lifecycle.preStop", ac.field_path()),
                "has no preStop hook, so it is killed while endpoints still send it traffic".into(),
                format!("add lifecycle.preStop.sleep.seconds: {secs} (Kubernetes >= 1.30) or exec [\"sleep\", \"{secs}\"]"),
            );
        }
    }
}

/// The longest known preStop duration among the app containers (0 when none has one).
pub fn longest_prestop(w: &Workload) -> i64 {
    w.app_containers()
        .iter()
        .filter_map(|ac| prestop_seconds(ac.container))
        .max()
        .unwrap_or(0)
}

/// The grace period RS202 asks for.
pub fn required_grace(w: &Workload, params: &Params) -> i64 {
    longest_prestop(w).saturating_add(i64::from(params.grace_margin_seconds))
}

fn rs202_grace_period(c: &mut Ctx<'_>) {
    let grace =
        c.w.termination_grace_period()
            .unwrap_or(defaults::TERMINATION_GRACE_PERIOD_SECONDS);
    let prestop = longest_prestop(c.w);
    let margin = c.params().grace_margin_seconds;
    let need = required_grace(c.w, c.params());
    if grace < need {
        c.report(
            RuleId::RS202,
            None,
            "spec.template.spec.terminationGracePeriodSeconds".into(),
            format!("terminationGracePeriodSeconds is {grace}, which does not cover the {prestop}s preStop plus a {margin}s shutdown margin, so the app is SIGKILLed mid-shutdown"),
            format!("set terminationGracePeriodSeconds to at least {need}"),
        );
    }
}

fn rs301_change_cause(c: &mut Ctx<'_>, old: &Workload) {
    if !change_cause::template_changed(old, c.w) {
        return;
    }
    let new_cause = c.w.annotation(CHANGE_CAUSE_ANNOTATION);
    let old_cause = old.annotation(CHANGE_CAUSE_ANNOTATION);
    let problem = match (new_cause, old_cause) {
        (None, _) => "changes the pod template without a kubernetes.io/change-cause".to_string(),
        (Some(n), Some(o)) if n == o => format!(
            "changes the pod template but keeps the previous change-cause {n:?}, so rollout history will be wrong"
        ),
        _ => return,
    };
    c.report(
        RuleId::RS301,
        None,
        format!("metadata.annotations[{CHANGE_CAUSE_ANNOTATION}]"),
        problem,
        "annotate the change with kubernetes.io/change-cause (kubectl rollout-safe update does it for you)".into(),
    );
}

fn rs401_max_unavailable(c: &mut Ctx<'_>) {
    let check = |c: &mut Ctx<'_>,
                 field: &str,
                 unavailable: Result<i32, String>,
                 replicas: Option<i32>| {
        match (unavailable, replicas) {
            (Err(e), _) => c.report(
                RuleId::RS401,
                None,
                field.into(),
                format!("has an invalid value: {e}"),
                "use an integer or a percentage such as 25%".into(),
            ),
            (Ok(u), Some(r)) if r > 1 && u >= r => c.report(
                RuleId::RS401,
                None,
                field.into(),
                format!("lets a rolling update take {u} of {r} pods down at once, so the workload can be fully unavailable"),
                format!("set maxUnavailable below {r} (e.g. 0 with maxSurge 1, or 25%)"),
            ),
            _ => {}
        }
    };
    match c.w {
        Workload::Deployment(_) => {
            // Recreate is RS402's business.
            let Some(fence) = c.w.rolling_fenceposts() else {
                return;
            };
            match fence {
                Ok((_, unavailable)) => check(
                    c,
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    Ok(unavailable),
                    c.w.replicas(),
                ),
                Err((field, e)) => check(c, field, Err(e), None),
            }
        }
        Workload::StatefulSet(s) => {
            let spec = &s.spec;
            let replicas = spec.replicas.unwrap_or(defaults::REPLICAS);
            let Some(mu) = spec
                .update_strategy
                .as_ref()
                .and_then(|u| u.rolling_update.as_ref())
                .and_then(|r| r.max_unavailable.as_ref())
            else {
                return; // default 1
            };
            // The StatefulSet controller rounds this percentage up.
            let u = scaled_value(mu, replicas, true);
            check(
                c,
                "spec.updateStrategy.rollingUpdate.maxUnavailable",
                u,
                Some(replicas),
            );
        }
        Workload::DaemonSet(d) => {
            let Some(mu) = d
                .spec
                .update_strategy
                .as_ref()
                .and_then(|u| u.rolling_update.as_ref())
                .and_then(|r| r.max_unavailable.as_ref())
            else {
                return;
            };
            // Node count is unknown offline: only 100 % is certainly every pod.
            let field = "spec.updateStrategy.rollingUpdate.maxUnavailable";
            match scaled_value(mu, 100, true) {
                Ok(v) if matches!(mu, IntOrString::String(_)) && v >= 100 => c.report(
                    RuleId::RS401,
                    None,
                    field.into(),
                    "is 100%, so a rolling update can take the pod off every node at once".into(),
                    "use 1 or a smaller percentage".into(),
                ),
                Err(e) => check(c, field, Err(e), None),
                _ => {}
            }
        }
    }
}

fn rs402_recreate(c: &mut Ctx<'_>) {
    let replicas = c.w.replicas().unwrap_or(defaults::REPLICAS);
    if c.w.is_recreate() && replicas > 1 {
        c.report(
            RuleId::RS402,
            None,
            "spec.strategy.type".into(),
            format!("uses the Recreate strategy with {replicas} replicas, so every update is a full outage"),
            "use RollingUpdate unless the app truly cannot run two versions at once (then skip RS402 with a reason)".into(),
        );
    }
}

fn rs403_history(c: &mut Ctx<'_>) {
    let min = c.params().history_minimum;
    let limit =
        c.w.revision_history_limit()
            .unwrap_or(defaults::REVISION_HISTORY_LIMIT);
    if limit < min {
        let default = c.params().history_default;
        c.report(
            RuleId::RS403,
            None,
            "spec.revisionHistoryLimit".into(),
            format!("keeps {limit} old revisions (revisionHistoryLimit), fewer than {min}, so `rollout undo` may have nothing to go back to"),
            format!("set revisionHistoryLimit to {default}"),
        );
    }
}

fn rs404_progress_deadline(c: &mut Ctx<'_>) {
    let Workload::Deployment(d) = c.w else { return };
    let spec = &d.spec;
    let deadline = spec
        .progress_deadline_seconds
        .unwrap_or(defaults::PROGRESS_DEADLINE_SECONDS);
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    if deadline <= min_ready {
        c.report(
            RuleId::RS404,
            None,
            "spec.progressDeadlineSeconds".into(),
            format!("progressDeadlineSeconds {deadline} is not greater than minReadySeconds {min_ready}, so every rollout is reported as failed"),
            format!("set progressDeadlineSeconds well above {min_ready}, e.g. {}", (min_ready + 300).max(600)),
        );
    }
}

fn rs405_replicas(c: &mut Ctx<'_>) {
    let Some(replicas) = c.w.replicas() else {
        return;
    };
    let min = c.params().min_replicas;
    // 0 is a deliberate scale-down, not an availability choice.
    if replicas > 0 && replicas < min {
        c.report(
            RuleId::RS405,
            None,
            "spec.replicas".into(),
            format!("runs {replicas} replica(s), so a node failure or eviction is an outage"),
            format!("run at least {min} replicas (or target it with a HorizontalPodAutoscaler)"),
        );
    }
}

/// Whether an image reference names a digest or an explicit tag other than `latest`.
pub fn image_is_pinned(image: &str) -> bool {
    if image.contains('@') {
        return true;
    }
    // The tag is after the last ':' of the last path component (a registry port is not a tag).
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, tag)) => !tag.is_empty() && tag != "latest",
        None => false,
    }
}

fn rs501_image_pinned(c: &mut Ctx<'_>) {
    let containers: Vec<AppContainer<'_>> = c.w.app_containers();
    // Plain init containers run on every rollout too, so their images count here.
    let inits =
        c.w.pod_spec()
            .and_then(|s| s.init_containers.as_ref())
            .map(|v| {
                v.iter()
                    .enumerate()
                    .filter(|(_, ic)| ic.restart_policy.as_deref() != Some("Always"))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
    let check = |c: &mut Ctx<'_>, container: &Container, field: String| {
        let image = container.image.as_deref().unwrap_or("");
        if !image_is_pinned(image) {
            let why = if image.is_empty() {
                "has no image".to_string()
            } else {
                format!(
                    "uses image {image:?}, which is not pinned to a version, so a reschedule can silently run different code and undo cannot bring the old one back"
                )
            };
            c.report(
                RuleId::RS501,
                Some(container),
                field,
                why,
                "pin an explicit version tag (not latest) or a digest (@sha256:...)".into(),
            );
        }
    };
    for ac in containers {
        check(c, ac.container, format!("{}.image", ac.field_path()));
    }
    for (i, ic) in inits {
        check(
            c,
            ic,
            format!("spec.template.spec.initContainers[{i}].image"),
        );
    }
}
