//! Keystone v3: authenticate with a password or an application credential, keep the token
//! fresh, and find service endpoints in the catalog.
//!
//! Our own small client on reqwest rather than `openstack_sdk`: the harness needs auth, the
//! catalog and a handful of list/delete calls; this keeps the dependency tree (and build time on
//! 2 cores) small, and the secret handling in one reviewed place. Errors carry Keystone's status
//! and message, never a credential.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::clouds::{AuthKind, Cloud};

/// Re-authenticate this long before the token expires.
const REFRESH_MARGIN: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// Why talking to a cloud's Keystone (or, with its token, to a service) failed. Messages name
/// the cloud and never carry a credential.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The login request got no answer (connection, TLS handshake, timeout).
    #[error("cloud `{cloud}`: cannot reach Keystone at {url}: {detail}")]
    Unreachable {
        /// The cloud's name in clouds.yaml.
        cloud: String,
        /// The URL that was requested.
        url: String,
        /// The HTTP client's error text with its causes.
        detail: String,
    },
    /// A service request (with a token) got no answer, after the retries that were safe.
    #[error("cloud `{cloud}`: no answer to {call} ({}): {detail}", attempts_text(*.attempts))]
    NoAnswer {
        /// The cloud's name in clouds.yaml.
        cloud: String,
        /// Method and URL, e.g. `DELETE http://nova:8774/v2.1/servers/ID`.
        call: String,
        /// How many times it was sent.
        attempts: u32,
        /// The HTTP client's error text with its causes.
        detail: String,
    },
    /// Keystone answered the login with an error status (wrong password, expired credential, ...).
    #[error("cloud `{cloud}`: Keystone refused the {kind} login ({status}): {message}")]
    Refused {
        /// The cloud's name in clouds.yaml.
        cloud: String,
        /// The login method: `password` or `application credential`.
        kind: String,
        /// The HTTP status code Keystone answered with.
        status: u16,
        /// Keystone's `error.message`; empty when it gave none.
        message: String,
    },
    /// Keystone accepted the login but the answer lacks the `X-Subject-Token` header or a
    /// readable token body.
    #[error("cloud `{cloud}`: Keystone answered without a token ({detail})")]
    Malformed {
        /// The cloud's name in clouds.yaml.
        cloud: String,
        /// What was missing, or why the token body did not parse.
        detail: String,
    },
    /// The token's service catalog has no endpoint of that service type for the cloud's
    /// interface and region.
    #[error("cloud `{cloud}`: the catalog has no {service} endpoint (interface {interface}{region}); it has: {available}")]
    NoEndpoint {
        /// The cloud's name in clouds.yaml.
        cloud: String,
        /// The service type asked for (e.g. `compute`, `network`, `load-balancer`).
        service: String,
        /// The endpoint interface looked for (clouds.yaml `interface`, default `public`).
        interface: String,
        /// `, region <name>` when the cloud names a region; empty otherwise.
        region: String,
        /// The service types the catalog does have, comma-separated.
        available: String,
    },
    /// The HTTP client could not be built: the `cacert` file is unreadable or not PEM, or the
    /// TLS setup failed.
    #[error("cloud `{cloud}`: {detail}")]
    Tls {
        /// The cloud's name in clouds.yaml.
        cloud: String,
        /// What went wrong, naming the `cacert` path when it is the cause.
        detail: String,
    },
}

/// One service in the Keystone token's catalog.
#[derive(Clone, Debug, Deserialize)]
pub struct CatalogEntry {
    /// The service type (Keystone `type`), e.g. `compute`, `network`, `identity`.
    #[serde(rename = "type")]
    pub service_type: String,
    /// The service's name (e.g. `nova`); empty when Keystone gives none.
    #[serde(default)]
    pub name: String,
    /// The service's endpoints, one per interface and region.
    pub endpoints: Vec<Endpoint>,
}

/// One endpoint of a catalog service.
#[derive(Clone, Debug, Deserialize)]
pub struct Endpoint {
    /// `public`, `internal` or `admin`.
    pub interface: String,
    /// The region's name; `None` when Keystone gives none.
    #[serde(default)]
    pub region: Option<String>,
    /// The region's id; `None` when Keystone gives none.
    #[serde(default)]
    pub region_id: Option<String>,
    /// The service's base URL.
    pub url: String,
}

