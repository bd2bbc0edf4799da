//! `Admin`: what operators ask a reporter, with grpcurl or any gRPC client.

use std::collections::HashMap;
use std::sync::Arc;

use hostpulse_proto::pb;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::config::Config;
use crate::state::Shared;

/// The `Admin` service.
pub struct AdminService {
    shared: Arc<Shared>,
}

impl AdminService {
    /// A service over the shared state.
    pub fn new(shared: Arc<Shared>) -> Self {
        AdminService { shared }
    }
}

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminService {
    async fn list_nodes(
        &self,
        _request: Request<pb::ListNodesRequest>,
    ) -> Result<Response<pb::ListNodesResponse>, Status> {
        Ok(Response::new(pb::ListNodesResponse {
            nodes: self.shared.registry.list(),
        }))
    }

    type TailStream = ReceiverStream<Result<pb::TailResponse, Status>>;

    async fn tail(
        &self,
        request: Request<pb::TailRequest>,
    ) -> Result<Response<Self::TailStream>, Status> {
        let filter = request.into_inner();
        let mut rx = self.shared.tail.subscribe();
        let (tx, out) = mpsc::channel(256);
        tokio::spawn(async move {
            let mut missed = 0u64;
            loop {
                let batch = match rx.recv().await {
                    Ok(b) => b,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        missed += n;
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if !filter.nodes.is_empty() && !filter.nodes.iter().any(|n| **n == *batch.node) {
                    continue;
                }
                for row in &batch.decoded.rows {
                    if !filter.tables.is_empty() && !filter.tables.contains(&row.key.table) {
                        continue;
                    }
                    let msg = pb::TailResponse {
                        row: Some(pb::Row {
                            table: row.key.table.clone(),
                            ts: row.ts,
                            node: batch.node.to_string(),
                            tags: row.key.tags.iter().cloned().collect::<HashMap<_, _>>(),
                            fields: row
                                .fields
                                .iter()
                                .filter_map(|(k, v)| Some((k.to_string(), v.number()?)))
                                .collect(),
                            texts: row
                                .fields
                                .iter()
                                .filter_map(|(k, v)| {
                                    Some((k.to_string(), v.as_text()?.to_string()))
                                })
                                .collect(),
                        }),
                        missed: std::mem::take(&mut missed),
                    };
                    if tx.send(Ok(msg)).await.is_err() {
                        return; // the reader went away
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(out)))
    }

    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let spool = self.shared.spool.clone();
        let mut status =
            tokio::task::spawn_blocking(move || spool.map(|s| s.status()).unwrap_or_default())
                .await
                .map_err(|e| Status::internal(e.to_string()))?;
        status.memory_budget = Some(self.shared.limits.memory.status());
        Ok(Response::new(status))
    }

    async fn get_config(
        &self,
        request: Request<pb::GetConfigRequest>,
    ) -> Result<Response<pb::GetConfigResponse>, Status> {
        let node = request.into_inner().node_id;
        let config: Arc<Config> = self.shared.config.borrow().clone();
        Ok(Response::new(pb::GetConfigResponse {
            config: Some(config.for_node(&node)),
            path: config
                .path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            loaded_ms: config.loaded_ms,
        }))
    }
}
