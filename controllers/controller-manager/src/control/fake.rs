//! In-memory [`PodControl`]/[`ObjectControl`] for unit tests (upstream
//! `FakePodControl`): records every call; failures are scripted.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::core::Status;
use kube::{Resource, ResourceExt};

use super::{ObjectControl, PodControl};
use crate::controller_utils::pod_from_template;
use crate::error::Error;

/// An API error as the apiserver would return it.
pub fn api_error(code: u16, reason: &str) -> Error {
    Error::Kube(kube::Error::Api(
        Status::failure(&format!("fake {reason}"), reason)
            .with_code(code)
            .boxed(),
    ))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Records pod writes. `create_limit` makes every creation past that many
/// fail with a 500, like upstream's `CreateLimit`.
#[derive(Default)]
pub struct FakePodControl {
    pub create_limit: Option<usize>,
    calls: Mutex<FakePods>,
}

#[derive(Default)]
struct FakePods {
    create_calls: usize,
    created: Vec<Pod>,
    deleted: Vec<String>,
    patched: Vec<String>,
    delete_errors: BTreeMap<String, u16>,
}

impl FakePodControl {
    pub fn with_create_limit(limit: usize) -> Self {
        Self {
            create_limit: Some(limit),
            ..Default::default()
        }
    }

    /// Makes deleting `name` fail with `code`.
    pub fn fail_delete(&self, name: &str, code: u16) {
        lock(&self.calls).delete_errors.insert(name.into(), code);
    }

    pub fn create_calls(&self) -> usize {
        lock(&self.calls).create_calls
    }

    pub fn created(&self) -> Vec<Pod> {
        lock(&self.calls).created.clone()
    }

    pub fn deleted(&self) -> Vec<String> {
        lock(&self.calls).deleted.clone()
    }

    pub fn patched(&self) -> Vec<String> {
        lock(&self.calls).patched.clone()
    }
}

impl PodControl for FakePodControl {
    fn create_pods<'a>(
        &'a self,
        namespace: &'a str,
        template: &'a PodTemplateSpec,
        owner_name: &'a str,
        controller_ref: OwnerReference,
    ) -> BoxFuture<'a, Result<Pod, Error>> {
        let mut calls = lock(&self.calls);
        calls.create_calls += 1;
        let result = if self.create_limit.is_some_and(|l| calls.created.len() >= l) {
            Err(api_error(500, "InternalError"))
        } else {
            let mut pod = pod_from_template(template, owner_name, Some(controller_ref));
            let n = calls.created.len();
            pod.metadata.name = Some(format!("{owner_name}-fake{n}"));
            pod.metadata.namespace = Some(namespace.into());
            calls.created.push(pod.clone());
            Ok(pod)
        };
        Box::pin(async move { result })
    }

    fn delete_pod<'a>(
        &'a self,
        _namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<(), Error>> {
        let mut calls = lock(&self.calls);
        let result = match calls.delete_errors.get(name) {
            Some(code) => Err(api_error(*code, "Scripted")),
            None => {
                calls.deleted.push(name.into());
                Ok(())
            }
        };
        Box::pin(async move { result })
    }

    fn patch_pod<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        _patch: serde_json::Value,
    ) -> BoxFuture<'a, Result<Pod, Error>> {
        lock(&self.calls).patched.push(name.into());
        let mut pod = Pod::default();
        pod.metadata.name = Some(name.into());
        pod.metadata.namespace = Some(namespace.into());
        Box::pin(async move { Ok(pod) })
    }
}

/// One recorded write.
#[derive(Clone, Debug, PartialEq)]
pub enum Write<K> {
    Create(K),
    Update(K),
    UpdateStatus(K),
    Delete(String),
    Patch(String),
}

