//! RS401: a rolling update can never take every pod down.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::cel::{
    CelVariable, WHITE_SPACE, debug_quoted, has_path, lit, or_default, prefixed, re_lit,
};
use super::{
    ALL_WORKLOADS, Applies, CelForm, CelReads, Input, Report, Rule, RuleId, RuleMeta,
    WorkloadContext, WorkloadRule, rule_params,
};
use crate::rule::Action;
use crate::view::WorkloadView;
use crate::workload::{Workload, defaults, scaled_value};

pub struct MaxUnavailable;

rule_params! {}

impl Rule for MaxUnavailable {
    const META: RuleMeta = RuleMeta {
        id: RuleId::RS401,
        title: "rolling update keeps pods available",
        default_action: Action::Enforce,
        applies_to: Applies::Workloads(ALL_WORKLOADS),
        summary: "a rolling update can never take every pod down: effective maxUnavailable < replicas when replicas > 1 (DaemonSets: not 100 %), and surge/unavailable values are valid",
        why: "With maxUnavailable at or above the replica count, a rolling update may stop every old pod before a new one is ready: a full outage on every deploy, and a total one when the new version is broken.",
        fix: "set maxUnavailable below the replica count (e.g. 0 with maxSurge 1, or 25%)",
        mutation: None,
        input: Input::Object,
        exemptable: true,
    };
    type Params = Params;

    fn cel() -> Option<CelForm> {
        let mut variables = finding_variables("object", "");
        variables.extend(finding_variables("oldObject", "old"));
        Some(CelForm {
            variables,
            violation: "variables.field != ''".into(),
            message: "variables.ref + ': ' + variables.what + ' (' + variables.field + ')'".into(),
            fix: "variables.fix".into(),
            reads: CelReads::Object {
                old_same: "variables.oldField != '' && variables.oldField == variables.field"
                    .into(),
            },
            mutation: None,
            weaker: Some(WEAKER),
        })
    }
}

/// Where RS401's CEL form is weaker than the engine.
pub const WEAKER: &str = "a percentage with 10 or more significant digits (which the API server rejects) is reported as out of range without being computed";

/// CEL: `v / 100` rounded down, as `i64::div_euclid` (CEL's `/` truncates towards zero).
fn floor_div_100(v: &str) -> String {
    format!("(({v}) >= 0 ? ({v}) / 100 : -((-({v}) + 99) / 100))")
}

/// CEL for [`scaled_value`] of the int-or-string `raw` against `total`, rounding up when the
/// CEL `up` is true: (the problem, '' when valid; the value, read only when valid).
fn scaled(raw: &str, total: &str, up: &str) -> (String, String) {
    let ws = WHITE_SPACE;
    // Up to 9 significant digits: |pct × total| stays far below 2^63.
    let valid = re_lit(&format!("^{ws}*[+-]?0*[0-9]{{1,9}}{ws}*%$"));
    let digits = re_lit(&format!("^{ws}*[+-]?[0-9]+{ws}*%$"));
    let q = debug_quoted(raw);
    let pct = format!("int({raw}.substring(0, size({raw}) - 1).trim())");
    let product = format!("{pct} * ({total})");
    let rounded = format!(
        "({up} ? {} : {})",
        floor_div_100(&format!("{product} + 99")),
        floor_div_100(&product)
    );
    let out_of_range = format!("{q} + ' of ' + string({total}) + ' is out of range'");
    let problem = format!(
        "type({raw}) == int ? '' : (!{raw}.endsWith('%') ? {q} + ' is neither an integer nor a percentage' : (!{raw}.matches({valid}) ? ({raw}.matches({digits}) ? {out_of_range} : {q} + ' is not a valid percentage') : ({rounded} < -2147483648 || {rounded} > 2147483647 ? {out_of_range} : '')))"
    );
    let value = format!("type({raw}) == int ? {raw} : {rounded}");
    (problem, value)
}

