//! RS202: terminationGracePeriodSeconds covers the preStop hook plus a shutdown margin. Fix:
//! raise it.

use k8s_openapi::api::core::v1::Container;
use serde_json::json;

use super::cel::{
    CelVariable, SIDECAR, container_lists, lit, not_white_space, object_message, or_default, re_lit,
};
use super::{
    ALL_WORKLOADS, Applies, CelForm, CelMutation, CelReads, FixContext, Fixes, Input, Report, Rule,
    RuleId, RuleMeta, WorkloadContext, WorkloadRule, rule_params,
};
use crate::finding::Finding;
use crate::finding::Mutation;
use crate::rule::Action;
use crate::view::WorkloadView;
use crate::workload::defaults;

pub struct GracePeriod;

rule_params! {
    /// Seconds the app gets to shut down after preStop finishes
    margin_seconds: i32 = 10 => "marginSeconds", min 0;
}

impl Rule for GracePeriod {
    const META: RuleMeta = RuleMeta {
        id: RuleId::RS202,
        title: "grace period covers preStop plus shutdown",
        default_action: Action::Mutate,
        applies_to: Applies::Workloads(ALL_WORKLOADS),
        summary: "terminationGracePeriodSeconds ≥ longest preStop + `marginSeconds`",
        why: "The grace period counts from the start of preStop: when it does not cover the hook plus the app's own shutdown, the kubelet SIGKILLs the app mid-shutdown and in-flight requests are lost.",
        fix: "raise terminationGracePeriodSeconds to at least the longest preStop plus the margin",
        mutation: Some("raise it"),
        input: Input::Object,
        exemptable: true,
    };
    type Params = Params;

    fn cel() -> Option<CelForm> {
        let seconds = prestop_seconds_cel("c");
        let mut variables = container_lists("object", "");
        variables.extend([
            CelVariable::new(
                "prestopSeconds",
                format!("([0] + variables.containers.map(c, {seconds}) + variables.initContainers.map(c, {SIDECAR}, {seconds})).max()"),
            ),
            CelVariable::new(
                "grace",
                or_default(
                    "object.spec.template.spec.terminationGracePeriodSeconds",
                    &defaults::TERMINATION_GRACE_PERIOD_SECONDS.to_string(),
                ),
            ),
            CelVariable::new("need", "variables.prestopSeconds + variables.marginSeconds"),
        ]);
        Some(CelForm {
            variables,
            violation: "variables.grace < variables.need".into(),
            message: object_message(
                "'terminationGracePeriodSeconds is ' + string(variables.grace) + ', which does not cover the ' + string(variables.prestopSeconds) + 's preStop plus a ' + string(variables.marginSeconds) + 's shutdown margin, so the app is SIGKILLed mid-shutdown'",
                "spec.template.spec.terminationGracePeriodSeconds",
            ),
            fix: format!("{} + string(variables.need)", lit("set terminationGracePeriodSeconds to at least ")),
            reads: CelReads::Template,
            mutation: Some(CelMutation {
                variables: vec![],
                patches: "variables.grace < variables.need ? [has(object.spec.template.spec) ? JSONPatch{op: 'add', path: '/spec/template/spec/terminationGracePeriodSeconds', value: variables.need} : JSONPatch{op: 'add', path: '/spec/template/spec', value: {'terminationGracePeriodSeconds': variables.need}}] : []".into(),
            }),
            weaker: Some(WEAKER),
        })
    }
}

/// Where RS202's CEL form is weaker than the engine.
pub const WEAKER: &str = "the preStop duration is known for the native sleep action and for an exec command [\"sleep\", \"N\"] (N whole seconds, the program possibly with a path); other exec commands, which the engine reads word by word (`sh -c \"sleep 5\"`, `sleep 2m`), count as 0 seconds, so the grace period they need is not checked";

/// CEL: [`prestop_seconds`] of the container `c`, for the forms CEL can read without a
/// shell's word splitting (see [`WEAKER`]); 0 when unknown.
pub fn prestop_seconds_cel(c: &str) -> String {
    let pre = format!("{c}.lifecycle.preStop");
    let secs = format!("{pre}.sleep.seconds");
    let cmd = format!("{pre}.exec.command");
    let max = MAX_KNOWN_PRESTOP_SECONDS;
    // One word (no white space) whose last path segment is `sleep`.
    let program = re_lit(&format!("^({}*/)?sleep$", not_white_space()));
    format!(
        "has({c}.lifecycle) && has({pre}) && has({pre}.sleep) ? ({secs} > {max} ? {max} : ({secs} < 0 ? 0 : {secs})) : (has({c}.lifecycle) && has({pre}) && has({pre}.exec) && has({cmd}) && size({cmd}) >= 2 && {cmd}[0].matches({program}) && {cmd}[1].matches(r'^[0-9]{{1,4}}$') && int({cmd}[1]) <= {max} ? int({cmd}[1]) : 0)"
    )
}

/// A preStop longer than this is not a drain delay but a hang (`sleep infinity`); RS202 does
/// not ask for a grace period to cover it.
pub const MAX_KNOWN_PRESTOP_SECONDS: i64 = 3600;

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

/// The longest preStop to cover: the object's own, or a hook the mutation is adding.
fn prestop_to_cover(w: &WorkloadView<'_>, planned: Option<i64>) -> i64 {
    w.app_containers
        .iter()
        .filter_map(|ac| prestop_seconds(ac.container))
        .chain(planned)
        .max()
        .unwrap_or(0)
}

impl WorkloadRule for GracePeriod {
    fn check(w: &WorkloadView<'_>, p: &Params, cx: &WorkloadContext<'_>, out: &mut Report<'_>) {
        let grace = w
            .termination_grace_period()
            .unwrap_or(defaults::TERMINATION_GRACE_PERIOD_SECONDS);
        let prestop = prestop_to_cover(w, cx.planned_prestop_seconds);
        let margin = p.margin_seconds;
        let need = prestop.saturating_add(i64::from(margin));
        if grace < need {
            out.object(
                "spec.template.spec.terminationGracePeriodSeconds",
                format!("terminationGracePeriodSeconds is {grace}, which does not cover the {prestop}s preStop plus a {margin}s shutdown margin, so the app is SIGKILLed mid-shutdown"),
                format!("set terminationGracePeriodSeconds to at least {need}"),
            );
        }
    }

    fn fix(
        w: &WorkloadView<'_>,
        p: &Params,
        _: &FixContext<'_>,
        findings: &[Finding],
        fixes: &mut Fixes,
    ) {
        let Some(f) = findings.first() else { return };
        let need = prestop_to_cover(w, fixes.planned_prestop_seconds)
            .saturating_add(i64::from(p.margin_seconds));
        match w.pod_spec() {
            Some(spec) => fixes.set(
                &["spec", "template", "spec", "terminationGracePeriodSeconds"],
                spec.termination_grace_period_seconds.is_some(),
                json!(need),
            ),
            None => fixes.add(
                &["spec", "template", "spec"],
                json!({"terminationGracePeriodSeconds": need}),
            ),
        }
        fixes.mutations.push(Mutation {
            rule: RuleId::RS202,
            field: f.field.clone(),
            description: format!("terminationGracePeriodSeconds raised to {need}"),
        });
    }
}
