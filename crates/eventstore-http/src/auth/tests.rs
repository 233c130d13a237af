#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, RequestExt};
use serde_json::{json, Map, Value};

use super::dev::{self, DevKey};
use super::*;
use crate::{match_route, ApiError, Route};

fn request_with(claims: Value) -> Request {
    let claims: Map<String, Value> = serde_json::from_value(claims).unwrap();
    Request::new(Body::Empty).with_request_context(dev::request_context(&claims))
}

fn caller(config: &AuthConfig, claims: Value) -> Result<Caller, ApiError> {
    Caller::resolve(config, &request_with(claims))
}

fn route(method: Method, path: &str) -> Route {
    match_route(&method, path).unwrap().unwrap()
}

fn status(result: Result<(), ApiError>) -> u16 {
    match result {
        Ok(()) => 200,
        Err(e) => e.status().as_u16(),
    }
}

#[test]
fn the_environment_names_the_mode_the_prefix_the_tenant_claim_and_the_iam_admins() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    };
    assert_eq!(
        AuthConfig::from_lookup(env(&[])).unwrap(),
        AuthConfig::off()
    );
    let jwt = AuthConfig::from_lookup(env(&[
        ("AUTH_MODE", "JWT"),
        ("AUTH_TENANT_CLAIM", "custom:tenant"),
        ("AUTH_SCOPE_PREFIX", "https://api.example.com/"),
    ]))
    .unwrap();
    assert_eq!(jwt.mode, AuthMode::Jwt);
    assert_eq!(jwt.tenant_claim.as_deref(), Some("custom:tenant"));
    assert_eq!(
        jwt.scope(Permission::Append),
        "https://api.example.com/events.append"
    );
    let iam = AuthConfig::from_lookup(env(&[
        ("AUTH_MODE", "iam"),
        (
            "AUTH_IAM_ADMINS",
            " arn:aws:iam::1:role/ops , arn:aws:sts::1:assumed-role/ops/*,",
        ),
    ]))
    .unwrap();
    assert_eq!(
        iam.iam_admins,
        [
            "arn:aws:iam::1:role/ops",
            "arn:aws:sts::1:assumed-role/ops/*"
        ]
    );
    let bad = AuthConfig::from_lookup(env(&[("AUTH_MODE", "cognito")])).unwrap_err();
    assert_eq!(bad.variable, "AUTH_MODE");
    let tenants_without_jwt =
        AuthConfig::from_lookup(env(&[("AUTH_MODE", "iam"), ("AUTH_TENANT_CLAIM", "t")]))
            .unwrap_err();
    assert_eq!(tenants_without_jwt.variable, "AUTH_TENANT_CLAIM");
    for prefix in ["", "event store/"] {
        let unprefixed = AuthConfig::from_lookup(|name| {
            (name == "AUTH_SCOPE_PREFIX").then(|| prefix.to_owned())
        })
        .unwrap_err();
        assert_eq!(unprefixed.variable, "AUTH_SCOPE_PREFIX", "{prefix:?}");
    }
    for pattern in [
        "arn:aws:sts::1:assumed-role/ops*",
        "ops",
        "arn:aws:sts::1:*/x/*",
    ] {
        let err = AuthConfig::from_lookup(|name| match name {
            "AUTH_MODE" => Some("iam".to_owned()),
            "AUTH_IAM_ADMINS" => Some(pattern.to_owned()),
            _ => None,
        })
        .unwrap_err();
        assert_eq!(err.variable, "AUTH_IAM_ADMINS", "{pattern}");
    }
}

#[test]
fn a_tenant_owns_exactly_the_names_that_start_with_its_id_and_a_dot() {
    let acme = Tenant::parse("acme").unwrap();
    for own in ["acme.Account-1", "acme.Account", "acme.", "acme.x.y"] {
        assert!(acme.owns(own), "{own}");
    }
    for foreign in [
        "acme",
        "acmeX.Account-1",
        "acm.Account-1",
        "Acme.Account-1",
        "x.acme.",
    ] {
        assert!(!acme.owns(foreign), "{foreign}");
    }
    for bad in ["", "a.b", "a-b", "a b", "é", &"x".repeat(65)] {
        assert_eq!(Tenant::parse(bad), None, "{bad}");
    }
    assert!(Tenant::parse(&"x".repeat(64)).is_some());
}

#[test]
fn scopes_come_from_api_gateways_list_or_else_the_scope_or_scp_claim() {
    let config = AuthConfig::jwt(None);
    let from_scope = caller(&config, json!({"scope": "eventstore/events.read other"})).unwrap();
    assert!(from_scope.has(Permission::ReadEvents));
    assert!(!from_scope.has(Permission::Append));
    // What API Gateway makes of an `scp` array claim.
    let from_scp = caller(
        &config,
        json!({"scp": ["eventstore/events.append", "eventstore/subscriptions"]}),
    )
    .unwrap();
    assert!(from_scp.has(Permission::Append) && from_scp.has(Permission::Subscriptions));
    assert!(!from_scp.has(Permission::ReadEvents));
    // A scope without the configured prefix grants nothing.
    let unprefixed = caller(&config, json!({"scope": "events.read admin"})).unwrap();
    assert!(Permission::ALL.iter().all(|p| !unprefixed.has(*p)));
    let admin = caller(&config, json!({"scope": "eventstore/admin"})).unwrap();
    assert!(Permission::ALL.iter().all(|p| admin.has(*p)));
}

