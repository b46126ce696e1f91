//! A small HTTPS client for the tests: pins the server's CA, keeps cookies, sends the CSRF
//! token after sign-in, and returns status, headers and JSON together.

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use uuid::Uuid;

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    ca_pem: Vec<u8>,
    pub csrf: Option<String>,
    pub bearer: Option<String>,
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub content_type: String,
    pub body: Value,
    pub text: String,
}

impl Resp {
    /// Asserts the status, printing the body when it differs.
    #[track_caller]
    pub fn expect(self, status: u16) -> Resp {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.text);
        self
    }

    /// Asserts an `application/problem+json` answer with this status and code.
    #[track_caller]
    pub fn expect_problem(self, status: u16, code: &str) -> Resp {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.text);
        assert_eq!(self.content_type, "application/problem+json", "body: {}", self.text);
        assert_eq!(self.body["code"], code, "body: {}", self.text);
        assert_eq!(self.body["status"], status, "body: {}", self.text);
        assert!(self.body["detail"].as_str().is_some_and(|d| !d.is_empty()), "body: {}", self.text);
        self
    }

    pub fn id(&self) -> Uuid {
        self.body["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no id in {}", self.text))
    }
}

fn http_client(ca_pem: &[u8], cookies: bool) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .cookie_store(cookies)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(60));
    if !ca_pem.is_empty() {
        builder = builder.add_root_certificate(reqwest::Certificate::from_pem(ca_pem).expect("CA PEM"));
    }
    builder.build().expect("http client")
}

impl Client {
    pub fn new(base: &str, ca_pem: &[u8]) -> Client {
        Client {
            http: http_client(ca_pem, true),
            base: base.trim_end_matches('/').to_string(),
            ca_pem: ca_pem.to_vec(),
            csrf: None,
            bearer: None,
        }
    }

    /// A fresh client (no cookies) that authenticates with `token`.
    pub fn with_token(&self, token: &str) -> Client {
        Client {
            http: http_client(&self.ca_pem, false),
            base: self.base.clone(),
            ca_pem: self.ca_pem.clone(),
            csrf: None,
            bearer: Some(token.to_string()),
        }
    }

    /// A fresh anonymous client.
    pub fn anonymous(&self) -> Client {
        Client::new(&self.base, &self.ca_pem)
    }

    pub async fn login(&mut self, username: &str, password: &str) -> Result<Resp, Resp> {
        let r = self
            .send(
                Method::POST,
                "/api/v1/auth/login",
                Some(json!({"username": username, "password": password})),
            )
            .await;
        if r.status == 200 {
            self.csrf = r.body["csrf_token"].as_str().map(str::to_string);
            Ok(r)
        } else {
            Err(r)
        }
    }

    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(token) = &self.bearer {
            req = req.bearer_auth(token);
        }
        if let Some(csrf) = &self.csrf {
            req = req.header("x-csrf-token", csrf);
        }
        req
    }

    pub async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        let mut req = self.request(method, path);
        if let Some(body) = body {
            req = req.json(&body);
        }
        Self::read(req.send().await.expect("request sent")).await
    }

    pub async fn read(res: reqwest::Response) -> Resp {
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let content_type = headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let text = res.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp { status, headers, content_type, body, text }
    }

    /// PUTs raw bytes as an artifact of an upload, with their SHA-256.
    pub async fn put_artifact(&self, upload: Uuid, path: &str, data: &[u8]) -> Resp {
        use sha2::Digest;
        let sha = hex::encode(sha2::Sha256::digest(data));
        let req = self
            .request(Method::PUT, &format!("/api/v1/uploads/{upload}/artifacts/{path}"))
            .header("x-petrel-sha256", sha)
            .header("content-type", "application/octet-stream")
            .body(data.to_vec());
        Self::read(req.send().await.expect("request sent")).await
    }

    /// The raw body of a GET, whatever its status (for files and images).
    pub async fn get_bytes(&self, path: &str) -> Vec<u8> {
        self.request(Method::GET, path).send().await.unwrap().bytes().await.unwrap().to_vec()
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.send(Method::POST, path, Some(body)).await
    }
    pub async fn put(&self, path: &str, body: Value) -> Resp {
        self.send(Method::PUT, path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> Resp {
        self.send(Method::DELETE, path, None).await
    }
}

/// Set-up steps most tests share, done through the API as an administrator.
pub struct Api<'a> {
    pub admin: &'a Client,
}

