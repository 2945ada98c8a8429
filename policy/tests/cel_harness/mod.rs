//! Enough of a Kubernetes API server's admission-policy evaluation to run rollout-safe's
//! exported policies: the `cel` crate for the language, plus the Kubernetes CEL library
//! functions the policies call, written here with the API server's semantics:
//!
//! - strings extension (cel-go `ext.Strings`, v2): `split`, `trim` (Unicode White_Space, as Go's
//!   `strings.TrimSpace`), `upperAscii`, `join`, `replace`, `indexOf`, `lastIndexOf`,
//!   `substring` (code-point indices);
//! - Kubernetes' list library: `indexOf`, `lastIndexOf` (CEL equality), `max` (an error on an
//!   empty list);
//! - `JSONPatch{op, path, value}` of MutatingAdmissionPolicy.
//!
//! Policies are matched (resource rules, operations, no subresources), their `matchConditions`
//! evaluated, `variables` evaluated in order (a variable that fails is an error only where it
//! is read, as with the API server's lazy variables) and each validation's `messageExpression`
//! read on failure. Any evaluation error is returned as an error: the exported policies must
//! never fall back on their `failurePolicy`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use cel::common::traits::Indexer;
use cel::common::types::{CelString, CelStruct, DYN_TYPE, Type};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::extractors::This;
use cel::objects::{Key, Map};
use cel::{Context, Env, ExecutionError, Program, StructType, Value};
use serde_json::{Value as Json, json};

/// One admission request, as the API server hands it to the policies.
#[derive(Debug, Clone)]
pub struct Request {
    pub operation: String,
    pub namespace: String,
    pub sub_resource: Option<String>,
    pub object: Json,
    pub old_object: Option<Json>,
    pub username: String,
    /// `request.options` (CreateOptions, UpdateOptions), when the request had them.
    pub options: Option<Json>,
}

/// What a validating policy decided: its binding's actions and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub policy: String,
    /// The `rollout-safe.dev/rule` label of the policy.
    pub rule: String,
    pub actions: Vec<String>,
    pub message: String,
}

struct Compiled {
    source: String,
    program: Program,
}

struct Validating {
    name: String,
    rule: String,
    resources: Vec<String>,
    conditions: Vec<(String, Compiled)>,
    variables: Vec<(String, Compiled)>,
    validations: Vec<(Compiled, Compiled)>,
}

struct Mutating {
    name: String,
    resources: Vec<String>,
    conditions: Vec<(String, Compiled)>,
    variables: Vec<(String, Compiled)>,
    mutations: Vec<Compiled>,
}

/// The exported objects, compiled.
pub struct Cluster {
    env: Arc<Env>,
    validating: Vec<Validating>,
    /// policyName → validationActions
    bindings: BTreeMap<String, Vec<String>>,
    mutating: Vec<Mutating>,
}

/// `JSONPatch`, the struct of a MutatingAdmissionPolicy's JSON Patch mutations.
struct JsonPatchType(Type);

impl StructType for JsonPatchType {
    fn get_type(&self) -> &Type {
        &self.0
    }

    fn new_value<'b, 'v>(
        &self,
        fields: BTreeMap<String, CowVal<'b, 'v>>,
    ) -> Result<Box<dyn Val + 'v>, ExecutionError> {
        let mut s = CelStruct::new("JSONPatch".into());
        for (k, v) in fields {
            if !matches!(k.as_str(), "op" | "path" | "value" | "from") {
                return Err(ExecutionError::function_error(
                    "JSONPatch",
                    format!("no field {k}"),
                ));
            }
            s.add_field_value(k, v);
        }
        Ok(Box::new(s))
    }
}

fn str_value(s: impl Into<String>) -> Value {
    Value::String(Arc::new(s.into()))
}

fn err(function: &str, message: impl ToString) -> ExecutionError {
    ExecutionError::function_error(function, message)
}

