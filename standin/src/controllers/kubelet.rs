//! The scheduler and kubelet, for pods that have not started (no `status.startTime`): each
//! goes to node `standin-node-1`, gets an IP, and its containers start according to their
//! image: a tag containing `crash` crash-loops (`CrashLoopBackOff`, restarts, a `BackOff`
//! Warning Event as the kubelet writes it), one containing `unready` runs but never passes its
//! readiness probe, any other is ready at once.

use serde_json::{Value, json};

use super::ObjectController;
use crate::store::{Store, StoreError, name_of, uid_of};
use crate::time::{self, Timestamp};

pub const NAME: &str = "kubelet";
pub const NODE: &str = "standin-node-1";

/// What happens to a container, by its image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerFate {
    Ready,
    NeverReady,
    CrashLoop,
}

impl ContainerFate {
    pub fn of_image(image: &str) -> ContainerFate {
        if image.contains("crash") {
            ContainerFate::CrashLoop
        } else if image.contains("unready") {
            ContainerFate::NeverReady
        } else {
            ContainerFate::Ready
        }
    }
}

/// How often a crash-looping container has restarted when it is first seen.
const CRASH_RESTARTS: i64 = 3;

#[derive(Debug, Default)]
pub struct Kubelet {
    started: u64,
}

impl ObjectController for Kubelet {
    const NAME: &'static str = NAME;
    const RESOURCE: &'static str = "pods";

    fn sync(&mut self, store: &mut Store, pod: Value, now: Timestamp) -> Result<(), StoreError> {
        if pod["status"]["startTime"].is_null() {
            self.start(store, pod, now)?;
        }
        Ok(())
    }

    fn wants(&self, pod: &Value) -> bool {
        pod["status"]["startTime"].is_null()
    }
}

impl Kubelet {
    fn start(
        &mut self,
        store: &mut Store,
        mut pod: Value,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.started += 1;
        let t = time::format(now);
        let ns = pod["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let name = name_of(&pod).to_owned();
        let uid = uid_of(&pod).to_owned();
        let ip = format!(
            "10.244.{}.{}",
            (self.started / 250) % 250,
            self.started % 250 + 2
        );
        let mut statuses = Vec::new();
        let mut crashing = Vec::new();
        for c in pod["spec"]["containers"].as_array().into_iter().flatten() {
            let cname = c["name"].as_str().unwrap_or("app").to_owned();
            let image = c["image"].as_str().unwrap_or_default();
            let fate = ContainerFate::of_image(image);
            let mut s = json!({"name": cname, "image": image, "imageID": "", "ready": fate == ContainerFate::Ready,
                "started": fate != ContainerFate::CrashLoop, "restartCount": 0, "state": {"running": {"startedAt": t}}});
            if fate == ContainerFate::CrashLoop {
                s["restartCount"] = json!(CRASH_RESTARTS);
                s["state"] = json!({"waiting": {"reason": "CrashLoopBackOff",
                    "message": format!("back-off 40s restarting failed container={cname} pod={name}_{ns}({uid})")}});
                s["lastState"] = json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": t, "finishedAt": t}});
                crashing.push(cname);
            }
            statuses.push(s);
        }
        let ready = statuses.iter().all(|s| s["ready"] == true);
        let ready = if ready { "True" } else { "False" };
        if pod["spec"]["nodeName"].is_null() {
            pod["spec"]["nodeName"] = json!(NODE);
        }
        pod["status"] = json!({"phase": "Running", "hostIP": "172.18.0.2", "podIP": ip, "podIPs": [{"ip": ip}],
            "startTime": t, "qosClass": "BestEffort",
            "conditions": [
                {"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": t},
                {"type": "Ready", "status": ready, "lastProbeTime": null, "lastTransitionTime": t},
                {"type": "ContainersReady", "status": ready, "lastProbeTime": null, "lastTransitionTime": t},
                {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": t}],
            "containerStatuses": statuses});
        store.put("pods", pod)?;
        for cname in crashing {
            let event = json!({
                "metadata": {"name": format!("{name}.{}", store.name_suffix()), "namespace": ns},
                "involvedObject": {"kind": "Pod", "namespace": ns, "name": name, "uid": uid, "apiVersion": "v1",
                    "fieldPath": format!("spec.containers{{{cname}}}")},
                "reason": "BackOff",
                "message": format!("Back-off restarting failed container {cname} in pod {name}_{ns}({uid})"),
                "source": {"component": "kubelet", "host": NODE},
                "firstTimestamp": t, "lastTimestamp": t, "count": CRASH_RESTARTS, "type": "Warning",
                "reportingComponent": "kubelet", "reportingInstance": NODE
            });
            store.put("events", event)?;
        }
        Ok(())
    }
}
