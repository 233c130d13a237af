//! `eventstore dev-token`: a bearer token for the local server run with `AUTH_MODE=jwt`.
//! Signed with the development key (`EVENTSTORE_DEV_KEY`, else the public default), so it is
//! worthless against a deployed stack, whose API Gateway accepts only its issuer's tokens.

use std::time::Duration;

use eventstore_http::auth::dev::DevKey;
use eventstore_http::{AuthConfig, Permission, Tenant};

pub(crate) struct Request {
    pub scopes: Vec<String>,
    pub tenant: Option<String>,
    pub tenant_claim: Option<String>,
    pub subject: String,
    pub ttl: u64,
}

/// The token, with the scopes named as the server's `AUTH_SCOPE_PREFIX` spells them.
pub(crate) fn mint(request: Request) -> Result<String, String> {
    let config = AuthConfig::from_env().map_err(|e| e.to_string())?;
    let scopes = request
        .scopes
        .iter()
        .map(|name| {
            Permission::from_scope_name(name)
                .map(|p| config.scope(p))
                .ok_or_else(|| {
                    let known: Vec<&str> = Permission::ALL.iter().map(|p| p.scope_name()).collect();
                    format!("unknown scope {name:?}; one of {}", known.join(", "))
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut claims = Vec::new();
    if let Some(tenant) = request.tenant {
        if Tenant::parse(&tenant).is_none() {
            return Err(format!(
                "tenant {tenant:?} is not a tenant id (1 to 64 characters of [A-Za-z0-9_])"
            ));
        }
        let claim = request
            .tenant_claim
            .or(config.tenant_claim)
            .ok_or("--tenant needs the claim's name: --tenant-claim, or AUTH_TENANT_CLAIM as the server has it")?;
        claims.push((claim, tenant));
    }
    DevKey::from_env()
        .mint(
            &request.subject,
            &scopes,
            &claims,
            Duration::from_secs(request.ttl),
        )
        .map_err(|e| e.to_string())
}
