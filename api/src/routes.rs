//! Every route, declared once. The OpenAPI document is generated from the same registrations
//! (utoipa-actix-web), so a route cannot exist without its documentation.

use actix_files::Files;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse, fn_service};
use actix_web::{App, HttpRequest, HttpResponse, web};
use utoipa::openapi::schema::{ArrayItems, Schema};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as OpenApiDoc, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::{AppExt, UtoipaApp, scope};
use utoipa_swagger_ui::SwaggerUi;

use crate::error::ApiError;
use crate::extract;
use crate::handlers::{
    agent_protocol, agents, audit, auth, block_devices, builds, compare, compat, deployments, fleet, health,
    jobs, members, quotas, reproducibility, runs, templates, tenants, tokens, uploads, users, visualizations,
    worker_protocol, workers,
};
use crate::server::AppState;

/// The registrations. Add a handler here and it is routed and documented.
fn services<T>(app: UtoipaApp<T>) -> UtoipaApp<T>
where
    T: ServiceFactory<ServiceRequest, Config = (), Error = actix_web::Error, InitError = ()>,
{
    app.service(health::healthz).service(health::readyz).service(
        scope::scope("/api/v1")
            .service(auth::login)
            .service(auth::logout)
            .service(auth::me)
            .service(auth::change_password)
            .service(users::list_users)
            .service(users::create_user)
            .service(users::get_user)
            .service(tenants::list_tenants)
            .service(tenants::create_tenant)
            .service(tenants::get_tenant)
            .service(tenants::delete_tenant)
            .service(members::list_members)
            .service(members::add_member)
            .service(members::set_member_role)
            .service(members::remove_member)
            .service(tokens::list_my_tokens)
            .service(tokens::create_token)
            .service(tokens::revoke_token)
            .service(tokens::list_tenant_tokens)
            .service(audit::list_tenant_audit)
            .service(audit::list_audit)
            .service(jobs::list_jobs)
            .service(jobs::list_visible_jobs)
            .service(jobs::create_job)
            .service(jobs::get_job)
            .service(jobs::update_job)
            .service(jobs::delete_job)
            .service(templates::list_templates)
            .service(builds::list_builds)
            .service(builds::get_build)
            .service(builds::list_artifacts)
            .service(builds::download_artifact)
            .service(builds::get_console)
            .service(builds::get_inputs)
            .service(builds::lookup_hash)
            .service(compare::compare_builds)
            .service(reproducibility::build_reproducibility)
            .service(reproducibility::job_reproducibility)
            .service(fleet::search_fleet)
            .service(visualizations::get_dependencies)
            .service(visualizations::get_treemap)
            .service(uploads::open_upload)
            .service(uploads::get_upload)
            .service(uploads::put_artifact)
            .service(uploads::append_console)
            .service(uploads::finalize_upload)
            .service(uploads::abort_upload)
            .service(runs::run_job)
            .service(runs::cancel_build)
            .service(runs::rebuild_build)
            .service(runs::list_rebuilds)
            .service(runs::stream_console)
            .service(workers::list_workers)
            .service(workers::list_tenant_workers)
            .service(workers::create_worker)
            .service(workers::revoke_worker)
            .service(worker_protocol::hello)
            .service(worker_protocol::claim)
            .service(worker_protocol::heartbeat)
            .service(worker_protocol::append_build_console)
            .service(worker_protocol::claim_rebuild)
            .service(worker_protocol::get_verdict)
            .service(agents::create_enrollment)
            .service(agents::list_enrollments)
            .service(agents::revoke_enrollment)
            .service(agents::enroll)
            .service(agents::list_agents)
            .service(agents::revoke_agent)
            .service(agent_protocol::agent_heartbeat)
            .service(agent_protocol::assignments)
            .service(agent_protocol::agent_image)
            .service(agent_protocol::report_stats)
            .service(agent_protocol::report_state)
            .service(agent_protocol::ship_console)
            .service(agent_protocol::agent_block_content)
            .service(agent_protocol::report_block)
            .service(agent_protocol::export_block)
            .service(block_devices::list_block_devices)
            .service(block_devices::create_block_device)
            .service(block_devices::get_block_device)
            .service(block_devices::delete_block_device)
            .service(block_devices::upload_block_device)
            .service(block_devices::download_block_device)
            .service(deployments::list_deployments)
            .service(deployments::create_deployment)
            .service(deployments::get_image_manifest)
            .service(deployments::get_deployment)
            .service(deployments::destroy_deployment)
            .service(deployments::restart_deployment)
            .service(deployments::update_deployment)
            .service(deployments::rollback_deployment)
            .service(deployments::get_stats)
            .service(deployments::list_events)
            .service(deployments::get_deployment_console)
            .service(deployments::stream_deployment_console)
            .service(quotas::get_quota)
            .service(quotas::set_quota),
    )
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Petrel",
        description = "Reproducible unikernel builds and their deployment to KVM hosts, for many tenants.\n\n\
            Errors are `application/problem+json` (RFC 9457) with a stable `code`. Lists are keyset-paginated \
            with `limit` and the opaque `cursor` from the previous page's `next_cursor`.",
        license(name = "ISC", identifier = "ISC")
    ),
    // Relative to this document: every Petrel serves its own API, wherever it is deployed.
    servers((url = "/", description = "The server that serves this document")),
    components(schemas(petrel_wire::Problem, petrel_wire::FieldError)),
    tags(
        (name = "health", description = "Liveness and readiness"),
        (name = "auth", description = "Sign-in, sessions and the caller's own account"),
        (name = "users", description = "User accounts (administrators)"),
        (name = "tenants", description = "Tenants and sub-tenants"),
        (name = "members", description = "Who belongs to a tenant, with which role"),
        (name = "tokens", description = "API tokens for automation"),
        (name = "audit", description = "Who changed what, when and from where"),
        (name = "jobs", description = "What is built, for which platforms, and who may see it"),
        (name = "builds", description = "Builds, their artifacts, console, inputs; look-up by hash"),
        (name = "uploads", description = "Staged, resumable, hash-verified uploads of builds"),
        (name = "workers", description = "Registered build workers (shared or tenant-private)"),
        (name = "worker protocol", description = "What build workers call: claim, heartbeat, console, rebuild"),
        (name = "deployments", description = "Unikernels running on KVM agents, and tenant quotas"),
        (name = "block devices", description = "Tenants' block devices: created on an agent, uploaded, attached, downloaded"),
        (name = "agents", description = "KVM hosts' agents: enrollment, inventory, health"),
        (name = "agent protocol", description = "What KVM agents call: enroll, heartbeat, assignments, state, console"),
    )
)]
struct ApiDoc;