/// The variables that find RS401's finding on `root`, named with `prefix`: `field` ('' when
/// there is none), `what` and `fix`.
fn finding_variables(root: &str, prefix: &str) -> Vec<CelVariable> {
    let n = |name: &str| prefixed(prefix, name);
    let v = |name: &str| format!("variables.{}", n(name));
    let spec = format!("{root}.spec");
    let rolling_update = |kind_field: &str, field: &str, default: &str| {
        or_default(
            &format!("{spec}.{kind_field}.rollingUpdate.{field}"),
            default,
        )
    };
    let (surge_problem, surge_value) = scaled(&v("surgeRaw"), &v("replicas"), "true");
    let (unavailable_problem, unavailable_value) = scaled(
        &v("unavailableRaw"),
        &v("unavailableTotal"),
        &v("unavailableUp"),
    );
    let invalid = lit("has an invalid value: ");
    let takes_down = |u: &str| {
        format!(
            "'lets a rolling update take ' + string({u}) + ' of ' + string({r}) + ' pods down at once, so the workload can be fully unavailable'",
            r = v("replicas")
        )
    };
    let effective = format!(
        "({s} == 0 && {u} == 0 ? 1 : {u})",
        s = v("surge"),
        u = v("unavailable")
    );
    let ru_field = "'spec.updateStrategy.rollingUpdate.maxUnavailable'";
    vec![
        CelVariable::new(
            n("replicas"),
            or_default(&format!("{spec}.replicas"), &defaults::REPLICAS.to_string()),
        ),
        CelVariable::new(
            n("deploymentRolling"),
            format!(
                "{root}.kind == 'Deployment' && !({} && {spec}.strategy.type == 'Recreate')",
                has_path(&format!("{spec}.strategy.type"))
            ),
        ),
        CelVariable::new(
            n("surgeRaw"),
            rolling_update("strategy", "maxSurge", &lit(defaults::MAX_SURGE)),
        ),
        CelVariable::new(
            n("unavailableRaw"),
            format!(
                "{root}.kind == 'Deployment' ? {} : {}",
                rolling_update(
                    "strategy",
                    "maxUnavailable",
                    &lit(defaults::MAX_UNAVAILABLE)
                ),
                rolling_update("updateStrategy", "maxUnavailable", "null")
            ),
        ),
        CelVariable::new(
            n("unavailableTotal"),
            format!("{root}.kind == 'DaemonSet' ? 100 : {}", v("replicas")),
        ),
        // The StatefulSet controller rounds maxUnavailable up; offline, a DaemonSet's is
        // taken of 100 nodes.
        CelVariable::new(n("unavailableUp"), format!("{root}.kind != 'Deployment'")),
        CelVariable::new(n("surgeProblem"), surge_problem),
        CelVariable::new(n("surge"), surge_value),
        CelVariable::new(
            n("unavailableProblem"),
            format!(
                "{} == null ? '' : {unavailable_problem}",
                v("unavailableRaw")
            ),
        ),
        CelVariable::new(n("unavailable"), unavailable_value),
        CelVariable::new(
            n("field"),
            format!(
                "{dr} ? ({sp} != '' ? 'spec.strategy.rollingUpdate.maxSurge' : ({up} != '' || ({r} > 1 && {effective} >= {r}) ? 'spec.strategy.rollingUpdate.maxUnavailable' : '')) : ({root}.kind == 'Deployment' || {raw} == null ? '' : ({up} != '' || ({root}.kind == 'StatefulSet' ? {r} > 1 && {u} >= {r} : type({raw}) == string && {u} >= 100) ? {ru_field} : ''))",
                dr = v("deploymentRolling"),
                sp = v("surgeProblem"),
                up = v("unavailableProblem"),
                r = v("replicas"),
                u = v("unavailable"),
                raw = v("unavailableRaw"),
            ),
        ),
        CelVariable::new(
            n("what"),
            format!(
                "{dr} && {sp} != '' ? {invalid} + {sp} : ({up} != '' ? {invalid} + {up} : ({dr} ? {} : ({root}.kind == 'StatefulSet' ? {} : 'is 100%, so a rolling update can take the pod off every node at once')))",
                takes_down(&effective),
                takes_down(&v("unavailable")),
                dr = v("deploymentRolling"),
                sp = v("surgeProblem"),
                up = v("unavailableProblem"),
            ),
        ),
        CelVariable::new(
            n("fix"),
            format!(
                "({dr} && {sp} != '') || {up} != '' ? 'use an integer or a percentage such as 25%' : ({root}.kind == 'DaemonSet' ? 'use 1 or a smaller percentage' : 'set maxUnavailable below ' + string({r}) + ' (e.g. 0 with maxSurge 1, or 25%)')",
                dr = v("deploymentRolling"),
                sp = v("surgeProblem"),
                up = v("unavailableProblem"),
                r = v("replicas"),
            ),
        ),
    ]
}

/// Reports an invalid value, or one that lets every pod go down at once.
fn judge(
    out: &mut Report<'_>,
    field: &str,
    unavailable: Result<i32, String>,
    replicas: Option<i32>,
) {
    match (unavailable, replicas) {
        (Err(e), _) => out.object(
            field,
            format!("has an invalid value: {e}"),
            "use an integer or a percentage such as 25%",
        ),
        (Ok(u), Some(r)) if r > 1 && u >= r => out.object(
            field,
            format!("lets a rolling update take {u} of {r} pods down at once, so the workload can be fully unavailable"),
            format!("set maxUnavailable below {r} (e.g. 0 with maxSurge 1, or 25%)"),
        ),
        _ => {}
    }
}

impl WorkloadRule for MaxUnavailable {
    fn check(w: &WorkloadView<'_>, _: &Params, _: &WorkloadContext<'_>, out: &mut Report<'_>) {
        match w.workload {
            Workload::Deployment(_) => {
                // Recreate is RS402's business.
                let Some(fence) = w.rolling_fenceposts() else {
                    return;
                };
                match fence {
                    Ok((_, unavailable)) => judge(
                        out,
                        "spec.strategy.rollingUpdate.maxUnavailable",
                        Ok(unavailable),
                        w.replicas(),
                    ),
                    Err((field, e)) => judge(out, field, Err(e), None),
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
                judge(
                    out,
                    "spec.updateStrategy.rollingUpdate.maxUnavailable",
                    scaled_value(mu, replicas, true),
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
                    Ok(v) if matches!(mu, IntOrString::String(_)) && v >= 100 => out.object(
                        field,
                        "is 100%, so a rolling update can take the pod off every node at once",
                        "use 1 or a smaller percentage",
                    ),
                    Err(e) => judge(out, field, Err(e), None),
                    _ => {}
                }
            }
        }
    }
}
