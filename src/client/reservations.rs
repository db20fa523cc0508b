//! Reservation results of a caller's clients, streamed from every node at once: each node
//! sends those its own applied entries answer, so a result arrives whichever node applied it
//! first (and may arrive more than once).

use tokio::sync::mpsc;

use super::retry::{next_backoff, BACKOFF_MIN};
use super::RemoteUpstream;
use crate::api;
use crate::fsm::{ClientKey, ReservationEvent};
use crate::security::dial::JobsApi;

impl RemoteUpstream {
    /// Reservation results for this caller's clients, as they are applied: a new feed from
    /// every node.
    pub fn reservations(&self) -> mpsc::Receiver<ReservationEvent> {
        let (tx, rx) = mpsc::channel(4096);
        self.stream_reservations(None, &tx);
        rx
    }

    /// Streams this proxy's reservation results from every node but `skip` into `tx`.
    pub(crate) fn stream_reservations(&self, skip: Option<usize>, tx: &mpsc::Sender<ReservationEvent>) {
        for index in (0..self.addrs().len()).filter(|i| Some(*i) != skip) {
            let client = self.client(index);
            let (tx, proxy) = (tx.clone(), self.proxy_id().to_string());
            tokio::spawn(stream_from(client, proxy, tx));
        }
    }
}

/// Forwards one node's stream of this proxy's reservation results, reconnecting with
/// backoff whenever it breaks, until the receiver is gone.
async fn stream_from(mut client: JobsApi, proxy_id: String, tx: mpsc::Sender<ReservationEvent>) {
    let mut backoff = BACKOFF_MIN;
    while !tx.is_closed() {
        let request = api::ReserveUpdateRequest { proxy_id: proxy_id.clone() };
        if let Ok(response) = client.stream_reserve_updates(request).await {
            let mut stream = response.into_inner();
            backoff = BACKOFF_MIN;
            while let Ok(Some(update)) = stream.message().await {
                let Some(r) = update.reservation else { continue };
                // A reservation still waiting is no result, and one that does not decode (a
                // negative job id) is dropped rather than read as another job.
                let Ok(Some(outcome)) = crate::codec::wire::outcome_from(&r) else { continue };
                let (client_id, request_id) = (r.client_id, r.request_id);
                let event = ReservationEvent { client: ClientKey::new(&proxy_id, &client_id), request_id, outcome };
                if tx.send(event).await.is_err() {
                    return;
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = next_backoff(backoff);
    }
}
