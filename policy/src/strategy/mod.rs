//! The rollout strategies beside the plain rolling update: blue-green and canary on plain
//! Deployments and Services, as pure types and decisions. No I/O: the plugin reads the
//! cluster, asks these functions what to do, and writes what they return.
//!
//! * `schema`: the `rollout-safe.dev/...` labels and annotations that hold the state.
//! * `edit`: the image (and env) change every strategy makes to a pod template.
//! * `siblings`: the second Deployment beside the original one (a colour, a canary).
//! * `bluegreen`: colours, phases, the Service's state, what a run does next; `switch`: the
//!   state machine's guarded writes to the Service.
//! * `canary`: phases, state, step arithmetic, what a run does next.
//! * `endpoints`: whether the Service's EndpointSlices show a switch done.
//! * `hold`: the readiness hold between steps (every new pod Ready for a while, few restarts,
//!   and every metric gate passed since the step began).
//! * `partition`: canary by partition for StatefulSets (step arithmetic, state).
//! * `set_plan`: how a StatefulSet or DaemonSet rolling update proceeds (order, bounds).
//! * `gates`: metric gates while a rollout runs (consecutive failures, passed since the step
//!   began, the `rollout-safe.dev/gates` annotation).

pub mod bluegreen;
pub mod canary;
pub mod edit;
pub mod endpoints;
pub mod gates;
pub mod hold;
pub mod partition;
pub mod schema;
pub mod set_plan;
pub mod siblings;
pub mod switch;
