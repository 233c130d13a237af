//! Authorization, route by route, through the Lambda entry point with real API Gateway v2
//! events (tests/fixtures/apigw/authz-*.json, from `sam local generate-event`), edited to
//! each route and caller. For every route: the right caller succeeds, every other caller
//! gets 403 (or 404 where a tenant must not learn that another tenant's name exists), a
//! request without an identity gets 401, and nothing a refused request asked for is written.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use eventstore_dynamodb::{DynamoEventLog, DynamoProjectionStore};
use eventstore_http::{match_route, App, AuthConfig, Mount};
use eventstore_tests::http::{answer, app, Answer};
use eventstore_tests::TestStore;
use lambda_http::http::Method;
use lambda_http::request::LambdaRequest;
use serde_json::{json, Value};

const TENANT_CLAIM: &str = "custom:tenant";

fn fixture(name: &str) -> Value {
    let path = format!("{}/fixtures/apigw/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Who calls: the authorizer block API Gateway would put into the request context.
#[derive(Clone)]
enum Who {
    /// A JWT with these scopes (without the `eventstore/` prefix) and tenant claim.
    Jwt(Vec<&'static str>, Option<&'static str>),
    /// A SigV4-signed caller with this role session ARN.
    Iam(&'static str),
    /// No authorizer at all (a route wired without one).
    Nobody,
}

impl Who {
    fn authorizer(&self) -> Option<Value> {
        match self {
            Who::Jwt(scopes, tenant) => {
                let mut authorizer = fixture("authz-jwt")["requestContext"]["authorizer"].clone();
                let scopes: Vec<String> =
                    scopes.iter().map(|s| format!("eventstore/{s}")).collect();
                let claims = &mut authorizer["jwt"]["claims"];
                claims["scope"] = json!(scopes.join(" "));
                match tenant {
                    Some(t) => claims[TENANT_CLAIM] = json!(t),
                    None => {
                        claims.as_object_mut().unwrap().remove(TENANT_CLAIM);
                    }
                }
                authorizer["jwt"]["scopes"] = json!(scopes);
                Some(authorizer)
            }
            Who::Iam(arn) => {
                let mut authorizer = fixture("authz-iam")["requestContext"]["authorizer"].clone();
                authorizer["iam"]["userArn"] = json!(arn);
                Some(authorizer)
            }
            Who::Nobody => None,
        }
    }
}

/// The fixture, edited to `method path` with `body`, called by `who`.
fn event(who: &Who, method: &str, path: &str, body: Option<&Value>) -> lambda_http::Request {
    let base = if matches!(who, Who::Iam(_)) {
        "authz-iam"
    } else {
        "authz-jwt"
    };
    let mut e = fixture(base);
    let route = match_route(&method.parse::<Method>().unwrap(), path)
        .unwrap()
        .unwrap();
    e["routeKey"] = json!(route.name());
    e["rawPath"] = json!(path);
    e.as_object_mut().unwrap().remove("pathParameters");
    let ctx = &mut e["requestContext"];
    ctx["routeKey"] = json!(route.name());
    ctx["http"]["method"] = json!(method);
    ctx["http"]["path"] = json!(path);
    match who.authorizer() {
        Some(a) => ctx["authorizer"] = a,
        None => {
            ctx.as_object_mut().unwrap().remove("authorizer");
        }
    }
    if let Some(body) = body {
        e["body"] = json!(body.to_string());
        e["isBase64Encoded"] = json!(false);
    }
    let event: LambdaRequest = serde_json::from_value(e).unwrap();
    assert!(matches!(event, LambdaRequest::ApiGatewayV2(_)));
    event.into()
}

type Api = App<DynamoEventLog, DynamoProjectionStore>;

async fn call(api: &Api, who: &Who, method: &str, path: &str, body: Option<&Value>) -> Answer {
    answer(
        api.handle_lambda(event(who, method, path, body))
            .await
            .unwrap(),
    )
}

/// Two tenants' streams, snapshots, category rows and subscriptions, written without
/// authorization, and an API over them that enforces `auth`.
async fn seeded(t: &TestStore, auth: AuthConfig) -> Api {
    let projector = t.projector(eventstore_app::registry().projections).await;
    let open = app(t, Mount::All).with_projector(projector.clone());
    for tenant in ["acme", "globex"] {
        let stream = format!("{tenant}.Account-1");
        for (method, path, body) in [
            (
                "POST",
                format!("/streams/{stream}/events"),
                json!({"events": [{"eventType": format!("{tenant}.Opened"), "data": {"balance": 10}}]}),
            ),
            (
                "PUT",
                format!("/streams/{stream}/snapshot"),
                json!({"version": 1, "schemaVersion": 1, "state": {"balance": 10}}),
            ),
            (
                "PUT",
                format!("/subscriptions/{tenant}.billing"),
                json!({"position": 1}),
            ),
        ] {
            let a = call(&open, &Who::Nobody, method, &path, Some(&body)).await;
            assert!(a.status < 300, "{method} {path}: {}", a.text);
        }
    }
    t.sequence_all().await;
    for p in projector.projections() {
        projector.catch_up(p.as_ref(), None).await.unwrap();
    }
    open.with_authorization(auth)
}

/// What a route is for: the scope it needs and what the right caller gets.
struct Case {
    method: &'static str,
    /// On acme's names.
    path: &'static str,
    body: Option<Value>,
    scope: &'static str,
    ok: u16,
    /// What globex's token with every non-admin scope gets on acme's name.
    as_globex: u16,
}

fn cases() -> Vec<Case> {
    let case = |method, path, body, scope, ok, as_globex| Case {
        method,
        path,
        body,
        scope,
        ok,
        as_globex,
    };
    vec![
        case(
            "GET",
            "/streams/acme.Account-1/events",
            None,
            "events.read",
            200,
            404,
        ),
        case(
            "GET",
            "/streams/acme.Account-1",
            None,
            "events.read",
            200,
            404,
        ),
        case(
            "GET",
            "/streams/acme.Account-1/snapshot",
            None,
            "events.read",
            200,
            404,
        ),
        case(
            "GET",
            "/types/acme.Opened/events",
            None,
            "events.read",
            200,
            403,
        ),
        case(
            "GET",
            "/categories/acme.Account/events",
            None,
            "events.read",
            200,
            403,
        ),
        case(
            "POST",
            "/streams/acme.Account-1/events",
            Some(
                json!({"events": [{"eventId": "0190c1f4-5f6e-7a3b-9c1d-000000000001",
                                    "eventType": "acme.Deposited", "data": {"amount": 5}}]}),
            ),
            "events.append",
            201,
            403,
        ),
        case(
            "PUT",
            "/streams/acme.Account-1/snapshot",
            Some(json!({"version": 1, "schemaVersion": 2, "state": {"balance": 1000000000}})),
            "snapshots.write",
            200,
            403,
        ),
        case(
            "GET",
            "/projections/category-streams/acme.Account",
            None,
            "projections.read",
            200,
            404,
        ),
        case(
            "GET",
            "/subscriptions/acme.billing",
            None,
            "subscriptions",
            200,
            404,
        ),
        case(
            "PUT",
            "/subscriptions/acme.billing",
            Some(json!({"position": 2})),
            "subscriptions",
            200,
            403,
        ),
    ]
}

const NON_ADMIN: [&str; 5] = [
    "events.read",
    "events.append",
    "projections.read",
    "snapshots.write",
    "subscriptions",
];

/// Everything a refused request could have changed: acme's events, snapshot and
/// subscription, as an administrator reads them.
async fn acme_state(api: &Api) -> Vec<Value> {
    let admin = Who::Jwt(vec!["admin"], None);
    let mut state = Vec::new();
    for path in [
        "/streams/acme.Account-1/events",
        "/streams/acme.Account-1/snapshot",
        "/subscriptions/acme.billing",
        "/streams/globex.Account-1/events",
    ] {
        let a = call(api, &admin, "GET", path, None).await;
        state.push(json!([a.status, a.json]));
    }
    state
}

#[tokio::test]
async fn every_route_admits_only_its_scope_and_its_tenant_and_refusals_write_nothing() {
    let t = TestStore::new().await;
    let api = seeded(&t, AuthConfig::jwt(Some(TENANT_CLAIM))).await;
    let before = acme_state(&api).await;
    let items_before = t.item_count().await;

    for c in cases() {
        let (m, p, b) = (c.method, c.path, c.body.as_ref());
        for scope in NON_ADMIN.iter().filter(|s| **s != c.scope) {
            let a = call(&api, &Who::Jwt(vec![*scope], Some("acme")), m, p, b).await;
            assert_eq!(a.status, 403, "{m} {p} with only {scope}: {}", a.text);
            assert_eq!(a.json["error"]["code"], "Forbidden");
        }
        let globex = call(&api, &Who::Jwt(NON_ADMIN.to_vec(), Some("globex")), m, p, b).await;
        assert_eq!(
            globex.status, c.as_globex,
            "{m} {p} as globex: {}",
            globex.text
        );
        let untenanted = call(&api, &Who::Jwt(NON_ADMIN.to_vec(), None), m, p, b).await;
        assert_eq!(untenanted.status, 403, "{m} {p} without a tenant claim");
        let nobody = call(&api, &Who::Nobody, m, p, b).await;
        assert_eq!(nobody.status, 401, "{m} {p} without an identity");
        assert_eq!(nobody.headers["www-authenticate"], "Bearer");
    }
    // $all and a projection's store-wide figures reach every tenant: not even every
    // non-admin scope will do.
    for path in ["/all/events", "/projections/category-streams"] {
        let who = Who::Jwt(NON_ADMIN.to_vec(), Some("acme"));
        let a = call(&api, &who, "GET", path, None).await;
        assert_eq!(a.status, 403, "{path}: {}", a.text);
    }
    // A tenant appends only its own event types, even to its own stream.
    let foreign_type = json!({"events": [{"eventType": "globex.Opened", "data": 1}]});
    let a = call(
        &api,
        &Who::Jwt(vec!["events.append"], Some("acme")),
        "POST",
        "/streams/acme.Account-1/events",
        Some(&foreign_type),
    )
    .await;
    assert_eq!(a.status, 403, "{}", a.text);
    // Moving a checkpoint back is an administrator's.
    let force = json!({"position": 0, "force": true});
    let a = call(
        &api,
        &Who::Jwt(NON_ADMIN.to_vec(), Some("acme")),
        "PUT",
        "/subscriptions/acme.billing",
        Some(&force),
    )
    .await;
    assert_eq!(a.status, 403, "{}", a.text);

    assert_eq!(
        acme_state(&api).await,
        before,
        "a refused request changed something"
    );
    assert_eq!(t.item_count().await, items_before);

    // Now the right callers: the tenant with the route's scope, then an administrator.
    for c in cases() {
        let (m, p, b) = (c.method, c.path, c.body.as_ref());
        let a = call(&api, &Who::Jwt(vec![c.scope], Some("acme")), m, p, b).await;
        assert_eq!(a.status, c.ok, "{m} {p} with {}: {}", c.scope, a.text);
        let admin = call(&api, &Who::Jwt(vec!["admin"], None), m, p, b).await;
        assert!(admin.status < 300, "{m} {p} as admin: {}", admin.text);
    }
    let admin = Who::Jwt(vec!["admin"], None);
    let status = call(&api, &admin, "GET", "/projections/category-streams", None).await;
    assert_eq!(status.status, 200, "{}", status.text);
    let all = call(
        &api,
        &Who::Jwt(vec!["admin"], Some("acme")),
        "GET",
        "/all/events",
        None,
    )
    .await;
    assert_eq!(all.status, 200);
    // The two tenants' first events (the appends above are not sequenced yet).
    assert_eq!(all.json["events"].as_array().unwrap().len(), 2);
    let a = call(
        &api,
        &Who::Jwt(vec!["admin"], None),
        "PUT",
        "/subscriptions/acme.billing",
        Some(&force),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
}

#[tokio::test]
async fn another_tenants_stream_answers_exactly_as_a_missing_one() {
    let t = TestStore::new().await;
    let api = seeded(&t, AuthConfig::jwt(Some(TENANT_CLAIM))).await;
    // The same names in a store where they do not exist, read by their own tenant: what
    // the store itself answers for a missing stream, snapshot, row and subscription.
    let empty = TestStore::new().await;
    let projector = empty
        .projector(eventstore_app::registry().projections)
        .await;
    let nothing = app(&empty, Mount::All)
        .with_projector(projector)
        .with_authorization(AuthConfig::jwt(Some(TENANT_CLAIM)));
    let acme = Who::Jwt(NON_ADMIN.to_vec(), Some("acme"));
    let globex = Who::Jwt(NON_ADMIN.to_vec(), Some("globex"));
    for path in [
        "/streams/globex.Account-1/events",
        "/streams/globex.Account-1",
        "/streams/globex.Account-1/snapshot",
        "/projections/category-streams/globex.Account",
        "/subscriptions/globex.billing",
    ] {
        let exists = call(&api, &globex, "GET", path, None).await;
        assert_eq!(exists.status, 200, "{path} exists for globex");
        let hidden = call(&api, &acme, "GET", path, None).await;
        let missing = call(&nothing, &globex, "GET", path, None).await;
        assert_eq!(missing.status, 404, "{path}");
        assert_eq!(
            (hidden.status, hidden.text),
            (missing.status, missing.text),
            "{path}: acme must see what a missing one looks like"
        );
    }
}

#[tokio::test]
async fn iam_callers_reach_every_route_api_gateway_admitted_and_only_listed_ones_force() {
    let t = TestStore::new().await;
    let api = seeded(
        &t,
        AuthConfig::iam(&["arn:aws:sts::123456789012:assumed-role/ops/*"]),
    )
    .await;
    let app_role = Who::Iam("arn:aws:sts::123456789012:assumed-role/app/app-session");
    let ops = Who::Iam("arn:aws:sts::123456789012:assumed-role/ops/alice");
    for c in cases() {
        let a = call(&api, &app_role, c.method, c.path, c.body.as_ref()).await;
        assert_eq!(a.status, c.ok, "{} {}: {}", c.method, c.path, a.text);
    }
    let force = json!({"position": 0, "force": true});
    let refused = call(
        &api,
        &app_role,
        "PUT",
        "/subscriptions/acme.billing",
        Some(&force),
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    let a = call(&api, &app_role, "GET", "/subscriptions/acme.billing", None).await;
    assert_eq!(a.json["position"], 2, "the refused force changed nothing");
    let done = call(
        &api,
        &ops,
        "PUT",
        "/subscriptions/acme.billing",
        Some(&force),
    )
    .await;
    assert_eq!(done.status, 200, "{}", done.text);
    // A JWT context is no SigV4 identity.
    let jwt = call(
        &api,
        &Who::Jwt(vec!["admin"], None),
        "GET",
        "/all/events",
        None,
    )
    .await;
    assert_eq!(jwt.status, 401);
    assert_eq!(jwt.headers["www-authenticate"], "AWS4-HMAC-SHA256");
}
