//! Who is calling, resolved from API Gateway's request context, and what they may do.

use eventstore_core::{AppendBatch, StoreError};
use lambda_http::aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizerIamDescription, ApiGatewayRequestAuthorizerJwtDescription,
};
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

use super::{AuthConfig, AuthMode, Permission, Tenant};
use crate::{ApiError, Route};

/// An authenticated caller: its permissions, and the tenant it is confined to (`None` when
/// tenancy is off, or for an administrator, who reaches every tenant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    permissions: Permissions,
    tenant: Option<Tenant>,
    /// For the request log: the token's `sub`, or the IAM principal.
    subject: Option<String>,
    /// The scope prefix, to name a missing scope in a refusal.
    scope_prefix: String,
    mode: AuthMode,
}

impl Caller {
    /// Everyone, with every right (authorization off).
    pub fn unrestricted() -> Self {
        Self {
            permissions: Permission::ALL.into_iter().collect(),
            tenant: None,
            subject: None,
            scope_prefix: String::new(),
            mode: AuthMode::Off,
        }
    }

    /// Resolves the caller of `request` under `config`. 401 when the request carries no
    /// identity of the configured kind (the function was wired to a route without the
    /// authorizer), 403 when a tenant claim is required and missing or malformed.
    pub fn resolve(config: &AuthConfig, request: &Request) -> Result<Caller, ApiError> {
        let authorizer = match request.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(ctx)) => ctx.authorizer.as_ref(),
            _ => None,
        };
        match config.mode {
            AuthMode::Off => Ok(Caller::unrestricted()),
            AuthMode::Jwt => match authorizer.and_then(|a| a.jwt.as_ref()) {
                Some(jwt) => Caller::from_jwt(config, jwt),
                None => Err(ApiError::Unauthorized {
                    scheme: "Bearer",
                    message: "the request carries no validated token".into(),
                }),
            },
            AuthMode::Iam => match authorizer.and_then(|a| a.iam.as_ref()) {
                Some(iam) if iam.user_arn.is_some() || iam.caller_id.is_some() => {
                    Ok(Caller::from_iam(config, iam))
                }
                _ => Err(ApiError::Unauthorized {
                    scheme: "AWS4-HMAC-SHA256",
                    message: "the request carries no IAM identity".into(),
                }),
            },
        }
    }

    fn from_jwt(
        config: &AuthConfig,
        jwt: &ApiGatewayRequestAuthorizerJwtDescription,
    ) -> Result<Caller, ApiError> {
        let permissions: Permissions = token_scopes(jwt)
            .iter()
            .filter_map(|scope| scope.strip_prefix(config.scope_prefix.as_str()))
            .filter_map(Permission::from_scope_name)
            .collect();
        let admin = permissions.contains(Permission::Admin);
        let tenant = match &config.tenant_claim {
            // An administrator reaches every tenant, whatever its token says.
            Some(_) if admin => None,
            None => None,
            Some(claim) => match jwt.claims.get(claim) {
                Some(value) => Some(Tenant::parse(value).ok_or_else(|| {
                    ApiError::Forbidden(format!(
                        "the token's tenant claim '{claim}' is {value:?}, not a tenant id (1 to 64 characters of [A-Za-z0-9_])"
                    ))
                })?),
                None => {
                    return Err(ApiError::Forbidden(format!(
                        "the token carries no tenant claim '{claim}'; only an administrator's token may omit it"
                    )))
                }
            },
        };
        Ok(Caller {
            permissions,
            tenant,
            subject: jwt.claims.get("sub").cloned(),
            scope_prefix: config.scope_prefix.clone(),
            mode: AuthMode::Jwt,
        })
    }

    fn from_iam(config: &AuthConfig, iam: &ApiGatewayRequestAuthorizerIamDescription) -> Caller {
        // API Gateway already allowed this principal this route (execute-api:Invoke on the
        // route's ARN): every route family is open to it, administration only if listed.
        let principal = iam.user_arn.clone().or_else(|| iam.caller_id.clone());
        let admin = principal.as_deref().is_some_and(|p| {
            config
                .iam_admins
                .iter()
                .any(|pattern| match pattern.strip_suffix('*') {
                    // `.../role/ops/*`: any session of role `ops` (the stem ends in `/`).
                    Some(stem) => p.starts_with(stem),
                    None => p == pattern,
                })
        });
        Caller {
            permissions: Permission::ALL
                .into_iter()
                .filter(|p| admin || *p != Permission::Admin)
                .collect(),
            tenant: None,
            subject: principal,
            scope_prefix: config.scope_prefix.clone(),
            mode: AuthMode::Iam,
        }
    }

    pub fn tenant(&self) -> Option<&Tenant> {
        self.tenant.as_ref()
    }

    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    pub fn has(&self, permission: Permission) -> bool {
        self.permissions.contains(Permission::Admin) || self.permissions.contains(permission)
    }

    fn require(&self, permission: Permission) -> Result<(), ApiError> {
        if self.has(permission) {
            return Ok(());
        }
        Err(ApiError::Forbidden(match self.mode {
            AuthMode::Iam => "only the principals in AUTH_IAM_ADMINS may do this".to_owned(),
            _ => format!(
                "this needs the scope '{}{}'",
                self.scope_prefix,
                permission.scope_name()
            ),
        }))
    }

    /// Whether the route is allowed, before its body is parsed or anything is read. A
    /// tenant reading another tenant's stream, snapshot, row or subscription gets exactly
    /// the answer a missing one gets, so that it learns nothing about it.
    pub fn authorize(&self, route: &Route) -> Result<(), ApiError> {
        use Foreign::{Forbidden, LooksMissing};
        let (permission, reach) = match route {
            Route::ReadStream(s) | Route::StreamInfo(s) | Route::GetSnapshot(s) => (
                Permission::ReadEvents,
                Reach::Owned(s.as_str(), LooksMissing),
            ),
            Route::Append(s) => (Permission::Append, Reach::Owned(s.as_str(), Forbidden)),
            Route::PutSnapshot(s) => (
                Permission::WriteSnapshots,
                Reach::Owned(s.as_str(), Forbidden),
            ),
            Route::ReadAll => (Permission::ReadEvents, Reach::EveryTenant),
            Route::ReadType(t) => (Permission::ReadEvents, Reach::Owned(t.as_str(), Forbidden)),
            Route::ReadCategory(c) => (Permission::ReadEvents, Reach::Owned(c.as_str(), Forbidden)),
            // Store-wide figures (head, lag, parked) would show a tenant the others' volume.
            Route::ProjectionStatus(_) => (Permission::ReadProjections, Reach::EveryTenant),
            Route::ProjectionRow(_, key) => {
                (Permission::ReadProjections, Reach::Owned(key, LooksMissing))
            }
            Route::GetSubscription(name) => {
                (Permission::Subscriptions, Reach::Owned(name, LooksMissing))
            }
            Route::PutSubscription(name) => {
                (Permission::Subscriptions, Reach::Owned(name, Forbidden))
            }
        };
        self.require(permission)?;
        let Some(tenant) = &self.tenant else {
            return Ok(());
        };
        // The refusals are built only when there is one: this runs on every request.
        match reach {
            Reach::Owned(name, _) if tenant.owns(name) => Ok(()),
            Reach::Owned(_, Forbidden) => Err(self.foreign()),
            Reach::Owned(_, LooksMissing) => Err(missing(route).unwrap_or_else(|| self.foreign())),
            Reach::EveryTenant => self.require(Permission::Admin),
        }
    }

    /// A tenant appends only events whose types are its own: a type read by one tenant
    /// must never return another tenant's events.
    pub fn authorize_events(&self, batch: &AppendBatch) -> Result<(), ApiError> {
        let Some(tenant) = &self.tenant else {
            return Ok(());
        };
        match batch
            .events()
            .iter()
            .position(|e| !tenant.owns(e.event_type.as_str()))
        {
            None => Ok(()),
            Some(i) => Err(ApiError::Forbidden(format!(
                "events[{i}].eventType must start with '{tenant}.', this tenant's prefix"
            ))),
        }
    }

    /// Moving a checkpoint backwards is an administrator's repair, not a consumer's.
    pub fn authorize_force(&self, force: bool) -> Result<(), ApiError> {
        if force {
            self.require(Permission::Admin)
        } else {
            Ok(())
        }
    }

    fn foreign(&self) -> ApiError {
        let tenant = self.tenant.as_ref().map_or("", Tenant::as_str);
        ApiError::Forbidden(format!(
            "this tenant's names start with '{tenant}.'; other tenants' need the scope '{}{}'",
            self.scope_prefix,
            Permission::Admin.scope_name()
        ))
    }
}

