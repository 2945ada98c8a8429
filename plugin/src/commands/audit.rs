//! `kubectl rollout-safe audit`: the policy over manifests (offline) or live workloads.

use std::io::Write;

use rollout_safe_policy::{Severity, audit::AuditReport};

use crate::cli::{AuditArgs, AuditFormat, FailOn, KubeArgs};
use crate::exit::{CmdResult, Exit, Failure};
use crate::{input, report};

pub async fn run(kube: &KubeArgs, args: AuditArgs) -> CmdResult {
    let policy = input::load_policy(args.policy.policy.as_deref())?;
    let rep = if args.cluster {
        cluster_report(kube, &policy).await?
    } else {
        let m = input::read_manifests(&args.files, args.recursive);
        rollout_safe_policy::audit(&policy, &m.documents, m.errors)
    };
    emit(&rep, args.output, args.fail_on)
}

/// `audit --cluster`: the live Deployments, StatefulSets and DaemonSets of the namespace (`-n`,
/// else the context's) or of every namespace (`-A`), audited together with the live
/// PodDisruptionBudgets, HorizontalPodAutoscalers and Services (RS601, RS405, RS603). Each
/// object's location is `cluster:NAMESPACE/KIND/NAME`. Kinds the user may not list are skipped
/// with a note (workload kinds: a cluster error when none can be listed).
async fn cluster_report(
    kube: &KubeArgs,
    policy: &rollout_safe_policy::RolloutPolicy,
) -> Result<AuditReport, Failure> {
    use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    use rollout_safe_policy::{Document, Notice};

    let cluster = crate::cluster::Cluster::connect(kube).await?;
    let scope = if cluster.all_namespaces {
        "all namespaces".to_owned()
    } else {
        format!("namespace {}", cluster.namespace)
    };
    let mut docs: Vec<Document> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut workload_errors = Vec::new();

    async fn list<K>(
        cluster: &crate::cluster::Cluster,
        kind: &str,
        resource: &str,
        docs: &mut Vec<Document>,
    ) -> Result<(), Failure>
    where
        K: kube::Resource<DynamicType = ()>
            + k8s_openapi::Resource
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    {
        let api: kube::Api<K> = if cluster.all_namespaces {
            kube::Api::all(cluster.client.clone())
        } else {
            kube::Api::namespaced(cluster.client.clone(), &cluster.namespace)
        };
        let ns = if cluster.all_namespaces {
            ""
        } else {
            cluster.namespace.as_str()
        };
        let items = api
            .list(&kube::api::ListParams::default())
            .await
            .map_err(|e| {
                crate::cluster::errors::api_failure(
                    e,
                    crate::cluster::errors::Op::new("list", resource, None, ns),
                )
            })?;
        for item in items.items {
            let mut value = serde_json::to_value(&item).map_err(anyhow::Error::from)?;
            value["apiVersion"] =
                serde_json::Value::String(<K as k8s_openapi::Resource>::API_VERSION.to_owned());
            value["kind"] = serde_json::Value::String(kind.to_owned());
            if let Some(m) = value.get_mut("metadata").and_then(|m| m.as_object_mut()) {
                m.remove("managedFields");
            }
            let name = value
                .pointer("/metadata/name")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned();
            let namespace = value
                .pointer("/metadata/namespace")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned();
            docs.push(Document {
                source: format!("cluster:{namespace}/{kind}/{name}"),
                line: 0,
                value,
            });
        }
        Ok(())
    }

    for (kind, resource) in [
        ("Deployment", "deployments.apps"),
        ("StatefulSet", "statefulsets.apps"),
        ("DaemonSet", "daemonsets.apps"),
    ] {
        let r = match kind {
            "Deployment" => list::<Deployment>(&cluster, kind, resource, &mut docs).await,
            "StatefulSet" => list::<StatefulSet>(&cluster, kind, resource, &mut docs).await,
            _ => list::<DaemonSet>(&cluster, kind, resource, &mut docs).await,
        };
        if let Err(e) = r {
            notes.push(format!("{resource} not audited: {e}"));
            workload_errors.push(e);
        }
    }
    if workload_errors.len() == 3 {
        return Err(workload_errors.remove(0));
    }
    let extra = [
        ("PodDisruptionBudget", "poddisruptionbudgets.policy"),
        (
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers.autoscaling",
        ),
        ("Service", "services"),
    ];
    for (kind, resource) in extra {
        let r = match kind {
            "PodDisruptionBudget" => {
                list::<PodDisruptionBudget>(&cluster, kind, resource, &mut docs).await
            }
            "HorizontalPodAutoscaler" => {
                list::<HorizontalPodAutoscaler>(&cluster, kind, resource, &mut docs).await
            }
            _ => list::<Service>(&cluster, kind, resource, &mut docs).await,
        };
        if let Err(e) = r {
            notes.push(format!(
                "{resource} not read (the rules that use them are skipped or may over-report): {e}"
            ));
        }
    }
    let mut rep = rollout_safe_policy::audit(policy, &docs, Vec::new());
    for message in notes {
        rep.notices.push(Notice {
            file: format!("cluster ({scope})"),
            line: 0,
            message,
        });
    }
    Ok(rep)
}

/// Prints the report and picks the exit code: 2 when an input could not be read, else 3
/// when a finding is at or above the fail level, else 0.
pub fn emit(rep: &AuditReport, format: AuditFormat, fail_on: FailOn) -> CmdResult {
    let fail_at = match fail_on {
        FailOn::Warn => Severity::Warning,
        FailOn::Enforce => Severity::Error,
    };
    let text = match format {
        AuditFormat::Table => report::table(rep),
        AuditFormat::Json => report::json(rep),
        AuditFormat::Sarif => report::sarif(rep),
        AuditFormat::Junit => report::junit(rep, fail_at),
    };
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth a message.
    let _ = writeln!(stdout, "{}", text.trim_end());
    if format != AuditFormat::Table {
        for e in &rep.errors {
            eprintln!("error: {e}");
        }
        eprintln!("{}", report::summary(rep));
    }
    Ok(if !rep.errors.is_empty() {
        Exit::Usage
    } else if rep.findings.iter().any(|f| f.finding.severity >= fail_at) {
        Exit::Violations
    } else {
        Exit::Success
    })
}
