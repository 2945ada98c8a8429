//! RS105: a probe's named port exists in the container's ports.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{
    ALL_WORKLOADS, Applies, Input, Report, Rule, RuleId, RuleMeta, WorkloadContext, WorkloadRule,
    rule_params,
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