#[derive(Deserialize)]
struct TokenBody {
    token: TokenInfo,
}

#[derive(Deserialize)]
struct TokenInfo {
    expires_at: DateTime<Utc>,
    #[serde(default)]
    catalog: Vec<CatalogEntry>,
    #[serde(default)]
    project: Option<Value>,
    #[serde(default)]
    user: Option<Value>,
}

struct Token {
    value: String,
    expires_at: DateTime<Utc>,
}

/// An authenticated session with one cloud.
pub struct Session {
    cloud: Cloud,
    http: reqwest::Client,
    token: Mutex<Token>,
    /// The service catalog that came with the first token (kept across re-authentication).
    pub catalog: Vec<CatalogEntry>,
    /// The project the token is scoped to, if any.
    pub project_id: Option<String>,
    /// The user the token belongs to.
    pub user_id: Option<String>,
    /// How many logins this session made (tests and logs: re-auth is visible).
    logins: std::sync::atomic::AtomicUsize,
}

/// `auth_url` with `/v3` (clouds.yaml often gives the bare Keystone root).
pub fn identity_url(auth_url: &str) -> String {
    let u = auth_url.trim_end_matches('/');
    if u.ends_with("/v3") { u.to_string() } else { format!("{u}/v3") }
}

/// The `auth` body for Keystone's POST /v3/auth/tokens.
pub fn auth_body(cloud: &Cloud) -> Value {
    let a = &cloud.auth;
    let domain = |name: &Option<String>, id: &Option<String>| match (id, name) {
        (Some(id), _) => json!({"id": id}),
        (None, Some(n)) => json!({"name": n}),
        (None, None) => json!({"id": "default"}),
    };
    match cloud.kind {
        AuthKind::ApplicationCredential => {
            let cred = match (&a.application_credential_id, &a.application_credential_name) {
                (Some(id), _) => json!({"id": id, "secret": a.application_credential_secret}),
                (None, name) => json!({
                    "name": name,
                    "secret": a.application_credential_secret,
                    "user": match &a.user_id {
                        Some(id) => json!({"id": id}),
                        None => json!({"name": a.username, "domain": domain(&a.user_domain_name, &a.user_domain_id)}),
                    },
                }),
            };
            // Application credentials carry their own project scope.
            json!({"auth": {"identity": {"methods": ["application_credential"], "application_credential": cred}}})
        }
        AuthKind::Password => {
            let user = match &a.user_id {
                Some(id) => json!({"id": id, "password": a.password}),
                None => json!({"name": a.username, "password": a.password, "domain": domain(&a.user_domain_name, &a.user_domain_id)}),
            };
            let mut body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": user}}}});
            let project = match (&a.project_id, &a.project_name) {
                (Some(id), _) => Some(json!({"id": id})),
                (None, Some(n)) => Some(json!({"name": n, "domain": domain(&a.project_domain_name, &a.project_domain_id)})),
                (None, None) => None,
            };
            if let Some(p) = project {
                body["auth"]["scope"] = json!({"project": p});
            }
            body
        }
    }
}

fn attempts_text(n: u32) -> String {
    if n == 1 { "1 attempt".into() } else { format!("{n} attempts") }
}

/// How often a request that got no answer is sent in all, where sending it again is safe.
const TRANSPORT_ATTEMPTS: u32 = 3;

/// The client error and its causes: reqwest's own text ("error sending request") hides whether
/// the connection was refused, reset or timed out.
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Whether a request that got no answer may be sent again. A refused connection never reached
/// the service. Otherwise only idempotent methods: servers close idle keep-alive connections
/// (gunicorn after 2 s, proxies after their own timeouts) and a request can cross the close on
/// the wire; a POST may have been acted on, a DELETE or GET repeated is harmless (a repeated
/// DELETE answers 404, which callers read as gone).
fn may_resend(method: &reqwest::Method, e: &reqwest::Error) -> bool {
    use reqwest::Method;
    e.is_connect() || [Method::GET, Method::HEAD, Method::PUT, Method::DELETE, Method::OPTIONS].contains(method)
}

