//! The management HTTP API: RabbitMQ's `/api` over HTTP/1.1 with basic
//! authentication, so that `rabbitmqadmin`, monitoring scripts and the
//! `warren ctl` commands manage Warren as they manage RabbitMQ. One file per
//! resource family; this one accepts connections and routes requests.

mod access;
mod bindings;
mod connections;
mod definitions;
mod exchanges;
mod http;
mod json;
mod messages;
mod metrics;
mod overview;
mod queues;
mod rates;
mod users;
mod vhosts;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::auth::{Access, Authorize, PermissionCache};
use crate::broker::Broker;
use crate::broker::vhost::VHost;
use crate::management::access::Caller;
use crate::management::http::{ApiError, ApiResult, Reply, Request};
use crate::management::rates::Rates;
use crate::server::tls::TLS_HANDSHAKE_TIMEOUT;

pub use crate::management::http::percent_decode;

/// The connection identity of API actions, which come from no AMQP
/// connection (so they may not use another connection's exclusive queues).
const NO_CONNECTION: u64 = 0;
/// Largest request body accepted (definitions of a large broker fit).
const BODY_LIMIT: usize = 64 << 20;
/// The web UI: one page that calls the API from the browser.
const INDEX_HTML: &str = include_str!("index.html");
/// How often message rates are sampled (RabbitMQ's `collect_statistics_interval`).
const RATE_INTERVAL: Duration = Duration::from_secs(5);

/// What every request handler may reach.
pub struct State {
    /// The broker being managed.
    pub broker: Arc<Broker>,
    /// Message rates from the latest samples.
    rates: Rates,
    /// The broker's listeners (for the port-listener health check).
    listeners: Vec<(&'static str, SocketAddr)>,
}

impl State {
    /// A vhost by name, or 404.
    fn vhost(&self, name: &str) -> Result<Arc<VHost>, ApiError> {
        self.broker.vhost(name).ok_or_else(ApiError::not_found)
    }

    /// The vhost named in a path, after checking the caller may use it
    /// (`read`: only look at it).
    fn vhost_for(&self, caller: &Caller, name: &str, read: bool) -> Result<Arc<VHost>, ApiError> {
        let vhost = self.vhost(name)?;
        caller.require_vhost(&self.broker, name, read)?;
        Ok(vhost)
    }

    /// The vhosts a caller sees in broker-wide lists, or only `only` if given.
    fn visible_vhosts(
        &self,
        caller: &Caller,
        only: Option<&str>,
    ) -> Result<Vec<Arc<VHost>>, ApiError> {
        if let Some(name) = only {
            return Ok(vec![self.vhost_for(caller, name, true)?]);
        }
        Ok(self
            .broker
            .vhost_names()
            .iter()
            .filter(|name| caller.sees_vhost(&self.broker, name))
            .filter_map(|name| self.broker.vhost(name))
            .collect())
    }

    /// Runs `act` with the caller's AMQP permissions in `vhost`: declaring
    /// through the API needs the same permissions as declaring over AMQP.
    fn as_caller<T>(
        &self,
        caller: &Caller,
        vhost: &str,
        act: impl FnOnce(&mut dyn Authorize) -> T,
    ) -> T {
        let access = self.access(caller, vhost);
        let mut cache = PermissionCache::default();
        act(&mut cache.for_access(&access))
    }

    /// The caller's AMQP permissions in `vhost`.
    fn access(&self, caller: &Caller, vhost: &str) -> Access {
        Access::new(self.broker.access_control().clone(), &caller.name, vhost)
    }

    /// What a PUT that declares `name` in the path's vhost asks for.
    fn declaration(
        &self,
        caller: &Caller,
        request: &Request,
        vhost: &str,
        name: &str,
    ) -> Result<Declaration, ApiError> {
        Ok(Declaration {
            vhost: self.vhost_for(caller, vhost, false)?,
            body: request.json()?,
            name: name.to_string(),
        })
    }
}

/// A declaration through the API: the vhost (checked for the caller), the
/// JSON body, and the name of the queue or exchange.
struct Declaration {
    vhost: Arc<VHost>,
    body: serde_json::Map<String, serde_json::Value>,
    name: String,
}

/// What an HTTP listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The management API (`management_listen`).
    Management,
    /// The management API over TLS (`management_tls_listen`).
    ManagementTls,
    /// Prometheus metrics (`prometheus_listen`).
    Prometheus,
}

impl Kind {
    /// The protocol name the overview lists the listener under, as RabbitMQ names it.
    fn protocol(self) -> &'static str {
        match self {
            Kind::Management => "http",
            Kind::ManagementTls => "https",
            Kind::Prometheus => "http/prometheus",
        }
    }
}

/// The broker's HTTP listeners, bound.
pub struct HttpListeners {
    bound: Vec<Bound>,
    state: Arc<State>,
}

/// One bound HTTP listener; HTTPS when it has a TLS acceptor.
struct Bound {
    kind: Kind,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
}

impl HttpListeners {
    /// Binds each listener given an address (those of kind
    /// [`Kind::ManagementTls`] with the TLS acceptor that comes with it);
    /// `amqp` is the AMQP listener's address, for the overview and the
    /// port-listener health check.
    pub async fn bind(
        broker: Arc<Broker>,
        amqp: SocketAddr,
        wanted: Vec<(Kind, Option<SocketAddr>, Option<TlsAcceptor>)>,
    ) -> std::io::Result<HttpListeners> {
        let mut bound = Vec::new();
        let mut listeners = vec![("amqp", amqp)];
        for (kind, addr, tls) in wanted {
            if let Some(addr) = addr {
                let listener = TcpListener::bind(addr).await?;
                listeners.push((kind.protocol(), listener.local_addr()?));
                bound.push(Bound {
                    kind,
                    listener,
                    tls,
                });
            }
        }
        let state = Arc::new(State {
            broker,
            rates: Rates::default(),
            listeners,
        });
        Ok(HttpListeners { bound, state })
    }