/// The OpenAPI document, as served at `/api/v1/openapi.json` and checked in at
/// `openapi/openapi.json`.
pub fn openapi() -> OpenApiDoc {
    let (_, mut doc) = services(App::new().into_utoipa_app().openapi(ApiDoc::openapi())).split_for_parts();
    SecuritySchemes.modify(&mut doc);
    StandardErrors.modify(&mut doc);
    GenericArgumentReferences.modify(&mut doc);
    doc
}

pub fn openapi_json() -> String {
    let mut json = openapi().to_pretty_json().expect("the OpenAPI document serialises");
    json.push('\n');
    json
}

/// The application: API routes, docs, the SPA, and the problem+json fallbacks.
pub fn app<T>(app: App<T>, state: web::Data<AppState>, doc: web::Data<OpenApiDoc>) -> App<T>
where
    T: ServiceFactory<ServiceRequest, Config = (), Error = actix_web::Error, InitError = ()>,
{
    let frontend_dir = state.config.frontend_dir.clone();
    // The docs come first: the `/api/v1` scope would otherwise claim their paths.
    let app = app
        .app_data(state)
        .app_data(web::PathConfig::default().error_handler(extract::path_error))
        .service(SwaggerUi::new("/api/v1/docs/{_:.*}").url("/api/v1/openapi.json", doc.get_ref().clone()));
    let (app, _) = services(app.into_utoipa_app()).split_for_parts();
    // builder-web's URLs for existing clients (not JSON, so not in the OpenAPI document).
    let app = app.configure(compat::configure);
    // Paths under a scope that match nothing in it end here, not as empty 404s.
    let app = app.default_service(web::to(not_found));
    match frontend_dir {
        Some(dir) => {
            let index = dir.join("index.html");
            app.service(Files::new("/", dir).index_file("index.html").default_handler(fn_service(
                move |req: ServiceRequest| {
                    let index = index.clone();
                    async move {
                        let (req, _) = req.into_parts();
                        let res = spa_fallback(&req, &index).await;
                        Ok(ServiceResponse::new(req, res))
                    }
                },
            )))
        }
        None => app,
    }
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("route"))
}

