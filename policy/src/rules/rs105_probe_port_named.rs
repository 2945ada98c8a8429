//! RS105: a probe's named port exists in the container's ports.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::cel::{AppContainerCheck, CelVariable, debug_quoted, lit};
use super::{
    ALL_WORKLOADS, Applies, CelForm, CelReads, Input, Report, Rule, RuleId, RuleMeta,
    WorkloadContext, WorkloadRule, rule_params,
};
use crate::rule::Action;
use crate::view::WorkloadView;

pub struct ProbePortNamed;

rule_params! {}

impl Rule for ProbePortNamed {
    const META: RuleMeta = RuleMeta {
        id: RuleId::RS105,
        title: "probe's named port exists",
        default_action: Action::Enforce,
        applies_to: Applies::Workloads(ALL_WORKLOADS),
        summary: "a probe's named port exists in the container's ports",
        why: "A probe on a port name the container does not declare can never succeed: readiness never comes, or liveness restarts the container in a loop.",
        fix: "name the containerPort the probe uses in the container's ports, or use the port number",
        mutation: None,
        input: Input::Object,
        exemptable: true,
    };
    type Params = Params;

    fn cel() -> Option<CelForm> {
        // The container's port names are bound once (a comprehension over a one-element list)
        // instead of being collected again for each of the six probe handlers.
        let check = AppContainerCheck::new(format!(
            "[{}].exists(names, {})",
            port_names("c"),
            COMBOS
                .iter()
                .map(|(probe, handler)| unnamed("c", probe, handler, "names"))
                .collect::<Vec<_>>()
                .join(" || ")
        ));
        let mut variables = check.variables();
        variables.push(CelVariable::new(
            "firstPortNames",
            port_names("variables.first"),
        ));
        let mut first_bad = "{'probe': '', 'handler': '', 'port': ''}".to_string();
        for (probe, handler) in COMBOS.iter().rev() {
            first_bad = format!(
                "{} ? {{'probe': '{probe}', 'handler': '{handler}', 'port': variables.first.{probe}.{handler}.port}} : {first_bad}",
                unnamed(
                    "variables.first",
                    probe,
                    handler,
                    "variables.firstPortNames"
                )
            );
        }
        variables.push(CelVariable::new("firstBad", first_bad));
        let port = debug_quoted("variables.firstBad.port");
        Some(CelForm {
            variables,
            violation: check.violation(),
            message: AppContainerCheck::message(
                &format!(
                    "variables.firstBad.probe + ' uses port ' + {port} + ', which is not a named port of the container, so the probe can never succeed'"
                ),
                "'.' + variables.firstBad.probe + '.' + variables.firstBad.handler + '.port'",
            ),
            fix: format!(
                "{} + {port} + {}",
                lit("name a containerPort "),
                lit(" in ports, or use the port number")
            ),
            reads: CelReads::Template,
            mutation: None,
            weaker: None,
        })
    }
}

/// The probes and handlers with ports, in the order the check reports them.
const COMBOS: [(&str, &str); 6] = [
    ("readinessProbe", "httpGet"),
    ("readinessProbe", "tcpSocket"),
    ("livenessProbe", "httpGet"),
    ("livenessProbe", "tcpSocket"),
    ("startupProbe", "httpGet"),
    ("startupProbe", "tcpSocket"),
];

/// CEL: the names of the container `c`'s ports.
fn port_names(c: &str) -> String {
    format!("has({c}.ports) ? {c}.ports.map(p, has(p.name), p.name) : []")
}

/// CEL: the container `c`'s `probe.handler` names a port that is not among `names`.
fn unnamed(c: &str, probe: &str, handler: &str, names: &str) -> String {
    let at = format!("{c}.{probe}.{handler}");
    format!(
        "(has({c}.{probe}) && has({at}) && type({at}.port) == string && !({at}.port in {names}))"
    )
}

impl WorkloadRule for ProbePortNamed {
    fn check(w: &WorkloadView<'_>, _: &Params, _: &WorkloadContext<'_>, out: &mut Report<'_>) {
        for ac in &w.app_containers {
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
                        out.container(
                            &ac.container.name,
                            format!("{}.{probe_name}.{handler}.port", ac.field_path()),
                            format!("{probe_name} uses port {name:?}, which is not a named port of the container, so the probe can never succeed"),
                            format!("name a containerPort {name:?} in ports, or use the port number"),
                        );
                    }
                }
            }
        }
    }
}