#[test]
fn each_route_family_needs_its_own_scope() {
    let config = AuthConfig::jwt(None);
    let cases = [
        (Method::GET, "/streams/Acc-1/events", Permission::ReadEvents),
        (Method::GET, "/streams/Acc-1", Permission::ReadEvents),
        (
            Method::GET,
            "/streams/Acc-1/snapshot",
            Permission::ReadEvents,
        ),
        (Method::GET, "/all/events", Permission::ReadEvents),
        (Method::GET, "/types/T/events", Permission::ReadEvents),
        (
            Method::GET,
            "/categories/Acc/events",
            Permission::ReadEvents,
        ),
        (Method::POST, "/streams/Acc-1/events", Permission::Append),
        (
            Method::PUT,
            "/streams/Acc-1/snapshot",
            Permission::WriteSnapshots,
        ),
        (Method::GET, "/projections/p", Permission::ReadProjections),
        (Method::GET, "/projections/p/k", Permission::ReadProjections),
        (Method::GET, "/subscriptions/s", Permission::Subscriptions),
        (Method::PUT, "/subscriptions/s", Permission::Subscriptions),
    ];
    for (method, path, needed) in cases {
        let r = route(method.clone(), path);
        for held in Permission::ALL {
            let c = caller(&config, json!({"scope": config.scope(held)})).unwrap();
            let expected = if held == needed || held == Permission::Admin {
                200
            } else {
                403
            };
            assert_eq!(
                status(c.authorize(&r)),
                expected,
                "{method} {path} with {held:?}"
            );
        }
    }
}

#[test]
fn a_tenant_reaches_only_its_own_names_and_a_foreign_stream_looks_missing() {
    let config = AuthConfig::jwt(Some("tenant"));
    let all = Permission::ALL
        .iter()
        .filter(|p| **p != Permission::Admin)
        .map(|p| config.scope(*p))
        .collect::<Vec<_>>()
        .join(" ");
    let acme = caller(&config, json!({"scope": all, "tenant": "acme"})).unwrap();
    assert_eq!(acme.tenant().map(Tenant::as_str), Some("acme"));
    let cases = [
        ("GET", "/streams/acme.Acc-1/events", 200, 200),
        ("GET", "/streams/globex.Acc-1/events", 404, 200),
        ("GET", "/streams/globex.Acc-1", 404, 200),
        ("GET", "/streams/globex.Acc-1/snapshot", 404, 200),
        ("POST", "/streams/globex.Acc-1/events", 403, 200),
        ("PUT", "/streams/globex.Acc-1/snapshot", 403, 200),
        ("POST", "/streams/Acc-1/events", 403, 200),
        ("GET", "/all/events", 403, 200),
        ("GET", "/categories/acme.Acc/events", 200, 200),
        ("GET", "/categories/globex.Acc/events", 403, 200),
        ("GET", "/types/acme.Deposited/events", 200, 200),
        ("GET", "/types/Deposited/events", 403, 200),
        ("GET", "/projections/account-balances", 403, 200),
        ("GET", "/projections/account-balances/acme.Acc-1", 200, 200),
        (
            "GET",
            "/projections/account-balances/globex.Acc-1",
            404,
            200,
        ),
        ("GET", "/subscriptions/acme.billing", 200, 200),
        ("GET", "/subscriptions/globex.billing", 404, 200),
        ("PUT", "/subscriptions/globex.billing", 403, 200),
    ];
    let admin = caller(
        &config,
        json!({"scope": "eventstore/admin", "tenant": "acme"}),
    )
    .unwrap();
    assert_eq!(
        admin.tenant(),
        None,
        "an administrator is bound to no tenant"
    );
    for (method, path, as_acme, as_admin) in cases {
        let r = route(method.parse().unwrap(), path);
        assert_eq!(status(acme.authorize(&r)), as_acme, "acme: {method} {path}");
        assert_eq!(
            status(admin.authorize(&r)),
            as_admin,
            "admin: {method} {path}"
        );
    }
}

#[test]
fn with_tenancy_on_a_token_needs_a_valid_tenant_claim_unless_it_is_an_administrators() {
    let config = AuthConfig::jwt(Some("tenant"));
    let read = "eventstore/events.read";
    for claims in [
        json!({"scope": read}),
        json!({"scope": read, "tenant": "ac.me"}),
        json!({"scope": read, "tenant": ""}),
    ] {
        let refused = caller(&config, claims.clone()).unwrap_err();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{claims}");
    }
    assert!(caller(&config, json!({"scope": "eventstore/admin"})).is_ok());
}