/// Code-point index of the first (or last) occurrence of `needle`.
fn find_chars(hay: &str, needle: &str, last: bool) -> i64 {
    let h: Vec<char> = hay.chars().collect();
    let n: Vec<char> = needle.chars().collect();
    if n.is_empty() {
        return if last { h.len() as i64 } else { 0 };
    }
    if n.len() > h.len() {
        return -1;
    }
    let mut positions = (0..=h.len() - n.len()).filter(|&i| h[i..i + n.len()] == n[..]);
    let found = if last {
        positions.next_back()
    } else {
        positions.next()
    };
    found.map_or(-1, |i| i as i64)
}

fn list_index(list: &[Value], elem: &Value, last: bool) -> i64 {
    let mut it = list.iter().enumerate().filter(|(_, v)| *v == elem);
    let found = if last { it.next_back() } else { it.next() };
    found.map_or(-1, |(i, _)| i as i64)
}

/// `string.matches(re)`: whether `re` (RE2 syntax; the policies use the part Rust's `regex`
/// reads the same way) matches anywhere in the string. Compiled expressions are cached: the
/// policies use a handful, on every request.
fn matches(s: &str, re: &str) -> Result<bool, ExecutionError> {
    static CACHE: OnceLock<Mutex<HashMap<String, regex::Regex>>> = OnceLock::new();
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .map_err(|e| err("matches", e.to_string()))?;
    if !cache.contains_key(re) {
        let compiled = regex::Regex::new(re).map_err(|e| err("matches", e.to_string()))?;
        cache.insert(re.to_string(), compiled);
    }
    Ok(cache[re].is_match(s))
}

/// The Kubernetes CEL library functions the exported policies call, and `matches` (standard
/// CEL, built here rather than with the `cel` crate's `regex` feature, to cache it).
fn add_kubernetes_functions(ctx: &mut Context) {
    ctx.add_function(
        "matches",
        |This(s): This<Arc<String>>, re: Arc<String>| -> Result<bool, ExecutionError> {
            matches(&s, &re)
        },
    )
    .unwrap();
    ctx.add_function(
        "split",
        |This(s): This<Arc<String>>, sep: Arc<String>| -> Result<Value, ExecutionError> {
            if sep.is_empty() {
                return Err(err("split", "the exported policies never split on ''"));
            }
            Ok(Value::List(Arc::new(
                s.split(sep.as_str()).map(str_value).collect(),
            )))
        },
    )
    .unwrap();
    // Go's strings.TrimSpace and Rust's trim remove the same set (Unicode White_Space).
    ctx.add_function("trim", |This(s): This<Arc<String>>| str_value(s.trim()))
        .unwrap();
    ctx.add_function("upperAscii", |This(s): This<Arc<String>>| {
        str_value(s.to_ascii_uppercase())
    })
    .unwrap();
    ctx.add_function(
        "join",
        |This(list): This<Arc<Vec<Value>>>, sep: Arc<String>| -> Result<Value, ExecutionError> {
            let mut parts = Vec::new();
            for v in list.iter() {
                match v {
                    Value::String(s) => parts.push(s.as_str().to_string()),
                    other => return Err(err("join", format!("not a string: {other:?}"))),
                }
            }
            Ok(str_value(parts.join(sep.as_str())))
        },
    )
    .unwrap();
    ctx.add_function(
        "replace",
        |This(s): This<Arc<String>>, from: Arc<String>, to: Arc<String>| {
            str_value(s.replace(from.as_str(), to.as_str()))
        },
    )
    .unwrap();
    for (name, last) in [("indexOf", false), ("lastIndexOf", true)] {
        ctx.add_function(
            name,
            move |This(this): This<Value>, arg: Value| -> Result<Value, ExecutionError> {
                match (&this, &arg) {
                    (Value::String(s), Value::String(n)) => Ok(Value::Int(find_chars(s, n, last))),
                    (Value::List(l), _) => Ok(Value::Int(list_index(l, &arg, last))),
                    _ => Err(err(
                        if last { "lastIndexOf" } else { "indexOf" },
                        format!("no overload for {this:?}, {arg:?}"),
                    )),
                }
            },
        )
        .unwrap();
    }
    ctx.add_function(
        "substring",
        |This(s): This<Arc<String>>,
         args: cel::extractors::Arguments|
         -> Result<Value, ExecutionError> {
            let chars: Vec<char> = s.chars().collect();
            let ints: Vec<i64> = args
                .0
                .iter()
                .map(|v| match v {
                    Value::Int(i) => Ok(*i),
                    other => Err(err("substring", format!("not an int: {other:?}"))),
                })
                .collect::<Result<_, _>>()?;
            let (start, end) = match ints[..] {
                [a] => (a, chars.len() as i64),
                [a, b] => (a, b),
                _ => return Err(err("substring", "one or two arguments")),
            };
            if start < 0 || end > chars.len() as i64 || start > end {
                return Err(err(
                    "substring",
                    format!("index out of range: {start}..{end} of {}", chars.len()),
                ));
            }
            Ok(str_value(
                chars[start as usize..end as usize]
                    .iter()
                    .collect::<String>(),
            ))
        },
    )
    .unwrap();
    ctx.add_function(
        "max",
        |This(list): This<Arc<Vec<Value>>>| -> Result<Value, ExecutionError> {
            let mut best: Option<i64> = None;
            for v in list.iter() {
                match v {
                    Value::Int(i) => best = Some(best.map_or(*i, |b| b.max(*i))),
                    other => return Err(err("max", format!("not an int: {other:?}"))),
                }
            }
            best.map(Value::Int)
                .ok_or_else(|| err("max", "max() of an empty list"))
        },
    )
    .unwrap();
}