impl Api<'_> {
    pub async fn user(&self, username: &str) -> (Uuid, Client) {
        let password = format!("{username}-password-123");
        let id = self
            .admin
            .post("/api/v1/users", json!({"username": username, "password": password}))
            .await
            .expect(201)
            .id();
        let mut client = self.admin.anonymous();
        client.login(username, &password).await.expect("login");
        (id, client)
    }

    pub async fn tenant(&self, name: &str, parent: Option<Uuid>) -> Uuid {
        self.admin.post("/api/v1/tenants", json!({"name": name, "parent_id": parent})).await.expect(201).id()
    }

    pub async fn member(&self, tenant: Uuid, username: &str, role: &str) {
        self.admin
            .post(&format!("/api/v1/tenants/{tenant}/members"), json!({"username": username, "role": role}))
            .await
            .expect(201);
    }

    /// A job of `tenant`; `public` makes it readable by anyone.
    pub async fn job(&self, tenant: Uuid, name: &str, public: bool) -> Uuid {
        let visibility = if public { "public" } else { "private" };
        self.admin
            .post(
                &format!("/api/v1/tenants/{tenant}/jobs"),
                json!({"name": name, "platforms": ["debian-12-x86_64"], "visibility": visibility}),
            )
            .await
            .expect(201)
            .id()
    }

    /// Opens an upload of a successful build of `job` that finished now (so later uploads are
    /// newer); returns the upload's id.
    pub async fn open_upload(client: &Client, job: Uuid) -> Uuid {
        let now = chrono::Utc::now();
        let started = now - chrono::Duration::seconds(60);
        client
            .post(
                &format!("/api/v1/jobs/{job}/uploads"),
                json!({"platform": "debian-12-x86_64", "started_at": started, "finished_at": now,
                       "result": {"kind": "exited", "code": 0}}),
            )
            .await
            .expect(201)
            .id()
    }

    /// Uploads and finalizes a build of `job` with these files; returns the build.
    pub async fn build(client: &Client, job: Uuid, files: &[(&str, &[u8])]) -> Value {
        let upload = Self::open_upload(client, job).await;
        for (path, data) in files {
            client.put_artifact(upload, path, data).await.expect(201);
        }
        client.post(&format!("/api/v1/uploads/{upload}/finalize"), json!({})).await.expect(201).body
    }

    /// A token created by `client` for `tenant` with `role`; returns (id, secret).
    pub async fn token(client: &Client, tenant: Uuid, role: &str) -> (Uuid, String) {
        let r = client
            .post("/api/v1/tokens", json!({"name": "test", "tenant_id": tenant, "role": role}))
            .await
            .expect(201);
        let id = r.body["token"]["id"].as_str().unwrap().parse().unwrap();
        (id, r.body["secret"].as_str().unwrap().to_string())
    }

    /// A job of `tenant` built by workers from `recipe` on `debian-12-x86_64`, plus `extra`
    /// fields (limits, schedule ...).
    pub async fn recipe_job(&self, tenant: Uuid, name: &str, recipe: Value, extra: Value) -> Uuid {
        let mut body = json!({"name": name, "platforms": [PLATFORM], "recipe": recipe});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        self.admin.post(&format!("/api/v1/tenants/{tenant}/jobs"), body).await.expect(201).id()
    }

    /// Registers a worker (shared when `tenant` is none); returns its id, a client that sends
    /// its credential, and the credential.
    pub async fn worker(&self, name: &str, tenant: Option<Uuid>) -> (Uuid, Client, String) {
        let r =
            self.admin.post("/api/v1/workers", json!({"name": name, "tenant_id": tenant})).await.expect(201);
        let credential = r.body["credential"].as_str().expect("credential").to_string();
        let id = r.body["worker"]["id"].as_str().unwrap().parse().unwrap();
        (id, self.admin.with_token(&credential), credential)
    }
}

/// The platform the tests' jobs and workers use.
pub const PLATFORM: &str = "debian-12-x86_64";
