//! RS201: every app container has a preStop hook. Fix: a native `sleep` (Kubernetes ≥ 1.30) or
//! `exec sleep N`.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::cel::{AppContainerCheck, CelVariable, lit};
use super::{
    ALL_WORKLOADS, Applies, CelForm, CelMutation, CelReads, FixContext, Fixes, Input, ParamKind,
    ParamType, Report, Rule, RuleId, RuleMeta, WorkloadContext, WorkloadRule, rule_params,
};
use crate::finding::Finding;
use crate::finding::Mutation;
use crate::rule::Action;
use crate::view::WorkloadView;

pub struct PreStopHook;

/// How RS201 writes the preStop hook it injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PreStopHandler {
    /// Native `sleep` action when the server supports it (Kubernetes >= 1.30), else `exec sleep`
    /// if `allowExec`, else only a warning.
    #[default]
    Auto,
    /// Always the native `lifecycle.preStop.sleep` action.
    Sleep,
    /// Always `exec: [sleep, N]` (needs a `sleep` binary in the image).
    Exec,
}

impl ParamType for PreStopHandler {
    const KIND: ParamKind = ParamKind::Choice(&["auto", "sleep", "exec"]);
}

rule_params! {
    /// Seconds the injected preStop hook sleeps
    sleep_seconds: i32 = 5 => "sleepSeconds", min 0;
    /// auto: the native sleep action on Kubernetes >= 1.30, else exec if allowExec; sleep; exec
    handler: PreStopHandler = PreStopHandler::Auto => "handler";
    /// auto may fall back to `exec sleep N` on older servers (needs a sleep binary in the image)
    allow_exec: bool = false => "allowExec";
}

impl Rule for PreStopHook {
    const META: RuleMeta = RuleMeta {
        id: RuleId::RS201,
        title: "container has a preStop hook",
        default_action: Action::Mutate,
        applies_to: Applies::Workloads(ALL_WORKLOADS),
        summary: "every app container has a preStop hook",
        why: "Endpoints are removed asynchronously: a pod that exits on SIGTERM at once still receives traffic for a few seconds from kube-proxy and ingress controllers that have not caught up, and those requests fail on every rollout.",
        fix: "add lifecycle.preStop.sleep.seconds (Kubernetes >= 1.30) or exec [\"sleep\", \"N\"]",
        mutation: Some(
            "`preStop.sleep.seconds` (Kubernetes ≥ 1.30) or `exec sleep N` when allowed",
        ),
        input: Input::Object,
        exemptable: true,
    };
    type Params = Params;

    fn cel() -> Option<CelForm> {
        let check = AppContainerCheck::new("!has(c.lifecycle) || !has(c.lifecycle.preStop)");
        // Mutating admission policies exist from Kubernetes 1.34, which has the native sleep
        // action, so `auto` is `sleep` there.
        let handler = "variables.handler == 'exec' ? dyn({'exec': {'command': ['sleep', string(variables.sleepSeconds)]}}) : dyn({'sleep': {'seconds': variables.sleepSeconds}})";
        let patches = AppContainerCheck::patches(|at| {
            format!(
                "has(c.lifecycle) ? JSONPatch{{op: 'add', path: {at} + '/lifecycle/preStop', value: variables.prestopHandler}} : JSONPatch{{op: 'add', path: {at} + '/lifecycle', value: {{'preStop': variables.prestopHandler}}}}"
            )
        });
        Some(CelForm {
            variables: check.variables(),
            violation: check.violation(),
            message: AppContainerCheck::message(
                &lit("has no preStop hook, so it is killed while endpoints still send it traffic"),
                &lit(".lifecycle.preStop"),
            ),
            fix: format!(
                "{} + string(variables.sleepSeconds) + {} + string(variables.sleepSeconds) + {}",
                lit("add lifecycle.preStop.sleep.seconds: "),
                lit(" (Kubernetes >= 1.30) or exec [\"sleep\", \""),
                lit("\"]")
            ),
            reads: CelReads::Template,
            mutation: Some(CelMutation {
                variables: vec![CelVariable::new("prestopHandler", handler)],
                patches,
            }),
            weaker: None,
        })
    }
}

impl WorkloadRule for PreStopHook {
    fn check(w: &WorkloadView<'_>, p: &Params, _: &WorkloadContext<'_>, out: &mut Report<'_>) {
        for ac in &w.app_containers {
            let has = ac
                .container
                .lifecycle
                .as_ref()
                .and_then(|l| l.pre_stop.as_ref())
                .is_some();
            if !has {
                let secs = p.sleep_seconds;
                out.container(
                    &ac.container.name,
                    format!("{}.lifecycle.preStop", ac.field_path()),
                    "has no preStop hook, so it is killed while endpoints still send it traffic",
                    format!("add lifecycle.preStop.sleep.seconds: {secs} (Kubernetes >= 1.30) or exec [\"sleep\", \"{secs}\"]"),
                );
            }
        }
    }

    fn fix(
        w: &WorkloadView<'_>,
        p: &Params,
        cx: &FixContext<'_>,
        findings: &[Finding],
        fixes: &mut Fixes,
    ) {
        let secs = p.sleep_seconds;
        let sleep = || json!({"sleep": {"seconds": secs}});
        let exec = || json!({"exec": {"command": ["sleep", secs.to_string()]}});
        let handler: Value = match p.handler {
            PreStopHandler::Sleep => sleep(),
            PreStopHandler::Exec => exec(),
            PreStopHandler::Auto if cx.server.native_sleep() == Some(true) => sleep(),
            PreStopHandler::Auto if p.allow_exec => exec(),
            PreStopHandler::Auto => {
                let why = match cx.server.native_sleep() {
                    Some(_) => {
                        "the API server predates the native preStop sleep action (Kubernetes 1.30)"
                    }
                    // An older server rejects every object carrying `sleep`: warn only.
                    None => {
                        "the API server's version is unknown, and servers before Kubernetes 1.30 reject the native preStop sleep action"
                    }
                };
                fixes.warnings.extend(findings.iter().map(|f| format!(
                    "{} (not fixed: {why}, and the policy does not allow `exec sleep`; set RS201 allowExec: true if the image has a sleep binary, or give the webhook --kubernetes-version)",
                    f.one_line()
                )));
                return;
            }
        };
        for f in findings {
            let Some(ac) = w
                .app_containers
                .iter()
                .find(|ac| format!("{}.lifecycle.preStop", ac.field_path()) == f.field)
            else {
                continue;
            };
            let index = ac.index.to_string();
            let at = ["spec", "template", "spec", ac.list.field(), index.as_str()];
            if ac.container.lifecycle.is_some() {
                fixes.add(
                    &[&at[..], &["lifecycle", "preStop"]].concat(),
                    handler.clone(),
                );
            } else {
                fixes.add(
                    &[&at[..], &["lifecycle"]].concat(),
                    json!({"preStop": handler}),
                );
            }
            fixes.planned_prestop_seconds =
                fixes.planned_prestop_seconds.max(Some(i64::from(secs)));
            fixes.mutations.push(Mutation {
                rule: RuleId::RS201,
                field: f.field.clone(),
                description: format!("container {:?}: preStop {}", ac.container.name, handler),
            });
        }
    }
}