/// Client-side routes of the SPA get its `index.html`; unknown API paths stay 404 problems.
async fn spa_fallback(req: &HttpRequest, index: &std::path::Path) -> HttpResponse {
    use actix_web::ResponseError;
    if req.path().starts_with("/api/") || req.path().starts_with("/job/") {
        return ApiError::NotFound("route").error_response();
    }
    match actix_files::NamedFile::open_async(index).await {
        Ok(file) => file.use_etag(true).into_response(req).map_into_boxed_body(),
        Err(_) => ApiError::NotFound("route").error_response(),
    }
}

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut OpenApiDoc) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("petrel_...")
                    .description(Some("An API token created with POST /api/v1/tokens."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "worker",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("petrelw_...")
                    .description(Some("A worker credential from POST /api/v1/workers."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "agent",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("petrela_...")
                    .description(Some("An agent credential from POST /api/v1/agents/enroll."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                petrel_wire::SESSION_COOKIE,
                "The browser session from POST /api/v1/auth/login. State-changing requests must \
                 also send the session's CSRF token (GET /api/v1/me) in the X-CSRF-Token header.",
            ))),
        );
    }
}

/// Adds the error answers every operation can give, so each documents its errors.
struct StandardErrors;

impl StandardErrors {
    const RESPONSES: [(&'static str, &'static str, &'static str); 8] = [
        ("400", "BadRequest", "The request is invalid; `errors` names the fields."),
        ("401", "Unauthorized", "No valid session or API token."),
        ("403", "Forbidden", "Authenticated, but the role is insufficient (or the CSRF token is missing)."),
        ("404", "NotFound", "No such object for this caller (other tenants' objects included)."),
        ("413", "PayloadTooLarge", "The body is larger than allowed."),
        ("415", "UnsupportedMediaType", "The body is not JSON."),
        ("500", "InternalError", "An internal error; it has been logged."),
        ("503", "Unavailable", "The database is unavailable."),
    ];
}

impl Modify for StandardErrors {
    fn modify(&self, doc: &mut OpenApiDoc) {
        let components = doc.components.get_or_insert_with(Default::default);
        for (_, name, description) in Self::RESPONSES {
            components.responses.insert(
                name.to_string(),
                RefOr::T(
                    ResponseBuilder::new()
                        .description(description)
                        .content(
                            petrel_wire::PROBLEM_JSON,
                            ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build(),
                        )
                        .build(),
                ),
            );
        }
        for item in doc.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
                &mut item.head,
            ];
            for op in operations.into_iter().flatten() {
                let secured =
                    op.security.as_ref().is_some_and(|reqs| reqs.iter().any(|r| *r != Default::default()));
                let has_path_params = op.parameters.as_ref().is_some_and(|ps| {
                    ps.iter().any(|p| p.parameter_in == utoipa::openapi::path::ParameterIn::Path)
                });
                let has_input =
                    op.request_body.is_some() || op.parameters.as_ref().is_some_and(|p| !p.is_empty());
                let has_body = op.request_body.is_some();
                for (status, name, _) in Self::RESPONSES {
                    let wanted = match status {
                        "400" => has_input,
                        "401" | "403" => secured,
                        // Bodies name objects too (a parent tenant, a job).
                        "404" => has_path_params || has_body,
                        "413" | "415" => has_body,
                        _ => true,
                    };
                    if wanted {
                        op.responses
                            .responses
                            .entry(status.to_string())
                            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
                    }
                }
            }
        }
    }
}

/// Refers to a generic type's argument instead of repeating it: utoipa inlines `T` into each
/// `Page_T` (juhaku/utoipa#1586), so clients would get one copy of every listed type per list, and
/// types that only appear in lists would be unused components.
struct GenericArgumentReferences;

impl GenericArgumentReferences {
    /// Replaces `schema`, or whatever inside its properties and array items, that equals
    /// `argument` with a reference to it.
    fn refer(schema: &mut RefOr<Schema>, name: &str, argument: &RefOr<Schema>) {
        if schema == argument {
            *schema = RefOr::Ref(Ref::from_schema_name(name));
            return;
        }
        match schema {
            RefOr::T(Schema::Object(object)) => {
                for property in object.properties.values_mut() {
                    Self::refer(property, name, argument);
                }
            }
            RefOr::T(Schema::Array(array)) => {
                if let ArrayItems::RefOrSchema(items) = &mut array.items {
                    Self::refer(items, name, argument);
                }
            }
            _ => {}
        }
    }
}

impl Modify for GenericArgumentReferences {
    fn modify(&self, doc: &mut OpenApiDoc) {
        let Some(components) = doc.components.as_mut() else { return };
        let names: Vec<String> = components.schemas.keys().cloned().collect();
        for generic in &names {
            // utoipa names `Page<Build>` `Page_Build`.
            let Some((_, argument_name)) = generic.split_once('_') else { continue };
            let Some(argument) = components.schemas.get(argument_name).cloned() else { continue };
            if let Some(schema) = components.schemas.get_mut(generic) {
                Self::refer(schema, argument_name, &argument);
            }
        }
    }
}
