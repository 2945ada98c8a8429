use k8s_openapi::api::apps::v1::Deployment;
use serde::Deserialize;
fn opts(no_schema: bool) -> serde_saphyr::Options {
    let mut o = serde_saphyr::Options::default();
    o.legacy_octal_numbers = true;
    o.no_schema = no_schema;
    o
}
fn main() {
    let base = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\n  labels: LBL\nspec:\n  replicas: REP\n  selector: {}\n  template:\n    spec:\n      containers:\n      - name: c\n        image: IMG\n        resources: {limits: {cpu: CPU}}\n        ports: [{containerPort: PORT}]\n";
    let cases = [
        ("LBL", "{v: 1}"), ("LBL", "{v: yes}"), ("LBL", "{v: \"1\"}"), ("LBL", "{v: null}"), ("LBL", "{v: 1.5}"), ("LBL", "{v: ~}"), ("LBL", "{v: }"), ("LBL", "{v: 0x10}"),("LBL", "{v: on}"),("LBL", "{v: 1e3}"),("LBL", "{v: .inf}"),
        ("REP", "\"3\""), ("REP", "3.0"), ("REP", "null"), ("REP", "yes"), ("REP", "0x3"), ("REP", "03"), ("REP", "3"),("REP", "99999999999"),
        ("IMG", "123"), ("IMG", "null"), ("IMG", "true"), ("IMG", "a:1"),
        ("CPU", "1"), ("CPU", "0.5"), ("CPU", "\"1\""), ("CPU", "100m"),
        ("PORT", "\"80\""), ("PORT", "80"), ("PORT", "8.0"),
    ];
    for (k, v) in cases {
        let mut t = base.to_string();
        for (kk, dv) in [("LBL", "{a: b}"), ("REP", "1"), ("IMG", "nginx"), ("CPU", "100m"), ("PORT", "80")] {
            t = t.replace(kk, if kk == k { v } else { dv });
        }
        let via_value = serde_saphyr::from_str_with_options::<serde_json::Value>(&t, opts(false)).map_err(|e| e.to_string()).and_then(|val| Deployment::deserialize(&val).map_err(|e| e.to_string()));
        let direct = serde_saphyr::from_str_with_options::<Deployment>(&t, opts(false)).map_err(|e| e.to_string().lines().next().unwrap_or("").to_string());
        let direct_ns = serde_saphyr::from_str_with_options::<Deployment>(&t, opts(true)).map_err(|e| e.to_string().lines().next().unwrap_or("").to_string());
        let same = |d: &Result<Deployment, String>| match (&via_value, d) { (Ok(a), Ok(b)) => if a == b { "same" } else { "DIFFERENT VALUE" }, (Err(_), Err(_)) => "both err", (Ok(_), Err(_)) => "direct errs only", (Err(_), Ok(_)) => "DIRECT LENIENT" };
        println!("{k}={v:12} value:{:5} direct:{:18} no_schema:{:18}", via_value.is_ok(), same(&direct), same(&direct_ns));
    }
}
