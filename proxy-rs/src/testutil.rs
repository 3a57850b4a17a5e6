//! Builders for plain Service / EndpointSlice objects used by unit tests.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{Value, json};

pub fn service(ns: &str, name: &str, spec: Value) -> Service {
    serde_json::from_value(json!({"metadata": {"namespace": ns, "name": name}, "spec": spec}))
        .expect("test fixture")
}

/// `endpoints`: (ip, ready, serving, terminating, node)
pub fn slice(
    ns: &str,
    svc: &str,
    name: &str,
    ports: &[(&str, &str, i32)],
    endpoints: &[(&str, bool, bool, bool, &str)],
) -> EndpointSlice {
    let ports: Vec<Value> = ports
        .iter()
        .map(|(n, p, port)| json!({"name": n, "protocol": p, "port": port}))
        .collect();
    let eps: Vec<Value> = endpoints
        .iter()
        .map(|(ip, ready, serving, terminating, node)| {
            json!({"addresses": [ip], "nodeName": node,
                   "conditions": {"ready": ready, "serving": serving, "terminating": terminating}})
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": {"namespace": ns, "name": name, "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "ports": ports,
        "endpoints": eps,
    }))
    .expect("test fixture")
}
