//! Local development tokens. With `AUTH_MODE=jwt`, the local server does what API Gateway's
//! JWT authorizer does on AWS: it validates the bearer token (HS256, signed with the
//! development key, issuer and audience `eventstore-local`, not expired) and puts its claims
//! and scopes into an API Gateway request context. The router then authorizes the request
//! exactly as it does in the deployed functions. `eventstore dev-token` mints such tokens.
//!
//! The development key is public (it is in this file) unless `EVENTSTORE_DEV_KEY` replaces
//! it; it protects nothing but a loopback port, and no deployed function reads it.

use std::collections::HashMap;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use lambda_http::aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerJwtDescription,
    ApiGatewayV2httpRequestContext,
};
use lambda_http::request::RequestContext;
use serde_json::{Map, Value};

/// `iss` and `aud` of development tokens.
pub const DEV_ISSUER: &str = "eventstore-local";
pub const DEV_AUDIENCE: &str = "eventstore-local";

/// The key when `EVENTSTORE_DEV_KEY` is unset. Public on purpose: see the module docs.
pub const DEFAULT_DEV_KEY: &str = "eventstore-local-development-key-not-a-secret";

/// A development token that is not valid, with why (the local server's 401 says it).
#[derive(Debug, thiserror::Error)]
#[error("invalid development token: {0}")]
pub struct DevTokenError(#[source] jsonwebtoken::errors::Error);

/// The HS256 key development tokens are signed and checked with.
#[derive(Clone)]
pub struct DevKey(Vec<u8>);

impl std::fmt::Debug for DevKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DevKey(..)")
    }
}

impl DevKey {
    pub fn new(secret: &str) -> Self {
        Self(secret.as_bytes().to_vec())
    }

    /// `EVENTSTORE_DEV_KEY`, else [`DEFAULT_DEV_KEY`].
    pub fn from_env() -> Self {
        Self::new(
            &std::env::var("EVENTSTORE_DEV_KEY")
                .ok()
                .filter(|k| !k.is_empty())
                .unwrap_or_else(|| DEFAULT_DEV_KEY.to_owned()),
        )
    }

    /// A token for `subject` holding `scopes` (space separated in `scope`, as OAuth 2.0
    /// and Cognito send them) and the extra string `claims`, valid for `ttl`.
    pub fn mint(
        &self,
        subject: &str,
        scopes: &[String],
        claims: &[(String, String)],
        ttl: Duration,
    ) -> Result<String, DevTokenError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut body = Map::new();
        body.insert("iss".into(), DEV_ISSUER.into());
        body.insert("aud".into(), DEV_AUDIENCE.into());
        body.insert("sub".into(), subject.into());
        body.insert("iat".into(), now.into());
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
        body.insert("exp".into(), now.saturating_add(ttl).into());
        if !scopes.is_empty() {
            body.insert("scope".into(), scopes.join(" ").into());
        }
        for (name, value) in claims {
            body.insert(name.clone(), value.clone().into());
        }
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &body,
            &EncodingKey::from_secret(&self.0),
        )
        .map_err(DevTokenError)
    }

    /// The claims of a valid token.
    pub fn verify(&self, token: &str) -> Result<Map<String, Value>, DevTokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[DEV_ISSUER]);
        validation.set_audience(&[DEV_AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<Map<String, Value>>(
            token,
            &DecodingKey::from_secret(&self.0),
            &validation,
        )
        .map(|data| data.claims)
        .map_err(DevTokenError)
    }
}

/// The request context API Gateway builds for a request its JWT authorizer let through:
/// every claim as a string (arrays flattened to `[a b]`, as API Gateway does), and the
/// scopes of the `scope` claim.
pub fn request_context(claims: &Map<String, Value>) -> RequestContext {
    let flat: HashMap<String, String> = claims
        .iter()
        .map(|(name, value)| {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Array(items) => {
                    let items: Vec<String> = items
                        .iter()
                        .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                        .collect();
                    format!("[{}]", items.join(" "))
                }
                other => other.to_string(),
            };
            (name.clone(), text)
        })
        .collect();
    let scopes: Vec<String> = flat
        .get("scope")
        .map(|s| s.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
    jwt.claims = flat;
    jwt.scopes = (!scopes.is_empty()).then_some(scopes);
    let mut authorizer = ApiGatewayRequestAuthorizer::default();
    authorizer.jwt = Some(jwt);
    let mut context = ApiGatewayV2httpRequestContext::default();
    context.authorizer = Some(authorizer);
    context.stage = Some("$default".into());
    RequestContext::ApiGatewayV2(context)
}