/// An HTTP client honouring the cloud's `cacert` and `verify: false`.
pub fn http_client(cloud: &Cloud) -> Result<reqwest::Client, IdentityError> {
    let tls = |detail: String| IdentityError::Tls {
        cloud: cloud.name.clone(),
        detail,
    };
    // Idle connections are dropped after 1 s rather than reused: servers close theirs after a
    // few seconds (gunicorn 2 s, Apache 5 s, load balancers their own), and a request sent on a
    // connection as the server closes it gets no answer; a POST cannot be sent again safely.
    // A bound on a hung request, not on a slow one: a loaded Neutron takes tens of seconds to
    // associate a floating IP (seen past 30 s on the fixture with the machine busy).
    let mut b = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .pool_idle_timeout(Duration::from_secs(1));
    if let Some(ca) = &cloud.cacert {
        let pem = std::fs::read(ca).map_err(|e| tls(format!("cacert {}: {e}", ca.display())))?;
        let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| tls(format!("cacert {}: not a PEM certificate: {e}", ca.display())))?;
        b = b.add_root_certificate(cert);
    }
    if !cloud.verify {
        b = b.danger_accept_invalid_certs(true);
    }
    b.build().map_err(|e| tls(e.to_string()))
}

impl Session {
    /// Authenticates with the cloud's Keystone (POST /v3/auth/tokens, password or application
    /// credential) and keeps the token, the catalog, the project and the user.
    pub async fn login(cloud: &Cloud) -> Result<Session, IdentityError> {
        let http = http_client(cloud)?;
        let (token, info) = Self::authenticate(cloud, &http).await?;
        Ok(Session {
            cloud: cloud.clone(),
            http,
            token: Mutex::new(token),
            catalog: info.catalog,
            project_id: info.project.and_then(|p| p.get("id")?.as_str().map(String::from)),
            user_id: info.user.and_then(|u| u.get("id")?.as_str().map(String::from)),
            logins: std::sync::atomic::AtomicUsize::new(1),
        })
    }

