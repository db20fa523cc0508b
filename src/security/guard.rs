//! The one place a call's role is checked: a layer before every gRPC service of a node. A
//! call outside its caller's roles gets PermissionDenied, and the node logs it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::codegen::http;

use super::roles::{refusal, Roles};
use super::tokens::AUTHORIZATION;
use super::{Callers, PeerInfo};

/// Puts `Guard` before the services.
#[derive(Clone)]
pub(crate) struct GuardLayer(pub(crate) Callers);

impl<S> tower::Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard { inner, callers: self.0.clone() }
    }
}

#[derive(Clone)]
pub(crate) struct Guard<S> {
    inner: S,
    callers: Callers,
}

type Answer<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

impl<S, B, R> tower::Service<http::Request<B>> for Guard<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    R: Default + Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = Answer<Self::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        let held = roles(&self.callers, &request);
        match refusal(path, held) {
            None => Box::pin(self.inner.call(request)),
            Some(why) => {
                let peer = request.extensions().get::<PeerInfo>().and_then(|p| p.addr).map_or("unknown".into(), |a| a.to_string());
                tracing::warn!(%peer, roles = %held, "call refused: {why}");
                let denied = tonic::Status::permission_denied(format!("permission denied: {why}")).into_http();
                Box::pin(std::future::ready(Ok(denied)))
            }
        }
    }
}

/// The roles of the caller of `request`.
fn roles<B>(callers: &Callers, request: &http::Request<B>) -> Roles {
    match callers {
        Callers::Open => Roles::ALL,
        Callers::Tokens(table) => {
            let authorization = request.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok());
            table.get().roles(authorization)
        }
        Callers::Tls(_) => request.extensions().get::<PeerInfo>().and_then(|p| p.cert_roles).unwrap_or_default(),
    }
}