/// The request's variables, converted once and lent to every expression.
struct Base {
    object: Box<dyn Val>,
    old_object: Box<dyn Val>,
    request: Box<dyn Val>,
    namespace: Box<dyn Val>,
}

/// What one expression sees: the request's variables and the policy's `variables`.
struct Scope<'a> {
    base: &'a Base,
    variables: &'a Variables<'a>,
}

impl VariableResolver for Scope<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        let v: &dyn Val = match variable {
            "object" => self.base.object.as_ref(),
            "oldObject" => self.base.old_object.as_ref(),
            "request" => self.base.request.as_ref(),
            "namespaceObject" => self.base.namespace.as_ref(),
            "variables" => self.variables,
            _ => return None,
        };
        Some(CowVal::Borrowed(v))
    }
}

/// `variables`: a policy's named expressions, evaluated when first read (as the API server
/// does: a variable nothing reads is never evaluated, one that fails is an error only where
/// it is read) and then kept for the rest of the evaluation.
struct Variables<'a> {
    env: &'a Arc<Env>,
    base: &'a Base,
    defs: &'a [(String, Compiled)],
    values: Vec<OnceLock<Option<Box<dyn Val>>>>,
}

impl<'a> Variables<'a> {
    fn new(env: &'a Arc<Env>, base: &'a Base, defs: &'a [(String, Compiled)]) -> Self {
        Variables {
            env,
            base,
            defs,
            values: defs.iter().map(|_| OnceLock::new()).collect(),
        }
    }
}

impl std::fmt::Debug for Variables<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.defs.iter().map(|(n, _)| n))
            .finish()
    }
}

impl Val for Variables<'_> {
    fn get_type(&self) -> &Type {
        &DYN_TYPE
    }

    fn cel_type() -> &'static Type {
        &DYN_TYPE
    }

    fn as_indexer<'b, 'v>(&'b self) -> Option<&'b (dyn Indexer + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }

    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v>
    where
        Self: 'v,
    {
        let values = self
            .values
            .iter()
            .map(|cell| {
                let copy = OnceLock::new();
                if let Some(v) = cell.get() {
                    let _ = copy.set(v.as_ref().map(|b| b.clone_as_boxed()));
                }
                copy
            })
            .collect();
        Box::new(Variables {
            env: self.env,
            base: self.base,
            defs: self.defs,
            values,
        })
    }
}

