//! The dashboard in real headless Chromium against a real server in demo mode and the simulator:
//! the whole flow, a server restart the page survives without a reload, and screenshots.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use chromiumoxide::Browser;
use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use chromiumoxide::cdp::browser_protocol::page::CaptureScreenshotFormat;
use chromiumoxide::page::{Page, ScreenshotParams};
use common::server::{Server, config, decode_qr};
use common::*;
use futures::StreamExt;
use serde_json::Value;
use wa_supervisor::browser::process::ChromiumProcess;

const WAIT: Duration = Duration::from_secs(40);

async fn eval(page: &Page, js: &str) -> Value {
    page.evaluate(js)
        .await
        .unwrap()
        .into_value()
        .unwrap_or(Value::Null)
}

/// Polls `js` until it returns a truthy value.
async fn until(page: &Page, what: &str, js: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let value = eval(page, js).await;
        if !matches!(value, Value::Null | Value::Bool(false))
            && value != Value::String(String::new())
        {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn screenshot(page: &Page, name: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = page
        .screenshot(
            ScreenshotParams::builder()
                .format(CaptureScreenshotFormat::Png)
                .full_page(true)
                .build(),
        )
        .await
        .unwrap();
    std::fs::write(dir.join(name), png).unwrap();
}

const BADGE: &str = "(() => { const b = document.querySelector('.account .badge'); return b ? b.textContent : null; })()";

#[tokio::test]
async fn the_dashboard_runs_the_whole_flow_and_survives_a_server_restart() {
    let env = Env::new().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = Server::start_demo(&env, config(), port).await;

    // A plain Chromium for the person using the dashboard.
    let viewer = env.dir.path().join("viewer-profile");
    let args: Vec<String> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--remote-debugging-port=0",
        "--window-size=1280,900",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        format!("--user-data-dir={}", viewer.display()),
        "about:blank".into(),
    ])
    .collect();
    let chromium = wa_supervisor::browser::find_chromium(None).unwrap();
    let (process, ws_url) = ChromiumProcess::spawn(&chromium, &args, WAIT)
        .await
        .unwrap();
    let (browser, mut handler) = Browser::connect(ws_url).await.unwrap();
    let pump = tokio::spawn(async move { while handler.next().await.is_some() {} });
    let page = browser
        .new_page(format!("http://127.0.0.1:{port}/").as_str())
        .await
        .unwrap();

    until(
        &page,
        "signed in as the demo user",
        "document.getElementById('connection').textContent === 'Connected'",
    )
    .await;
    eval(
        &page,
        "window.__sameDocument = true; document.getElementById('add').click()",
    )
    .await;
    until(&page, "the QR image", "(() => { const i = document.querySelector('.account img.qr'); return i && i.src.startsWith('data:image/png') && !i.closest('.link').hidden; })()").await;
    let src = eval(&page, "document.querySelector('.account img.qr').src").await;
    assert_eq!(
        decode_qr(src.as_str().unwrap()),
        env.shown_qr().await,
        "the image is the simulator's QR"
    );
    assert_eq!(eval(&page, BADGE).await, "Waiting for scan");
    screenshot(&page, "dashboard-qr.png").await;
    assert_eq!(
        eval(
            &page,
            "[...document.querySelectorAll('input, textarea')].every(e => e.labels.length > 0)"
        )
        .await,
        true,
        "every control has a label"
    );
    // The pairing-code form: a phone number in, a code shown.
    eval(&page, "(() => { const d = document.querySelector('.account .pairing'); d.open = true; const f = d.querySelector('form'); f.phone.value = '34600999888'; f.requestSubmit(); })()").await;
    let code = until(&page, "a pairing code", "(() => { const t = document.querySelector('.account .code').textContent; return t.startsWith('Enter this code') && t; })()").await;
    let code = code
        .as_str()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(code.len(), 8, "{code}");

    eval(
        &page,
        "document.querySelector('.account .sim-scan').click()",
    )
    .await;
    until(&page, "ready", &format!("{BADGE} === 'Ready'")).await;
    let who = eval(&page, "document.querySelector('.account .who').textContent").await;
    assert!(
        who.as_str().unwrap().starts_with("+346") && who.as_str().unwrap().contains("Demo shop"),
        "{who}"
    );

    // The server restarts; the page reconnects by itself and shows it.
    server.stop().await;
    until(
        &page,
        "the page says it is reconnecting",
        "document.getElementById('connection').textContent.startsWith('Reconnecting')",
    )
    .await;
    let server = Server::start_demo(&env, config(), port).await;
    server.app.restore().await;
    until(
        &page,
        "reconnected",
        "document.getElementById('connection').textContent === 'Connected'",
    )
    .await;
    until(&page, "ready again", &format!("{BADGE} === 'Ready'")).await;
    assert_eq!(
        eval(&page, "window.__sameDocument === true").await,
        true,
        "no reload"
    );

    eval(
        &page,
        "document.querySelector('.account .sim-message').click()",
    )
    .await;
    let message = until(&page, "the incoming message", "(() => { const li = document.querySelector('.account .feed li'); return li && li.textContent; })()").await;
    assert!(
        message
            .as_str()
            .unwrap()
            .contains("Hola, ¿tienen cita para mañana?"),
        "{message}"
    );

    eval(&page, "(() => { const f = document.querySelector('.account .send-form'); f.to.value = '34611222333'; f.body.value = 'Sí, a las 10.'; f.requestSubmit(); })()").await;
    until(
        &page,
        "sent",
        "document.querySelector('.account .sent').textContent.startsWith('Sent')",
    )
    .await;
    let phone: String = who
        .as_str()
        .unwrap()
        .chars()
        .skip(1)
        .take_while(|c| c.is_ascii_digit())
        .collect();
    let (status, sent) = env.get(&format!("/phones/{phone}/sent")).await;
    assert_eq!(status, 200, "{sent}");
    assert!(
        sent["sent"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["body"] == "Sí, a las 10."),
        "the simulator lists the sent message: {sent}"
    );
    screenshot(&page, "dashboard-ready.png").await;

    // Readable at 375 px: nothing wider than the screen.
    page.execute(SetDeviceMetricsOverrideParams::new(375, 800, 2.0, true))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        eval(&page, "document.documentElement.scrollWidth <= 375").await,
        true
    );
    screenshot(&page, "dashboard-375.png").await;

    // Errors in words: a send before the number is linked is refused with a sentence, not a code.
    eval(
        &page,
        "window.confirm = () => true; document.querySelector('.account .destroy').click()",
    )
    .await;
    until(&page, "stopped", &format!("{BADGE} === 'Stopped'")).await;
    eval(&page, "(() => { const f = document.querySelector('.account .send-form'); f.to.value = '34611222333'; f.body.value = 'x'; f.requestSubmit(); })()").await;
    let notice = until(&page, "an error notice", "(() => { const n = document.getElementById('notice'); return !n.hidden && n.textContent; })()").await;
    assert!(
        notice.as_str().unwrap().contains("not connected yet"),
        "{notice}"
    );

    drop(page);
    drop(browser);
    pump.abort();
    drop(process);
    server.stop().await;
    env.assert_no_chromium_left().await;
}
