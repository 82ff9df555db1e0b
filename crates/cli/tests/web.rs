//! The web wallet in a real browser: headless Chromium driven over WebDriver (chromedriver)
//! against two real `ezchain serve` processes on a real one-validator testnet.
//!
//! Needs Debian's `chromium` and `chromium-driver` (or EZ_CHROMIUM / EZ_CHROMEDRIVER); skipped
//! without them unless EZ_REQUIRE_BROWSER is set, as CI does. Screenshots of each step are saved
//! under EZ_ARTIFACTS_DIR (default: the target folder's tmp/web-wallet).

use ezchain_devnet::launcher::{self, Attachment};
use ezchain_testkit::LocalTestnet;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::ffi::OsStr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(60);
const DRIVER_PORT: u16 = 25860;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ezchain"))
}

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// chromedriver in a process group of its own, killed with the browsers it started: a
/// failing step must not leave a Chromium behind.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        if let Ok(group) = i32::try_from(self.0.id()) {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(group), nix::sys::signal::Signal::SIGKILL);
        }
        let _ = self.0.wait();
    }
}

/// One `ezchain serve` with its own config and data folder.
struct Serve {
    config: PathBuf,
    port: u16,
    _child: Killed,
}

impl Serve {
    fn start(net: &LocalTestnet, name: &str, port: u16) -> Serve {
        let node = net.nodes[net.bootstrap_index()].rpc.to_string();
        let config = net.service_config(&format!("web-{name}"), &node, port);
        let dir = config.parent().expect("service folder").to_path_buf();
        let child = launcher::spawn(
            binary(),
            [OsStr::new("--config"), config.as_os_str(), OsStr::new("serve")],
            &dir.join("serve.log"),
            Attachment::Child,
        )
        .expect("spawn serve");
        let serve = Serve {
            config,
            port,
            _child: Killed(child),
        };
        let http = reqwest::blocking::Client::new();
        let deadline = Instant::now() + LONG;
        while http.get(serve.url("/health")).send().is_err() {
            assert!(Instant::now() < deadline, "serve did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        serve
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// A fresh one-time sign-in link, as `ezchain auth login-link` prints it.
    fn login_link(&self) -> String {
        let output = Command::new(binary())
            .arg("--config")
            .arg(&self.config)
            .args(["auth", "login-link"])
            .output()
            .expect("run ezchain auth login-link");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let link = String::from_utf8_lossy(&output.stdout).trim().to_string();
        assert!(link.starts_with(&self.url("/#login=")), "{link}");
        link
    }
}

fn found(variable: &str, default: &str) -> Option<PathBuf> {
    let path = std::env::var_os(variable).map_or_else(|| PathBuf::from(default), PathBuf::from);
    path.exists().then_some(path)
}

/// Chromium and chromedriver, or `None` (a skip) when they are missing and not required.
fn browser() -> Option<(PathBuf, PathBuf)> {
    match (
        found("EZ_CHROMIUM", "/usr/bin/chromium"),
        found("EZ_CHROMEDRIVER", "/usr/bin/chromedriver"),
    ) {
        (Some(chromium), Some(driver)) => Some((chromium, driver)),
        _ => {
            assert!(
                std::env::var_os("EZ_REQUIRE_BROWSER").is_none(),
                "EZ_REQUIRE_BROWSER is set but chromium or chromedriver is missing (apt-get install chromium chromium-driver)"
            );
            eprintln!("skipped: no chromium/chromedriver (apt-get install chromium chromium-driver)");
            None
        }
    }
}

fn artifacts() -> PathBuf {
    let dir = std::env::var_os("EZ_ARTIFACTS_DIR").map_or_else(
        || Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-wallet"),
        PathBuf::from,
    );
    // This run's screenshots only.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("artifacts folder");
    dir
}

/// The browser session with the helpers the steps use.
struct Page {
    client: Client,
    shots: PathBuf,
    shot: usize,
}

impl Page {
    async fn screenshot(&mut self, name: &str) {
        self.shot += 1;
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(self.shots.join(format!("{:02}-{name}.png", self.shot)), png).expect("save screenshot");
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    /// Waits until `script` (a JavaScript expression) is truthy; returns its value.
    async fn until(&self, what: &str, script: &str) -> Value {
        let deadline = Instant::now() + LONG;
        loop {
            let value = self
                .client
                .execute(&format!("return {script};"), vec![])
                .await
                .unwrap_or(Value::Null);
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return value;
            }
            if Instant::now() > deadline {
                let text = self
                    .client
                    .execute("return document.body.innerText;", vec![])
                    .await
                    .unwrap_or_default();
                panic!("waited a minute for {what} ({script}); the page says:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until element `id` carries the error (or hint) code `code` in `data-code`.
    async fn shows_code(&self, id: &str, code: &str) {
        self.until(
            &format!("#{id} to show `{code}`"),
            &format!("document.getElementById('{id}').dataset.code === '{code}'"),
        )
        .await;
    }

    async fn visible(&self, id: &str) {
        self.until(
            &format!("#{id} to show"),
            &format!("document.getElementById('{id}') && !document.getElementById('{id}').hidden"),
        )
        .await;
    }

    async fn text(&self, id: &str) -> String {
        self.client
            .find(Locator::Id(id))
            .await
            .expect(id)
            .text()
            .await
            .expect("text")
    }

    async fn type_into(&self, id: &str, text: &str) {
        let field = self.client.find(Locator::Id(id)).await.expect(id);
        field.clear().await.expect("clear");
        field.send_keys(text).await.expect("type");
    }

    async fn click(&self, id: &str) {
        self.client
            .find(Locator::Id(id))
            .await
            .expect(id)
            .click()
            .await
            .expect("click");
    }

    /// The HTTP status of `fetch(path)` made by the page itself.
    async fn fetch_status(&self, path: &str) -> u64 {
        self.client
            .execute(
                &format!("return fetch('{path}', {{credentials: 'same-origin'}}).then(r => r.status);"),
                vec![],
            )
            .await
            .expect("fetch from the page")
            .as_u64()
            .expect("a status")
    }

    /// Signs in with a fresh link, creates a wallet (confirming two of its words) and waits
    /// for the wallet view; returns the address.
    async fn create_wallet(&mut self, serve: &Serve, who: &str) -> String {
        self.goto(&serve.login_link()).await;
        self.visible("view-onboard").await;
        let url = self.client.current_url().await.expect("url");
        assert!(
            !url.as_str().contains("login="),
            "the code leaves the address bar: {url}"
        );
        self.type_into("create-password", "password-1").await;
        self.type_into("create-password-again", "password-1").await;
        self.click("create-submit").await;
        self.visible("view-mnemonic").await;
        self.screenshot(&format!("{who}-recovery-words")).await;
        let words: Vec<String> = serde_json::from_value(
            self.until(
                "the recovery words",
                "Array.from(document.querySelectorAll('#mnemonic-words li'), li => li.textContent)",
            )
            .await,
        )
        .expect("words");
        assert!(words.len() >= 12, "{words:?}");
        let position = |label: String| -> usize {
            label
                .trim_start_matches("Word ")
                .parse::<usize>()
                .expect("a word position")
                - 1
        };
        let first = position(self.text("mnemonic-label-a").await);
        let second = position(self.text("mnemonic-label-b").await);
        assert_ne!(first, second);
        // A wrong word is refused…
        self.type_into("mnemonic-check-a", "wrong").await;
        self.type_into("mnemonic-check-b", &words[second]).await;
        self.click("mnemonic-confirm").await;
        self.shows_code("mnemonic-error", "mnemonic_mismatch").await;
        // …the right two open the wallet.
        self.type_into("mnemonic-check-a", &words[first]).await;
        self.click("mnemonic-confirm").await;
        self.visible("view-wallet").await;
        let address = self
            .until("the address", "document.getElementById('address').textContent")
            .await;
        self.until(
            "the key unlocked after creation",
            "document.getElementById('lock-state').dataset.unlocked === 'true'",
        )
        .await;
        address.as_str().expect("address").to_string()
    }
}

/// `address` with the case of its first letter digit flipped: the same bytes, a wrong EIP-55
/// checksum.
fn wrong_checksum(address: &str) -> String {
    let at = address[2..]
        .char_indices()
        .find(|(_, c)| c.is_ascii_alphabetic())
        .map(|(i, _)| i + 2)
        .expect("an address with a letter");
    let mut flipped = address.to_string();
    let c = address.as_bytes()[at] as char;
    let swapped = if c.is_ascii_uppercase() {
        c.to_ascii_lowercase()
    } else {
        c.to_ascii_uppercase()
    };
    flipped.replace_range(at..=at, &swapped.to_string());
    flipped
}

#[test]
fn a_user_signs_in_creates_a_wallet_pays_and_gets_paid_in_a_real_browser() {
    let Some((chromium, driver_path)) = browser() else {
        return;
    };
    let net = LocalTestnet::start(binary(), 1, 25840);
    net.wait_for_height(net.bootstrap_index(), 1, LONG)
        .expect("the devnet finalizes blocks");
    let alice = Serve::start(&net, "alice", 25850);
    let bob = Serve::start(&net, "bob", 25851);
    let _driver = Driver(
        Command::new(&driver_path)
            .arg(format!("--port={DRIVER_PORT}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver"),
    );
    let profile = tempfile::tempdir().expect("browser profile");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,1700", format!("--user-data-dir={}", profile.path().display())],
            }),
        );
        let deadline = Instant::now() + LONG;
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&format!("http://127.0.0.1:{DRIVER_PORT}"))
                .await
            {
                Ok(client) => break client,
                Err(e) => {
                    assert!(Instant::now() < deadline, "no browser session: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        let mut page = Page {
            client,
            shots: artifacts(),
            shot: 0,
        };

        // Without a session the page asks to sign in, and cannot call the API.
        page.goto(&alice.url("/")).await;
        page.visible("view-sign-in").await;
        page.screenshot("sign-in").await;
        assert_eq!(page.fetch_status("/wallet/show").await, 401);
        // A wrong token is refused with its code.
        page.type_into("sign-in-token", &"0".repeat(64)).await;
        page.click("sign-in-submit").await;
        page.shows_code("sign-in-error", "login_failed").await;

        // Bob first: a wallet whose address Alice will pay.
        let bob_address = page.create_wallet(&bob, "bob").await;

        // Alice: sign in with a link, create a wallet, get faucet coins.
        let alice_address = page.create_wallet(&alice, "alice").await;
        assert_ne!(alice_address, bob_address);
        page.type_into("faucet-amount", "100").await;
        page.click("faucet-submit").await;
        page.until(
            "the faucet's coins",
            "document.getElementById('balance-available').textContent === '100'",
        )
        .await;
        page.screenshot("alice-funded").await;

        // A wrong checksum is caught as it is typed; an amount above the balance is refused.
        page.type_into("send-recipient", &wrong_checksum(&bob_address)).await;
        page.shows_code("send-recipient-hint", "invalid_recipient").await;
        page.screenshot("alice-wrong-checksum").await;
        page.type_into("send-recipient", &bob_address).await;
        page.shows_code("send-recipient-hint", "valid").await;
        page.type_into("send-amount", "1000").await;
        page.click("send-submit").await;
        page.shows_code("send-error", "insufficient_funds").await;
        page.screenshot("alice-insufficient-funds").await;

        // The payment: signed → submitted → finalized → delivered, then in the history.
        page.type_into("send-amount", "30").await;
        page.click("send-submit").await;
        page.until(
            "the payment delivered",
            "document.getElementById('send-progress').dataset.status === 'delivered'",
        )
        .await;
        let tx_ref = page
            .until(
                "the delivered row in the history",
                "(document.querySelector('#history tbody tr td[data-state=delivered]') || {parentElement: {dataset: {}}}).parentElement.dataset.txRef",
            )
            .await;
        page.until(
            "the balance after paying",
            "document.getElementById('balance-available').textContent === '70'",
        )
        .await;
        page.screenshot("alice-delivered").await;
        // The live checks chart the payment once the next 10-s sample has it.
        page.until(
            "the success ratio charted",
            "document.querySelector('#chart-success path.line')",
        )
        .await;
        page.screenshot("alice-live-checks").await;

        // A double click and a reload in the middle of a payment pay once: the page keeps the
        // payment's client_tx_id until it is delivered and resumes it after the reload.
        page.type_into("send-recipient", &bob_address).await;
        page.type_into("send-amount", "5").await;
        page.client
            .execute(
                "const pay = document.getElementById('send-submit'); pay.click(); pay.click(); setTimeout(() => location.reload(), 30); return true;",
                vec![],
            )
            .await
            .expect("double click, then reload");
        tokio::time::sleep(Duration::from_millis(500)).await;
        page.visible("view-wallet").await;
        page.until(
            "the resumed payment delivered",
            "!localStorage.getItem('ezchain.send') && document.getElementById('balance-available').textContent === '65'",
        )
        .await;
        let sends = page
            .until(
                "the history with both payments",
                "(() => { const rows = Array.from(document.querySelectorAll('#history tbody tr')).filter(r => r.children[1].textContent === 'Sent'); return rows.length >= 2 && rows.map(r => r.children[3].textContent).sort().join(','); })()",
            )
            .await;
        assert_eq!(sends, json!("30,5"), "each payment made once");

        // Bob's page (his session is still open): the payment verified, the same payment id.
        page.goto(&bob.url("/")).await;
        page.visible("view-wallet").await;
        page.click("receive").await;
        page.until(
            "the verified package",
            "document.querySelector('#received li[data-status=accepted]')",
        )
        .await;
        page.until(
            "Bob's balance",
            "document.getElementById('balance-available').textContent === '35'",
        )
        .await;
        let bob_refs = page
            .until(
                "the received rows in the history",
                "(() => { const refs = Array.from(document.querySelectorAll('#history tbody tr'), r => r.dataset.txRef); return refs.length === 2 && refs; })()",
            )
            .await;
        assert!(
            bob_refs.as_array().expect("refs").contains(&tx_ref),
            "one payment id on both sides: {bob_refs} has {tx_ref}"
        );
        page.screenshot("bob-received").await;

        // The page's own weight and load time (recorded in docs/BENCHMARKS.md).
        let timing = page
            .client
            .execute(
                "const n = performance.getEntriesByType('navigation')[0];
                 const r = performance.getEntriesByType('resource').filter(e => !e.name.includes('/wallet/') && !e.name.includes('/tx/') && !e.name.includes('/ui/session') && !e.name.includes('/node/') && !e.name.includes('/network/') && !e.name.includes('/readyz'));
                 return {interactive_ms: n.domInteractive, content_loaded_ms: n.domContentLoadedEventEnd,
                         page_bytes: n.decodedBodySize + r.reduce((s, e) => s + e.decodedBodySize, 0)};",
                vec![],
            )
            .await
            .expect("timing");
        eprintln!("web wallet page: {timing}");

        // Signing out ends the session: the page can no longer call the API.
        page.click("sign-out").await;
        page.visible("view-sign-in").await;
        assert_eq!(page.fetch_status("/wallet/show").await, 401);
        page.client.close().await.expect("close the browser");
    });
}