    /// The address a listener of `kind` actually bound, if it listens.
    pub fn local_addr(&self, kind: Kind) -> Option<SocketAddr> {
        self.bound
            .iter()
            .find(|bound| bound.kind == kind)
            .and_then(|bound| bound.listener.local_addr().ok())
    }

    /// Serves every listener, and samples message rates for the API, until
    /// `shutdown` becomes true.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let mut tasks = JoinSet::new();
        let api = |kind| matches!(kind, Kind::Management | Kind::ManagementTls);
        if self.bound.iter().any(|bound| api(bound.kind)) {
            let state = self.state.clone();
            tasks.spawn(async move {
                let mut sample = tokio::time::interval(RATE_INTERVAL);
                loop {
                    sample.tick().await;
                    state.rates.sample(&state.broker);
                }
            });
        }
        for bound in self.bound {
            tasks.spawn(accept(bound, self.state.clone()));
        }
        let mut shutdown = shutdown;
        while shutdown.changed().await.is_ok() && !*shutdown.borrow() {}
        // Dropping the set aborts the listeners and the connections they serve.
    }
}

/// Accepts HTTP connections forever, one task each.
async fn accept(bound: Bound, state: Arc<State>) {
    let Bound {
        kind,
        listener,
        tls,
    } = bound;
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match &tls {
                    None => {
                        connections.spawn(serve(stream, peer, kind, state.clone()));
                    }
                    Some(acceptor) => {
                        connections.spawn(serve_tls(acceptor.clone(), stream, peer, kind, state.clone()));
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Completes the TLS handshake (bounded as on the amqps listener), then serves HTTP over it.
async fn serve_tls(
    acceptor: TlsAcceptor,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    kind: Kind,
    state: Arc<State>,
) {
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => serve(stream, peer, kind, state).await,
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "management TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "management TLS handshake timed out"),
    }
}

/// Serves one HTTP/1.1 connection (with keep-alive) until the client leaves.
async fn serve<S>(stream: S, peer: SocketAddr, kind: Kind, state: Arc<State>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        let state = state.clone();
        async move {
            let response = match kind {
                Kind::Management | Kind::ManagementTls => respond(&state, request, peer).await,
                Kind::Prometheus => metrics::respond(&state.broker, request.uri().path()),
            };
            Ok::<_, Infallible>(response)
        }
    });
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(%peer, error = %e, "management connection ended");
    }
}

async fn respond(
    state: &State,
    request: hyper::Request<Incoming>,
    peer: SocketAddr,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, BODY_LIMIT).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return error_response(&ApiError::bad_request(
                "Exceeded HTTP request body size limit",
            ));
        }
    };
    let path = parts.uri.path();
    if path == "/" || path == "/index.html" {
        // Served without authentication, as RabbitMQ serves its UI: the page logs in to the API.
        return text_response(
            "text/html; charset=utf-8",
            Bytes::from_static(INDEX_HTML.as_bytes()),
        );
    }
    let Some(api_path) = path.strip_prefix("/api") else {
        return error_response(&ApiError::not_found());
    };
    let request = Request {
        method: parts.method,
        path: api_path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| percent_decode(s, false))
            .collect(),
        query: http::parse_query(parts.uri.query()),
        headers: parts.headers,
        body,
    };
    let outcome = access::authenticate(&state.broker, &request, peer.ip())
        .and_then(|caller| route(state, &caller, &request));
    match outcome {
        Ok(Reply::Json(value)) => text_response(
            "application/json",
            Bytes::from(serde_json::to_vec(&value).unwrap_or_default()),
        ),
        Ok(Reply::Status(status, value)) => {
            let mut response = text_response(
                "application/json",
                Bytes::from(serde_json::to_vec(&value).unwrap_or_default()),
            );
            *response.status_mut() = status;
            response
        }
        Ok(Reply::Created) => empty_response(StatusCode::CREATED),
        Ok(Reply::NoContent) => empty_response(StatusCode::NO_CONTENT),
        Err(error) => error_response(&error),
    }
}

/// Hands the request to the handler of its resource family.
fn route(state: &State, caller: &Caller, request: &Request) -> ApiResult {
    let path: Vec<&str> = request.path.iter().map(String::as_str).collect();
    let Some((family, rest)) = path.split_first() else {
        return Err(ApiError::not_found());
    };
    match *family {
        "overview" | "whoami" | "health" | "aliveness-test" => {
            overview::handle(state, caller, request, &path)
        }
        "vhosts" => vhosts::handle(state, caller, request, rest),
        "users" | "permissions" => users::handle(state, caller, request, &path),
        "queues" => queues::handle(state, caller, request, rest),
        "exchanges" => exchanges::handle(state, caller, request, rest),
        "bindings" => bindings::handle(state, caller, request, rest),
        "connections" | "channels" | "consumers" => {
            connections::handle(state, caller, request, &path)
        }
        "definitions" => definitions::handle(state, caller, request, rest),
        _ => Err(ApiError::not_found()),
    }
}

pub(crate) fn text_response(content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn empty_response(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

pub(crate) fn error_response(error: &ApiError) -> Response<Full<Bytes>> {
    let mut response = text_response(
        "application/json",
        Bytes::from(serde_json::to_vec(&error.body()).unwrap_or_default()),
    );
    *response.status_mut() = error.status;
    if error.status == StatusCode::UNAUTHORIZED {
        // Browsers ask for credentials on this, as with RabbitMQ.
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"RabbitMQ Management\""),
        );
    }
    response
}
