//! Blue-green on a plain Deployment and Service (the design is in
//! `rollout_safe_policy::strategy::bluegreen`).
//!
//! `blue-green deploy/shop --service shop --image app=shop:2` ([`start::BlueGreen`]):
//! 0. the policy pre-flight of the new colour (as `update`'s: enforced findings refuse it, exit
//!    3, unless `--force`), before anything is written;
//! 1. (first run) label blue, narrow the Service, verify its EndpointSlices;
//! 2. record `phase=deploying` on the Service, create or update the idle colour with the live
//!    colour's template + the new images, at the live colour's replica count;
//! 3. watch it with the shared judge until complete, and on in the same watch until every new
//!    pod has stayed Ready for `--bake` (judged on every event and at the time the hold ends, so
//!    a crash or restart fails it). A new colour that fails (or times out) is scaled to 0
//!    without ever having been selected: exit 1 (4);
//! 4. switch the Service selector's colour in one merge patch guarded by its resourceVersion,
//!    with the state annotations in the same write (409 → re-read, re-check, retry);
//! 5. verify through EndpointSlices that the ready endpoints are exactly the ready new pods
//!    (else switch back, scale the new colour down, exit 1);
//! 6. keep the old colour scaled until `keep-until` (`--keep-old`), then `phase=finished` and
//!    scale it to 0 (its replica count kept in an annotation for `rollback`).
//!
//! Every step looks at the cluster before acting, so Ctrl-C (exit 4) and a re-run resume;
//! re-running a finished blue-green is a no-op, and the next one deploys into the idle colour.
//! `blue-green rollback`, `finish` and `status` act on the same state.

pub mod actions;
pub mod common;
pub mod deploy;
pub mod start;
pub mod status;