    async fn authenticate(cloud: &Cloud, http: &reqwest::Client) -> Result<(Token, TokenInfo), IdentityError> {
        let url = format!("{}/auth/tokens", identity_url(&cloud.auth.auth_url));
        // A login may be sent again whatever happened to the first: a second token is harmless.
        let mut attempt = 1;
        let r = loop {
            match http.post(&url).json(&auth_body(cloud)).send().await {
                Ok(r) => break r,
                Err(e) if attempt < TRANSPORT_ATTEMPTS => {
                    tracing::debug!(cloud = %cloud.name, %url, error = %describe(&e), "login got no answer; sending it again");
                    tokio::time::sleep(Duration::from_millis(250 * u64::from(attempt))).await;
                    attempt += 1;
                }
                Err(e) => {
                    return Err(IdentityError::Unreachable {
                        cloud: cloud.name.clone(),
                        url: url.clone(),
                        detail: describe(&e),
                    });
                }
            }
        };
        let status = r.status();
        let token = r.headers().get("x-subject-token").and_then(|v| v.to_str().ok()).map(String::from);
        let body: Value = r.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(IdentityError::Refused {
                cloud: cloud.name.clone(),
                kind: match cloud.kind {
                    AuthKind::Password => "password".into(),
                    AuthKind::ApplicationCredential => "application credential".into(),
                },
                status: status.as_u16(),
                message: body.pointer("/error/message").and_then(Value::as_str).unwrap_or("").to_string(),
            });
        }
        let malformed = |detail: &str| IdentityError::Malformed {
            cloud: cloud.name.clone(),
            detail: detail.into(),
        };
        let value = token.ok_or_else(|| malformed("no X-Subject-Token header"))?;
        let info: TokenBody = serde_json::from_value(body).map_err(|e| malformed(&e.to_string()))?;
        Ok((
            Token {
                value,
                expires_at: info.token.expires_at,
            },
            info.token,
        ))
    }

    /// A valid token: re-authenticates when the current one is (nearly) expired.
    pub async fn token(&self) -> Result<String, IdentityError> {
        let mut t = self.token.lock().await;
        if t.expires_at - Utc::now() < REFRESH_MARGIN {
            *t = Self::authenticate(&self.cloud, &self.http).await?.0;
            self.logins.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(t.value.clone())
    }

    /// Drops the token (a service answered 401): the next call logs in again.
    pub async fn invalidate(&self) {
        self.token.lock().await.expires_at = DateTime::<Utc>::MIN_UTC;
    }

    /// How many times this session has authenticated: 1 after [`Session::login`], one more per
    /// re-authentication.
    pub fn logins(&self) -> usize {
        self.logins.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// GET a service URL with the token; on 401 logs in once more and retries.
    pub async fn get(&self, url: &str) -> Result<reqwest::Response, IdentityError> {
        self.send(reqwest::Method::GET, url, None).await
    }

    /// A request with the token (and a JSON body); on 401 logs in once more and retries. A
    /// request that got no answer is sent again (up to 3 times in all, with a short pause) when
    /// that is safe: see [`may_resend`].
    pub async fn send(&self, method: reqwest::Method, url: &str, body: Option<&Value>) -> Result<reqwest::Response, IdentityError> {
        let mut relogged = false;
        let mut unanswered = 0;
        loop {
            let token = self.token().await?;
            let mut req = self.http.request(method.clone(), url).header("X-Auth-Token", token);
            if let Some(b) = body {
                req = req.json(b);
            }
            match req.send().await {
                Ok(r) if r.status() == reqwest::StatusCode::UNAUTHORIZED && !relogged => {
                    relogged = true;
                    self.invalidate().await;
                }
                Ok(r) => return Ok(r),
                Err(e) if unanswered + 1 < TRANSPORT_ATTEMPTS && may_resend(&method, &e) => {
                    unanswered += 1;
                    tracing::debug!(cloud = %self.cloud.name, %method, %url, error = %describe(&e), "no answer; sending it again");
                    tokio::time::sleep(Duration::from_millis(250 * u64::from(unanswered))).await;
                }
                Err(e) => {
                    unanswered += 1;
                    return Err(IdentityError::NoAnswer {
                        cloud: self.cloud.name.clone(),
                        call: format!("{method} {url}"),
                        attempts: unanswered,
                        detail: describe(&e),
                    });
                }
            }
        }
    }

    /// A session already logged in (a token valid for an hour) to cloud `c` whose Keystone is
    /// at `auth_url`, with `catalog`: for unit tests against loopback servers.
    #[cfg(test)]
    pub(crate) fn logged_in_for_tests(auth_url: &str, catalog: Vec<CatalogEntry>) -> Session {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("clouds.yaml"),
            format!("clouds:\n  c:\n    auth: {{auth_url: '{auth_url}', username: u, password: p, project_name: pr}}\n"),
        )
        .unwrap();
        let cloud = super::clouds::load(&super::clouds::Lookup {
            cwd: d.path().to_path_buf(),
            etc: d.path().join("none"),
            ..Default::default()
        })
        .unwrap();
        Session {
            http: http_client(&cloud).unwrap(),
            cloud,
            token: Mutex::new(Token {
                value: "t".into(),
                expires_at: Utc::now() + chrono::TimeDelta::hours(1),
            }),
            catalog,
            project_id: None,
            user_id: None,
            logins: std::sync::atomic::AtomicUsize::new(1),
        }
    }

    /// The current token's value (to revoke it in tests, or hand to a CLI).
    pub async fn current_token(&self) -> String {
        self.token.lock().await.value.clone()
    }

    /// The endpoint of a service type for the cloud's interface (default public) and region.
    pub fn endpoint(&self, service_type: &str) -> Result<String, IdentityError> {
        let interface = self.cloud.interface.clone().unwrap_or_else(|| "public".into());
        let region = self.cloud.region.clone();
        let found = self
            .catalog
            .iter()
            .filter(|e| e.service_type == service_type)
            .flat_map(|e| &e.endpoints)
            .find(|ep| {
                ep.interface == interface
                    && region
                        .as_ref()
                        .is_none_or(|r| ep.region.as_ref() == Some(r) || ep.region_id.as_ref() == Some(r))
            });
        match found {
            Some(ep) => Ok(ep.url.trim_end_matches('/').to_string()),
            None => Err(IdentityError::NoEndpoint {
                cloud: self.cloud.name.clone(),
                service: service_type.into(),
                interface,
                region: region.map(|r| format!(", region {r}")).unwrap_or_default(),
                available: self.catalog.iter().map(|e| e.service_type.clone()).collect::<Vec<_>>().join(", "),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::clouds::{Lookup, load};
    use super::*;

    fn cloud(text: &str) -> Cloud {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("clouds.yaml"), text).unwrap();
        load(&Lookup {
            cwd: d.path().to_path_buf(),
            etc: d.path().join("none"),
            ..Default::default()
        })
        .unwrap()
    }

    /// A loopback server that reads each request's head and then, by the request's number
    /// (from 1), drops the connection unanswered or answers 204. Counts the requests it saw.
    async fn dropping_server(answer_from: usize) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = std::sync::Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                if n >= answer_from {
                    let _ = sock.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n").await;
                }
                // Dropping the socket closes the connection, answered or not.
            }
        });
        (base, seen)
    }

    fn session(base: &str) -> Session {
        Session::logged_in_for_tests(base, Vec::new())
    }

    #[tokio::test]
    async fn a_dropped_delete_is_sent_again_and_a_dropped_post_is_not() {
        use std::sync::atomic::Ordering;
        let (base, seen) = dropping_server(3).await;
        let s = session(&base);
        let url = format!("{base}/v2.1/servers/x");
        let r = s
            .send(reqwest::Method::DELETE, &url, None)
            .await
            .expect("the third DELETE is answered");
        assert_eq!(r.status(), 204);
        assert_eq!(seen.load(Ordering::SeqCst), 3, "two unanswered DELETEs, then the answered one");

        let (base, seen) = dropping_server(2).await;
        let s = session(&base);
        let url = format!("{base}/v2.0/ports");
        let e = s.send(reqwest::Method::POST, &url, Some(&json!({}))).await.unwrap_err().to_string();
        assert_eq!(
            seen.load(Ordering::SeqCst),
            1,
            "a POST the server may have acted on is not repeated"
        );
        assert!(e.starts_with(&format!("cloud `c`: no answer to POST {url} (1 attempt): ")), "{e}");
        assert!(!e.contains("Keystone"), "a service is not Keystone: {e}");

        let (base, seen) = dropping_server(usize::MAX).await;
        let s = session(&base);
        let url = format!("{base}/v2.1/servers");
        let e = s.get(&url).await.unwrap_err().to_string();
        assert_eq!(seen.load(Ordering::SeqCst), 3);
        assert!(e.contains("(3 attempts)"), "{e}");
    }

    #[tokio::test]
    async fn a_refused_connection_is_retried_even_for_a_post_and_named_with_its_cause() {
        // A port nobody listens on: bind, note the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let base = format!("http://127.0.0.1:{port}");
        let s = session(&base);
        let e = s
            .send(reqwest::Method::POST, &format!("{base}/v2.0/ports"), Some(&json!({})))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("(3 attempts)"), "{e}");
        assert!(e.to_lowercase().contains("refused"), "the cause is named: {e}");
    }

    #[test]
    fn auth_bodies_follow_keystone_v3() {
        let pw = cloud(
            "clouds:\n  c:\n    auth: {auth_url: 'http://k:5000', username: u, password: p, project_name: pr, user_domain_name: D1, project_domain_id: d2}\n",
        );
        assert_eq!(
            auth_body(&pw),
            json!({"auth": {
                "identity": {"methods": ["password"], "password": {"user": {"name": "u", "password": "p", "domain": {"name": "D1"}}}},
                "scope": {"project": {"name": "pr", "domain": {"id": "d2"}}}
            }})
        );
        assert_eq!(identity_url(&pw.auth.auth_url), "http://k:5000/v3");
        assert_eq!(identity_url("http://k:5000/v3/"), "http://k:5000/v3");
        let ac = cloud(
            "clouds:\n  c:\n    auth_type: v3applicationcredential\n    auth: {auth_url: 'http://k/identity/v3', application_credential_id: i, application_credential_secret: s}\n",
        );
        assert_eq!(
            auth_body(&ac),
            json!({"auth": {"identity": {"methods": ["application_credential"], "application_credential": {"id": "i", "secret": "s"}}}})
        );
    }
}
