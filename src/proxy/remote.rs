//! The cluster over gRPC (`client::RemoteUpstream`) as a proxy's `Upstream`.

use tokio::sync::mpsc;

use super::upstream::Upstream;
use crate::client::{Answer, Query, RemoteUpstream, UpstreamError};
use crate::fsm::{Op, Reply, ReservationEvent};

#[tonic::async_trait]
impl Upstream for RemoteUpstream {
    async fn write(&self, op: Op) -> Result<Reply, UpstreamError> {
        RemoteUpstream::write(self, op).await
    }

    async fn query(&self, query: Query) -> Result<Answer, UpstreamError> {
        RemoteUpstream::query(self, query).await
    }

    fn reservations(&self) -> mpsc::Receiver<ReservationEvent> {
        RemoteUpstream::reservations(self)
    }

    fn proxy_id(&self) -> &str {
        RemoteUpstream::proxy_id(self)
    }
}
