//! A [`Backend`] that times every call and counts failures into the gateway's metrics
//! (`flowgate_store_operation_seconds`, `flowgate_store_errors_total`), around any backend.

use super::backend::{Backend, BackendError, Event, Signal, StoredSession};
use super::clock::instant_now;
use crate::telemetry::{Metrics, StoreOp};
use std::sync::Arc;

/// `inner`, measured.
pub struct Metered {
    inner: Arc<dyn Backend>,
    metrics: Arc<Metrics>,
}

impl Metered {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Backend>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }

    async fn timed<T>(
        &self,
        op: StoreOp,
        call: impl std::future::Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        let start = instant_now();
        let r = call.await;
        self.metrics.store_call(op, start.elapsed(), r.is_ok());
        r
    }
}

#[async_trait::async_trait]
impl Backend for Metered {
    fn shared(&self) -> bool {
        self.inner.shared()
    }
    async fn load(&self, key: &str) -> Result<Option<StoredSession>, BackendError> {
        self.timed(StoreOp::Load, self.inner.load(key)).await
    }
    async fn save(&self, key: &str, s: &StoredSession) -> Result<(), BackendError> {
        self.timed(StoreOp::Save, self.inner.save(key, s)).await
    }
    async fn delete(&self, key: &str) -> Result<(), BackendError> {
        self.timed(StoreOp::Delete, self.inner.delete(key)).await
    }
    async fn delete_user(&self, user_id: i64, keep: Option<&str>) -> Result<Vec<String>, BackendError> {
        self.timed(StoreOp::DeleteUser, self.inner.delete_user(user_id, keep))
            .await
    }
    async fn list(&self, user_id: Option<i64>) -> Result<Vec<(String, StoredSession)>, BackendError> {
        self.timed(StoreOp::List, self.inner.list(user_id)).await
    }
    async fn touch(&self, batch: &[(String, u64)]) -> Result<(), BackendError> {
        self.timed(StoreOp::Touch, self.inner.touch(batch)).await
    }
    async fn purge(&self, now_ms: u64) -> Result<u64, BackendError> {
        self.timed(StoreOp::Purge, self.inner.purge(now_ms)).await
    }
    async fn put_token(&self, hash: &str, sealed: &[u8], expires_ms: u64) -> Result<(), BackendError> {
        self.timed(StoreOp::PutToken, self.inner.put_token(hash, sealed, expires_ms))
            .await
    }
    async fn get_token(&self, hash: &str) -> Result<Option<(Vec<u8>, u64)>, BackendError> {
        self.timed(StoreOp::GetToken, self.inner.get_token(hash)).await
    }
    async fn take_token(&self, hash: &str) -> Result<bool, BackendError> {
        self.timed(StoreOp::TakeToken, self.inner.take_token(hash)).await
    }
    async fn publish(&self, ev: &Event) -> Result<(), BackendError> {
        self.timed(StoreOp::Publish, self.inner.publish(ev)).await
    }
    fn subscribe(&self, tx: tokio::sync::mpsc::Sender<Signal>) {
        self.inner.subscribe(tx)
    }
}