impl Indexer for Variables<'_> {
    fn get<'b, 'v>(&'b self, idx: &dyn Val) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        let name = idx
            .downcast_ref::<CelString>()
            .map(|s| s.inner().to_string())
            .unwrap_or_default();
        let Some(i) = self.defs.iter().position(|(n, _)| *n == name) else {
            return Err(ExecutionError::no_such_key(&name));
        };
        let value = self.values[i].get_or_init(|| {
            let scope = Scope {
                base: self.base,
                variables: self,
            };
            eval(self.env, &scope, &self.defs[i].1)
                .ok()
                .and_then(|v| Box::<dyn Val>::try_from(v).ok())
        });
        match value {
            Some(v) => Ok(CowVal::Borrowed(v.as_ref())),
            None => Err(err(
                "variables",
                format!("variable {name} failed to evaluate"),
            )),
        }
    }

    fn steal<'v>(self: Box<Self>, idx: &dyn Val) -> Result<Box<dyn Val + 'v>, ExecutionError>
    where
        Self: 'v,
    {
        self.get(idx).map(CowVal::into_owned)
    }
}

fn eval(env: &Arc<Env>, scope: &Scope<'_>, c: &Compiled) -> Result<Value, ExecutionError> {
    let mut ctx = Context::with_env(env.clone());
    add_kubernetes_functions(&mut ctx);
    ctx.set_variable_resolver(scope);
    c.program.execute(&ctx)
}

/// JSON → CEL.
pub fn to_cel(v: &Json) -> Value {
    match v {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => str_value(s.clone()),
        Json::Array(a) => Value::List(Arc::new(a.iter().map(to_cel).collect())),
        Json::Object(o) => {
            let map: HashMap<Key, Value> = o
                .iter()
                .map(|(k, v)| (Key::String(Arc::new(k.clone())), to_cel(v)))
                .collect();
            Value::Map(Map { map: Arc::new(map) })
        }
    }
}

/// CEL → JSON (maps with string keys, JSONPatch structs as their fields).
pub fn to_json(v: &Value) -> Result<Json, String> {
    Ok(match v {
        Value::Null => Json::Null,
        Value::Bool(b) => json!(b),
        Value::Int(i) => json!(i),
        Value::UInt(u) => json!(u),
        Value::Float(f) => json!(f),
        Value::String(s) => json!(s.as_str()),
        Value::List(l) => Json::Array(l.iter().map(to_json).collect::<Result<_, _>>()?),
        Value::Map(m) => {
            let mut out = serde_json::Map::new();
            for (k, v) in m.map.iter() {
                let Key::String(k) = k else {
                    return Err(format!("a map key that is not a string: {k:?}"));
                };
                out.insert(k.as_str().to_string(), to_json(v)?);
            }
            Json::Object(out)
        }
        Value::Struct(s) => {
            let mut out = serde_json::Map::new();
            for (k, v) in s.field_values() {
                let v = Value::try_from(v.as_ref()).map_err(|e| e.to_string())?;
                out.insert(k, to_json(&v)?);
            }
            Json::Object(out)
        }
        other => return Err(format!("no JSON for {other:?}")),
    })
}

fn compile(env: &Env, what: &str, source: &str) -> Result<Compiled, String> {
    let program = env
        .compile(source)
        .map_err(|e| format!("{what}: does not parse: {e}\n  {source}"))?;
    Ok(Compiled {
        source: source.to_string(),
        program,
    })
}

fn strings(v: &Json) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

