//! Authorization: which caller may use which route, on which tenant's streams.
//!
//! API Gateway authenticates (a JWT authorizer or IAM SigV4) and puts who the caller is into
//! the request context; the router resolves that into a [`Caller`] and asks it, before any
//! body is parsed or any table is read, whether the route is allowed ([`Caller::authorize`]).
//! The two checks that depend on the body (the event types of an append, `force` on a
//! subscription) are made by the same type before anything is written. `docs/authorization.md`
//! is the reference.

mod caller;
pub mod dev;
#[cfg(test)]
mod tests;

use std::fmt;

pub use caller::Caller;

/// How callers are authenticated, and so where their rights come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Everyone may do everything (the local server's default; it binds to loopback).
    Off,
    /// API Gateway's JWT authorizer validated a token; rights come from its scopes and the
    /// tenant from a claim.
    Jwt,
    /// API Gateway checked the caller's SigV4 signature against IAM policies on each route's
    /// execute-api ARN; administration is granted to the principals listed in
    /// [`AuthConfig::iam_admins`].
    Iam,
}

/// A family of routes, and the right to use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Permission {
    /// `GET /streams/...` (events, info, snapshot), types, categories.
    ReadEvents,
    /// `POST /streams/{id}/events`.
    Append,
    /// `GET /projections/...`.
    ReadProjections,
    /// `PUT /streams/{id}/snapshot`.
    WriteSnapshots,
    /// `GET` and `PUT /subscriptions/{name}` (forward moves).
    Subscriptions,
    /// Everything, across tenants: `$all`, any tenant's streams, `force` on a checkpoint.
    Admin,
}

impl Permission {
    pub const ALL: [Permission; 6] = [
        Permission::ReadEvents,
        Permission::Append,
        Permission::ReadProjections,
        Permission::WriteSnapshots,
        Permission::Subscriptions,
        Permission::Admin,
    ];

    /// The scope that grants it, after the configured prefix (`eventstore/` by default).
    pub fn scope_name(self) -> &'static str {
        match self {
            Permission::ReadEvents => "events.read",
            Permission::Append => "events.append",
            Permission::ReadProjections => "projections.read",
            Permission::WriteSnapshots => "snapshots.write",
            Permission::Subscriptions => "subscriptions",
            Permission::Admin => "admin",
        }
    }

    /// The permission a scope name (without the prefix) grants.
    pub fn from_scope_name(name: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.scope_name() == name)
    }
}

/// A tenant id: 1 to 64 characters of `[A-Za-z0-9_]`. Tenant `acme` owns every stream id,
/// category, event type, subscription name and projection row key that starts with `acme.`;
/// the characters exclude `.` and `-` so that no tenant's prefix is another's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant(String);

impl Tenant {
    pub fn parse(raw: &str) -> Option<Tenant> {
        let ok = (1..=64).contains(&raw.len())
            && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        ok.then(|| Tenant(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `name` is this tenant's: it starts with the tenant id and a `.`.
    pub fn owns(&self, name: &str) -> bool {
        name.strip_prefix(self.0.as_str())
            .is_some_and(|rest| rest.starts_with('.'))
    }
}

impl fmt::Display for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the functions (and the local server) enforce. From the environment the template
/// sets: `AUTH_MODE`, `AUTH_SCOPE_PREFIX`, `AUTH_TENANT_CLAIM`, `AUTH_IAM_ADMINS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    pub mode: AuthMode,
    /// Prepended to every scope name: a Cognito resource server's identifier and `/`.
    pub scope_prefix: String,
    /// The JWT claim naming the caller's tenant; `None` means no tenancy.
    pub tenant_claim: Option<String>,
    /// IAM mode: principals (user ARNs as API Gateway reports them, a trailing `*` matching
    /// any rest) that hold [`Permission::Admin`].
    pub iam_admins: Vec<String>,
}

pub const DEFAULT_SCOPE_PREFIX: &str = "eventstore/";

/// A setting the functions cannot start with.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct AuthConfigError {
    pub variable: &'static str,
    pub problem: String,
}

impl AuthConfig {
    /// No authorization: every request may do everything.
    pub fn off() -> Self {
        Self {
            mode: AuthMode::Off,
            scope_prefix: DEFAULT_SCOPE_PREFIX.to_owned(),
            tenant_claim: None,
            iam_admins: Vec::new(),
        }
    }

    /// JWT scopes with the default prefix, and tenants from `tenant_claim` if given.
    pub fn jwt(tenant_claim: Option<&str>) -> Self {
        Self {
            mode: AuthMode::Jwt,
            tenant_claim: tenant_claim.map(str::to_owned),
            ..Self::off()
        }
    }

    /// IAM, with administration for the principals `admins` names.
    pub fn iam(admins: &[&str]) -> Self {
        Self {
            mode: AuthMode::Iam,
            iam_admins: admins.iter().map(|s| (*s).to_owned()).collect(),
            ..Self::off()
        }
    }

    /// The scope string that grants `permission`.
    pub fn scope(&self, permission: Permission) -> String {
        format!("{}{}", self.scope_prefix, permission.scope_name())
    }

    pub fn from_env() -> Result<Self, AuthConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// `from_env` over any lookup, so that it is tested without touching the process
    /// environment.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, AuthConfigError> {
        let set = |name: &str| {
            get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let mode = match set("AUTH_MODE").as_deref().map(str::to_ascii_lowercase) {
            None => AuthMode::Off,
            Some(m) if m == "off" => AuthMode::Off,
            Some(m) if m == "jwt" => AuthMode::Jwt,
            Some(m) if m == "iam" => AuthMode::Iam,
            Some(other) => {
                return Err(AuthConfigError {
                    variable: "AUTH_MODE",
                    problem: format!("must be off, jwt or iam, got {other:?}"),
                })
            }
        };
        let tenant_claim = set("AUTH_TENANT_CLAIM");
        if tenant_claim.is_some() && mode != AuthMode::Jwt {
            return Err(AuthConfigError {
                variable: "AUTH_TENANT_CLAIM",
                problem: "tenants come from a JWT claim; set AUTH_MODE=jwt or unset it".into(),
            });
        }
        let iam_admins: Vec<String> = set("AUTH_IAM_ADMINS")
            .map(|list| {
                list.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        // A pattern may end in `/*` (any session of one role) and have no other `*`:
        // `role/ops*` would also admit a role named `ops-readonly`.
        if let Some(bad) = iam_admins.iter().find(|p| {
            let stem = p.strip_suffix("/*").unwrap_or(p);
            !p.starts_with("arn:") || stem.contains('*')
        }) {
            return Err(AuthConfigError {
                variable: "AUTH_IAM_ADMINS",
                problem: format!(
                    "{bad:?} must be a principal ARN, or a role session ARN ending in /* (any session of that role)"
                ),
            });
        }
        let scope_prefix =
            get("AUTH_SCOPE_PREFIX").unwrap_or_else(|| DEFAULT_SCOPE_PREFIX.to_owned());
        // Without a prefix a bare `admin` scope, which another API on the same issuer may
        // grant for its own purposes, would administer the store.
        if scope_prefix.is_empty() || scope_prefix.chars().any(char::is_whitespace) {
            return Err(AuthConfigError {
                variable: "AUTH_SCOPE_PREFIX",
                problem: format!(
                    "{scope_prefix:?} must be non-empty, without spaces, such as a resource server's identifier and /"
                ),
            });
        }
        Ok(Self {
            mode,
            scope_prefix,
            tenant_claim,
            iam_admins,
        })
    }
}