#[test]
fn force_and_foreign_event_types_are_refused_before_anything_is_written() {
    let config = AuthConfig::jwt(Some("tenant"));
    let acme = caller(
        &config,
        json!({"scope": "eventstore/events.append eventstore/subscriptions", "tenant": "acme"}),
    )
    .unwrap();
    assert_eq!(status(acme.authorize_force(false)), 200);
    assert_eq!(status(acme.authorize_force(true)), 403);
    let body = |types: &[&str]| {
        let events: Vec<Value> = types
            .iter()
            .map(|t| json!({"eventType": t, "data": 1}))
            .collect();
        crate::request::parse_append(json!({ "events": events }).to_string().as_bytes())
            .unwrap()
            .batch
    };
    assert_eq!(
        status(acme.authorize_events(&body(&["acme.A", "acme.B"]))),
        200
    );
    let refused = acme
        .authorize_events(&body(&["acme.A", "globex.B"]))
        .unwrap_err();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(
        refused.to_string().contains("events[1].eventType"),
        "{refused}"
    );
}

#[test]
fn without_the_configured_identity_the_answer_is_401_with_the_scheme_to_use() {
    let bare = Request::new(Body::Empty);
    let jwt = Caller::resolve(&AuthConfig::jwt(None), &bare).unwrap_err();
    assert_eq!(jwt.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(jwt.into_response().headers()["www-authenticate"], "Bearer");
    // A JWT context is no IAM identity.
    let iam = Caller::resolve(&AuthConfig::iam(&[]), &request_with(json!({"sub": "x"})));
    assert_eq!(iam.unwrap_err().status(), StatusCode::UNAUTHORIZED);
    assert!(Caller::resolve(&AuthConfig::off(), &bare).is_ok());
}

#[test]
fn development_tokens_verify_only_with_their_key_and_carry_scopes_and_claims() {
    let key = DevKey::new("k1");
    let token = key
        .mint(
            "alice",
            &["eventstore/events.read".into()],
            &[("tenant".into(), "acme".into())],
            Duration::from_secs(60),
        )
        .unwrap();
    let claims = key.verify(&token).unwrap();
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["tenant"], "acme");
    assert!(DevKey::new("k2").verify(&token).is_err());
    let expired = key.mint("alice", &[], &[], Duration::from_secs(0)).unwrap();
    // jsonwebtoken allows 60 s of leeway by default; an hour-old token is refused.
    let mut old = key.verify(&expired).unwrap();
    old.insert("exp".into(), (old["exp"].as_i64().unwrap() - 3600).into());
    let stale = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &old,
        &jsonwebtoken::EncodingKey::from_secret(b"k1"),
    )
    .unwrap();
    assert!(key.verify(&stale).is_err());
    let c = Caller::resolve(
        &AuthConfig::jwt(Some("tenant")),
        &Request::new(Body::Empty).with_request_context(dev::request_context(&claims)),
    )
    .unwrap();
    assert!(c.has(Permission::ReadEvents) && !c.has(Permission::Append));
    assert_eq!(c.subject(), Some("alice"));
}

#[test]
fn an_iam_caller_may_use_every_route_api_gateway_let_through_and_only_listed_principals_administer()
{
    use lambda_http::aws_lambda_events::apigw::{
        ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerIamDescription,
        ApiGatewayV2httpRequestContext,
    };
    use lambda_http::request::RequestContext;
    let request = |arn: &str| {
        let mut iam = ApiGatewayRequestAuthorizerIamDescription::default();
        iam.user_arn = Some(arn.to_owned());
        iam.account_id = Some("123456789012".into());
        let mut authorizer = ApiGatewayRequestAuthorizer::default();
        authorizer.iam = Some(iam);
        let mut ctx = ApiGatewayV2httpRequestContext::default();
        ctx.authorizer = Some(authorizer);
        Request::new(Body::Empty).with_request_context(RequestContext::ApiGatewayV2(ctx))
    };
    let config = AuthConfig::iam(&["arn:aws:sts::123456789012:assumed-role/ops/*"]);
    let app = Caller::resolve(
        &config,
        &request("arn:aws:sts::123456789012:assumed-role/app/i-1"),
    )
    .unwrap();
    assert!(Permission::ALL
        .iter()
        .all(|p| app.has(*p) == (*p != Permission::Admin)));
    assert_eq!(status(app.authorize_force(true)), 403);
    let ops = Caller::resolve(
        &config,
        &request("arn:aws:sts::123456789012:assumed-role/ops/alice"),
    )
    .unwrap();
    assert_eq!(status(ops.authorize_force(true)), 200);
    assert_eq!(
        ops.subject(),
        Some("arn:aws:sts::123456789012:assumed-role/ops/alice")
    );
}