/// `spec.matchConstraints`: the resources of the (single) `apps/v1` CREATE/UPDATE rule.
fn resources(spec: &Json, name: &str) -> Result<Vec<String>, String> {
    let rules = spec["matchConstraints"]["resourceRules"]
        .as_array()
        .ok_or(format!("{name}: no resourceRules"))?;
    let mut out = Vec::new();
    for r in rules {
        if strings(&r["apiGroups"]) != ["apps"]
            || strings(&r["apiVersions"]) != ["v1"]
            || strings(&r["operations"]) != ["CREATE", "UPDATE"]
        {
            return Err(format!("{name}: unexpected resource rule {r}"));
        }
        out.extend(strings(&r["resources"]));
    }
    Ok(out)
}

fn named(
    env: &Env,
    policy: &str,
    list: &Json,
    field: &str,
) -> Result<Vec<(String, Compiled)>, String> {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let name = c["name"].as_str().unwrap_or_default().to_string();
            let expr = c["expression"].as_str().unwrap_or_default();
            Ok((
                name.clone(),
                compile(env, &format!("{policy} {field} {name}"), expr)?,
            ))
        })
        .collect()
}

fn resource_of(kind: &str) -> Option<&'static str> {
    match kind {
        "Deployment" => Some("deployments"),
        "StatefulSet" => Some("statefulsets"),
        "DaemonSet" => Some("daemonsets"),
        _ => None,
    }
}

