//! A real headless Chromium driven over WebDriver (Debian's chromium and chromium-driver), for
//! end-to-end tests of the SPA. The browser trusts exactly the test server's certificate key.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
const WAIT: Duration = Duration::from_secs(30);

pub struct Browser {
    driver: Child,
    http: reqwest::Client,
    session: String,
    base: String,
    _profile: tempfile::TempDir,
}

#[derive(Clone)]
pub struct Element(String);

/// Where the SPA's build lives; the browser tests need it built (scripts/test.sh does).
pub fn frontend_dist() -> PathBuf {
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../frontend/dist");
    assert!(
        dist.join("index.html").is_file() && dist.join("petrel_bg.wasm").is_file(),
        "the SPA is not built: run scripts/build-frontend.sh (scripts/test.sh does)"
    );
    dist
}

/// Screenshots of the test run are kept here as artifacts.
pub fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium that trusts the server key in `server_key_pem`.
    pub async fn start(base_url: &str, server_key_pem: &str) -> Browser {
        for bin in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: install Debian's chromium and chromium-driver (scripts/setup.sh does)"
            );
        }
        let key = rcgen::KeyPair::from_pem(server_key_pem).expect("server key");
        let spki = STANDARD.encode(Sha256::digest(key.public_key_der()));
        let port = free_port();
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        let endpoint = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + WAIT;
        while http.get(format!("{endpoint}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--window-size=1280,900".into(),
            format!("--user-data-dir={}", profile.path().display()),
            format!("--ignore-certificate-errors-spki-list={spki}"),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}
        }}});
        let r: Value =
            http.post(format!("{endpoint}/session")).json(&caps).send().await.unwrap().json().await.unwrap();
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {r}"))
            .to_string();
        Browser {
            driver,
            http,
            session: format!("{endpoint}/session/{session}"),
            base: base_url.trim_end_matches('/').to_string(),
            _profile: profile,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{}", self.session, path));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r: Value = req.send().await.unwrap().json().await.unwrap();
        r["value"].clone()
    }

    pub async fn goto(&self, path: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": format!("{}{}", self.base, path)})))
            .await;
    }

    pub async fn current_path(&self) -> String {
        let url = self.call(reqwest::Method::GET, "/url", None).await;
        url.as_str().unwrap_or("").trim_start_matches(&self.base).to_string()
    }

    async fn find_now(&self, css: &str) -> Option<Element> {
        let v = self
            .call(reqwest::Method::POST, "/element", Some(json!({"using": "css selector", "value": css})))
            .await;
        v[ELEMENT_KEY].as_str().map(|id| Element(id.to_string()))
    }

    /// Waits for an element to appear.
    pub async fn find(&self, css: &str) -> Element {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(e) = self.find_now(css).await {
                return e;
            }
            if Instant::now() > deadline {
                let source = self.call(reqwest::Method::GET, "/source", None).await;
                let url = self.call(reqwest::Method::GET, "/url", None).await;
                let raw = self
                    .call(
                        reqwest::Method::POST,
                        "/element",
                        Some(json!({"using": "css selector", "value": css})),
                    )
                    .await;
                panic!("no element matches {css:?} at {url} ({raw}); page source: {source}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        let v = self
            .call(reqwest::Method::POST, "/elements", Some(json!({"using": "css selector", "value": css})))
            .await;
        v.as_array()
            .map(|a| {
                a.iter().filter_map(|e| e[ELEMENT_KEY].as_str().map(|s| Element(s.to_string()))).collect()
            })
            .unwrap_or_default()
    }

    /// Waits until the page's text contains `needle`.
    pub async fn wait_for_text(&self, needle: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = self.page_text().await;
            if text.contains(needle) {
                return;
            }
            assert!(Instant::now() < deadline, "the page never showed {needle:?}; it shows: {text}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn page_text(&self) -> String {
        match self.find_now("body").await {
            Some(body) => self.text(&body).await,
            None => String::new(),
        }
    }

    pub async fn text(&self, e: &Element) -> String {
        self.call(reqwest::Method::GET, &format!("/element/{}/text", e.0), None)
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    pub async fn attribute(&self, e: &Element, name: &str) -> Option<String> {
        self.call(reqwest::Method::GET, &format!("/element/{}/attribute/{name}", e.0), None)
            .await
            .as_str()
            .map(str::to_string)
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{}/clear", e.0), Some(json!({}))).await;
        self.call(reqwest::Method::POST, &format!("/element/{}/value", e.0), Some(json!({"text": text})))
            .await;
    }

    pub async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.click_element(&e).await;
    }

    pub async fn click_element(&self, e: &Element) {
        self.call(reqwest::Method::POST, &format!("/element/{}/click", e.0), Some(json!({}))).await;
    }

    /// Signs in on the login page and waits for the page it leads to (the tenants).
    pub async fn sign_in(&self, username: &str, password: &str) {
        self.goto("/login").await;
        self.type_into("input[name=username]", username).await;
        self.type_into("input[name=password]", password).await;
        self.click("button[type=submit]").await;
        self.find("[data-testid=tenant-row]").await;
    }

    /// Selects the option of a `<select>` whose visible text is `label`, waiting (as `find`
    /// does) for the options to load.
    pub async fn select(&self, css: &str, label: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            for o in self.find_all(&format!("{css} option")).await {
                if self.text(&o).await == label {
                    return self.click_element(&o).await;
                }
            }
            assert!(std::time::Instant::now() < deadline, "no option {label:?} in {css}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Resizes the window (e.g. to a phone's width).
    pub async fn set_window_size(&self, width: u32, height: u32) {
        self.call(reqwest::Method::POST, "/window/rect", Some(json!({"width": width, "height": height})))
            .await;
    }

    /// Waits until the element's text contains `needle`; returns the text.
    pub async fn wait_for_text_in(&self, css: &str, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = self.text(&self.find(css).await).await;
            if text.contains(needle) {
                return text;
            }
            assert!(Instant::now() < deadline, "{css} never showed {needle:?}; it shows: {text:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the element's DOM property (e.g. an input's `value`) is `value`.
    pub async fn wait_for_property(&self, css: &str, name: &str, value: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let e = self.find(css).await;
            let now =
                self.call(reqwest::Method::GET, &format!("/element/{}/property/{name}", e.0), None).await;
            if now.as_str() == Some(value) {
                return;
            }
            assert!(Instant::now() < deadline, "{css} never had .{name}={value:?}; it has {now}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the element's attribute is `value`.
    pub async fn wait_for_attribute(&self, css: &str, name: &str, value: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let now = self.attribute(&self.find(css).await, name).await;
            if now.as_deref() == Some(value) {
                return;
            }
            assert!(Instant::now() < deadline, "{css} never had {name}={value:?}; it has {now:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a PNG screenshot under target/screenshots.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let data = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = STANDARD.decode(data.as_str().unwrap_or("")).expect("screenshot data");
        let path = screenshot_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Chromedriver ends its browsers when it ends.
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