/// A set of permissions, a bit each: resolving a caller allocates nothing for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Permissions(u8);

impl Permissions {
    fn contains(self, permission: Permission) -> bool {
        self.0 & (1 << permission as u8) != 0
    }
}

impl FromIterator<Permission> for Permissions {
    fn from_iter<I: IntoIterator<Item = Permission>>(permissions: I) -> Self {
        Self(
            permissions
                .into_iter()
                .fold(0, |bits, p| bits | (1 << p as u8)),
        )
    }
}

/// What a route reaches, for the tenant check.
enum Reach<'a> {
    /// Every tenant's events or figures at once (`$all`, a projection's status).
    EveryTenant,
    /// A name that belongs to one tenant, and how a foreign one is refused.
    Owned(&'a str, Foreign),
}

/// How a request for another tenant's name is refused.
enum Foreign {
    /// 403: the refusal depends on the name alone and reveals nothing.
    Forbidden,
    /// The answer a missing one gets, so that its existence does not leak.
    LooksMissing,
}

/// What the route answers when the stream, snapshot, row or subscription it names is
/// missing.
fn missing(route: &Route) -> Option<ApiError> {
    Some(match route {
        Route::ReadStream(s) | Route::StreamInfo(s) => {
            ApiError::Store(StoreError::StreamNotFound(s.to_string()))
        }
        Route::GetSnapshot(s) => ApiError::NoSnapshot(s.to_string()),
        Route::ProjectionRow(name, key) => {
            ApiError::NotFound(format!("projection {name} has no row {key}"))
        }
        Route::GetSubscription(name) => ApiError::NotFound(format!("no subscription {name}")),
        _ => return None,
    })
}

/// The token's scopes: API Gateway's list when it gives one, else the `scope` claim (space
/// separated, OAuth 2.0) or `scp` (which API Gateway flattens from a JSON array to `[a b]`).
fn token_scopes(jwt: &ApiGatewayRequestAuthorizerJwtDescription) -> Vec<String> {
    if let Some(scopes) = jwt.scopes.as_ref().filter(|s| !s.is_empty()) {
        return scopes.clone();
    }
    let words =
        |text: &str| -> Vec<String> { text.split_whitespace().map(str::to_owned).collect() };
    if let Some(scope) = jwt.claims.get("scope") {
        return words(scope);
    }
    jwt.claims
        .get("scp")
        .map(|scp| {
            let inner = scp
                .strip_prefix('[')
                .and_then(|s| s.strip_suffix(']'))
                .unwrap_or(scp);
            words(inner)
        })
        .unwrap_or_default()
}