impl Cluster {
    /// Compiles the exported objects. Fails on an expression that does not parse or an
    /// object the harness does not know.
    pub fn new(objects: &[Json]) -> Result<Cluster, String> {
        let mut env = Env::stdlib();
        env.add_type(JsonPatchType(Type::new_struct("JSONPatch".into())))
            .map_err(|e| e.to_string())?;
        let mut cluster = Cluster {
            env: Arc::new(Env::stdlib()),
            validating: Vec::new(),
            bindings: BTreeMap::new(),
            mutating: Vec::new(),
        };
        for o in objects {
            let name = o["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let spec = &o["spec"];
            match o["kind"].as_str().unwrap_or_default() {
                "ValidatingAdmissionPolicy" => {
                    if spec["failurePolicy"] != "Fail" {
                        return Err(format!("{name}: failurePolicy is not set to Fail"));
                    }
                    let validations = spec["validations"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|v| {
                            Ok((
                                compile(
                                    &env,
                                    &format!("{name} validation"),
                                    v["expression"].as_str().unwrap_or_default(),
                                )?,
                                compile(
                                    &env,
                                    &format!("{name} messageExpression"),
                                    v["messageExpression"].as_str().unwrap_or_default(),
                                )?,
                            ))
                        })
                        .collect::<Result<Vec<_>, String>>()?;
                    cluster.validating.push(Validating {
                        rule: o["metadata"]["labels"]["rollout-safe.dev/rule"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        resources: resources(spec, &name)?,
                        conditions: named(&env, &name, &spec["matchConditions"], "matchCondition")?,
                        variables: named(&env, &name, &spec["variables"], "variable")?,
                        validations,
                        name,
                    });
                }
                "ValidatingAdmissionPolicyBinding" => {
                    cluster.bindings.insert(
                        spec["policyName"].as_str().unwrap_or_default().to_string(),
                        strings(&spec["validationActions"]),
                    );
                }
                "MutatingAdmissionPolicy" => {
                    if spec["failurePolicy"] != "Fail" || spec["reinvocationPolicy"] != "IfNeeded" {
                        return Err(format!("{name}: failurePolicy/reinvocationPolicy not set"));
                    }
                    let mutations = spec["mutations"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|m| {
                            if m["patchType"] != "JSONPatch" {
                                return Err(format!("{name}: patchType {}", m["patchType"]));
                            }
                            compile(
                                &env,
                                &format!("{name} mutation"),
                                m["jsonPatch"]["expression"].as_str().unwrap_or_default(),
                            )
                        })
                        .collect::<Result<Vec<_>, String>>()?;
                    cluster.mutating.push(Mutating {
                        resources: resources(spec, &name)?,
                        conditions: named(&env, &name, &spec["matchConditions"], "matchCondition")?,
                        variables: named(&env, &name, &spec["variables"], "variable")?,
                        mutations,
                        name,
                    });
                }
                "MutatingAdmissionPolicyBinding" => {}
                other => return Err(format!("{name}: unexpected kind {other}")),
            }
        }
        cluster.env = Arc::new(env);
        for v in &cluster.validating {
            if !cluster.bindings.contains_key(&v.name) {
                return Err(format!("{}: no binding", v.name));
            }
        }
        Ok(cluster)
    }

    /// Every expression of every policy: (where, source).
    pub fn expressions(&self) -> Vec<(String, &str)> {
        let mut out = Vec::new();
        for p in &self.validating {
            for (n, c) in p.conditions.iter().chain(&p.variables) {
                out.push((format!("{} {n}", p.name), c.source.as_str()));
            }
            for (v, m) in &p.validations {
                out.push((format!("{} validation", p.name), v.source.as_str()));
                out.push((format!("{} messageExpression", p.name), m.source.as_str()));
            }
        }
        for p in &self.mutating {
            for (n, c) in p.conditions.iter().chain(&p.variables) {
                out.push((format!("{} {n}", p.name), c.source.as_str()));
            }
            for (i, m) in p.mutations.iter().enumerate() {
                out.push((format!("{} mutation {i}", p.name), m.source.as_str()));
            }
        }
        out
    }

    /// The request's variables, converted once.
    fn base(req: &Request, object: &Json) -> Result<Base, String> {
        let mut request = json!({
            "operation": req.operation,
            "namespace": req.namespace,
            "userInfo": {"username": req.username},
            "dryRun": false,
        });
        if let Some(o) = &req.options {
            request["options"] = o.clone();
        }
        let val = |v: Value| -> Result<Box<dyn Val>, String> {
            v.try_into().map_err(|e: ExecutionError| e.to_string())
        };
        Ok(Base {
            object: val(to_cel(object))?,
            old_object: val(req.old_object.as_ref().map_or(Value::Null, to_cel))?,
            request: val(to_cel(&request))?,
            namespace: val(to_cel(&json!({"metadata": {
                "name": req.namespace,
                "labels": {"kubernetes.io/metadata.name": req.namespace},
            }})))?,
        })
    }

    /// A policy's `matchConditions`: whether they all hold.
    fn conditions_hold(
        &self,
        base: &Base,
        policy: &str,
        conditions: &[(String, Compiled)],
    ) -> Result<bool, String> {
        let none = Variables::new(&self.env, base, &[]);
        let scope = Scope {
            base,
            variables: &none,
        };
        for (name, c) in conditions {
            match eval(&self.env, &scope, c) {
                Ok(Value::Bool(true)) => {}
                Ok(Value::Bool(false)) => return Ok(false),
                other => {
                    return Err(format!(
                        "{policy}: matchCondition {name}: {other:?}\n  {}",
                        c.source
                    ));
                }
            }
        }
        Ok(true)
    }

    fn matches(resources: &[String], req: &Request, object: &Json) -> bool {
        req.sub_resource.is_none()
            && matches!(req.operation.as_str(), "CREATE" | "UPDATE")
            && object["apiVersion"] == "apps/v1"
            && resource_of(object["kind"].as_str().unwrap_or_default())
                .is_some_and(|r| resources.iter().any(|x| x == r))
    }

    /// The validating policies' decisions on `req`.
    pub fn validate(&self, req: &Request) -> Result<Vec<Decision>, String> {
        let mut out = Vec::new();
        let base = Self::base(req, &req.object)?;
        for p in &self.validating {
            if !Self::matches(&p.resources, req, &req.object)
                || !self.conditions_hold(&base, &p.name, &p.conditions)?
            {
                continue;
            }
            let variables = Variables::new(&self.env, &base, &p.variables);
            let scope = Scope {
                base: &base,
                variables: &variables,
            };
            for (v, m) in &p.validations {
                match eval(&self.env, &scope, v) {
                    Ok(Value::Bool(true)) => {}
                    Ok(Value::Bool(false)) => {
                        let message = match eval(&self.env, &scope, m) {
                            Ok(Value::String(s)) if !s.trim().is_empty() && !s.contains('\n') => {
                                s.as_str().to_string()
                            }
                            other => {
                                return Err(format!(
                                    "{}: messageExpression gave {other:?}\n  {}",
                                    p.name, m.source
                                ));
                            }
                        };
                        out.push(Decision {
                            policy: p.name.clone(),
                            rule: p.rule.clone(),
                            actions: self.bindings[&p.name].clone(),
                            message,
                        });
                    }
                    other => {
                        return Err(format!(
                            "{}: validation gave {other:?}\n  {}",
                            p.name, v.source
                        ));
                    }
                }
            }
        }
        Ok(out)
    }

    /// The object after the mutating policies (each mutation sees the object as the ones
    /// before it left it, with its variables evaluated afresh). `None` when no policy matched.
    pub fn mutate(&self, req: &Request) -> Result<Option<Json>, String> {
        let mut object = req.object.clone();
        let mut matched = false;
        for p in &self.mutating {
            if !Self::matches(&p.resources, req, &object)
                || !self.conditions_hold(&Self::base(req, &object)?, &p.name, &p.conditions)?
            {
                continue;
            }
            matched = true;
            for (i, m) in p.mutations.iter().enumerate() {
                let base = Self::base(req, &object)?;
                let variables = Variables::new(&self.env, &base, &p.variables);
                let scope = Scope {
                    base: &base,
                    variables: &variables,
                };
                let patches = match eval(&self.env, &scope, m) {
                    Ok(v @ Value::List(_)) => to_json(&v)?,
                    other => {
                        return Err(format!(
                            "{} mutation {i}: gave {other:?}\n  {}",
                            p.name, m.source
                        ));
                    }
                };
                let patch: json_patch::Patch =
                    serde_json::from_value(patches.clone()).map_err(|e| {
                        format!("{} mutation {i}: not a JSON Patch {patches}: {e}", p.name)
                    })?;
                json_patch::patch(&mut object, &patch).map_err(|e| {
                    format!("{} mutation {i}: {patches} does not apply: {e}", p.name)
                })?;
            }
        }
        Ok(matched.then_some(object))
    }
}

/// How many comprehensions (`all`, `exists`, `filter`, `map`, …) an expression has, and how
/// deeply they nest: (count, depth).
pub fn comprehensions(source: &str) -> Result<(usize, usize), String> {
    use cel::common::ast::{EntryExpr, Expr};
    fn walk(e: &cel::IdedExpr, depth: usize, out: &mut (usize, usize)) {
        match &e.expr {
            Expr::Comprehension(c) => {
                out.0 += 1;
                out.1 = out.1.max(depth + 1);
                walk(&c.iter_range, depth, out);
                walk(&c.accu_init, depth, out);
                for inner in [&c.loop_cond, &c.loop_step, &c.result] {
                    walk(inner, depth + 1, out);
                }
            }
            Expr::Call(c) => {
                if let Some(t) = &c.target {
                    walk(t, depth, out);
                }
                for a in &c.args {
                    walk(a, depth, out);
                }
            }
            Expr::List(l) => l.elements.iter().for_each(|x| walk(x, depth, out)),
            Expr::Map(m) => m.entries.iter().for_each(|x| {
                if let EntryExpr::MapEntry(me) = &x.expr {
                    walk(&me.key, depth, out);
                    walk(&me.value, depth, out);
                }
            }),
            Expr::Struct(s) => s.entries.iter().for_each(|x| {
                if let EntryExpr::StructField(f) = &x.expr {
                    walk(&f.value, depth, out);
                }
            }),
            Expr::Select(s) => walk(&s.operand, depth, out),
            Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
        }
    }
    let ast = Env::stdlib()
        .parser()
        .parse(source)
        .map_err(|e| e.to_string())?;
    let mut out = (0, 0);
    walk(&ast, 0, &mut out);
    Ok(out)
}