/// Records writes of kind `K`; each successful write bumps the returned
/// object's resourceVersion. `fail` scripts the next writes' outcomes.
pub struct FakeObjectControl<K> {
    writes: Mutex<Vec<Write<K>>>,
    failures: Mutex<VecDeque<Option<Error>>>,
    next_version: Mutex<u64>,
    /// What `get` returns.
    pub current: Mutex<Option<K>>,
    /// The options of each `delete_with`, in order.
    pub delete_params: Mutex<Vec<kube::api::DeleteParams>>,
}

impl<K> Default for FakeObjectControl<K> {
    fn default() -> Self {
        Self {
            writes: Mutex::new(Vec::new()),
            failures: Mutex::new(VecDeque::new()),
            next_version: Mutex::new(100),
            current: Mutex::new(None),
            delete_params: Mutex::new(Vec::new()),
        }
    }
}

impl<K: Resource + Clone + Send + Sync> FakeObjectControl<K> {
    /// The next writes, in order: `None` succeeds, `Some(err)` fails.
    pub fn script(&self, outcomes: impl IntoIterator<Item = Option<Error>>) {
        lock(&self.failures).extend(outcomes);
    }

    pub fn writes(&self) -> Vec<Write<K>>
    where
        K: Clone,
    {
        lock(&self.writes).clone()
    }

    fn record(&self, write: Write<K>, obj: Option<&K>) -> Result<K, Error> {
        lock(&self.writes).push(write);
        if let Some(Some(err)) = lock(&self.failures).pop_front() {
            return Err(err);
        }
        let mut version = lock(&self.next_version);
        *version += 1;
        let mut out = match obj {
            Some(obj) => obj.clone(),
            None => lock(&self.current)
                .clone()
                .ok_or_else(|| api_error(404, "NotFound"))?,
        };
        out.meta_mut().resource_version = Some(version.to_string());
        Ok(out)
    }
}

impl<K: Resource + Clone + Send + Sync + 'static> ObjectControl<K> for FakeObjectControl<K> {
    fn get<'a>(&'a self, _namespace: &'a str, _name: &'a str) -> BoxFuture<'a, Result<K, Error>> {
        let current = lock(&self.current).clone();
        Box::pin(async move { current.ok_or_else(|| api_error(404, "NotFound")) })
    }

    fn create<'a>(&'a self, _namespace: &'a str, obj: &'a K) -> BoxFuture<'a, Result<K, Error>> {
        let result = self.record(Write::Create(obj.clone()), Some(obj));
        Box::pin(async move { result })
    }

    fn update<'a>(&'a self, _namespace: &'a str, obj: &'a K) -> BoxFuture<'a, Result<K, Error>> {
        let result = self.record(Write::Update(obj.clone()), Some(obj));
        Box::pin(async move { result })
    }

    fn update_status<'a>(
        &'a self,
        _namespace: &'a str,
        obj: &'a K,
    ) -> BoxFuture<'a, Result<K, Error>> {
        let result = self.record(Write::UpdateStatus(obj.clone()), Some(obj));
        Box::pin(async move { result })
    }

    fn delete<'a>(
        &'a self,
        _namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<(), Error>> {
        lock(&self.writes).push(Write::Delete(name.into()));
        let result = match lock(&self.failures).pop_front() {
            Some(Some(err)) => Err(err),
            _ => Ok(()),
        };
        Box::pin(async move { result })
    }

    fn delete_with<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        params: kube::api::DeleteParams,
    ) -> BoxFuture<'a, Result<(), Error>> {
        lock(&self.delete_params).push(params);
        self.delete(namespace, name)
    }

    fn patch<'a>(
        &'a self,
        _namespace: &'a str,
        name: &'a str,
        _patch: serde_json::Value,
    ) -> BoxFuture<'a, Result<K, Error>> {
        let result = self.record(Write::Patch(name.into()), None);
        Box::pin(async move { result })
    }
}

/// `name` of a recorded write's object, for assertions.
pub fn written_name<K: Resource>(w: &Write<K>) -> String {
    match w {
        Write::Create(o) | Write::Update(o) | Write::UpdateStatus(o) => o.name_any(),
        Write::Delete(n) | Write::Patch(n) => n.clone(),
    }
}
