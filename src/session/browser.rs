//! What a session needs of a browser, as a trait: `Driver` in production; unit tests of the
//! actor logic use a fake (never integration tests, which run real Chromium).

use futures::future::BoxFuture;
use tokio::sync::mpsc;

use crate::browser::{BrowserError, Driver, DriverEvent, LaunchOptions, SentMessage};

pub trait SessionBrowser: Send + Sync + 'static {
    fn pid(&self) -> u32;
    fn state(&self) -> BoxFuture<'_, Result<String, BrowserError>>;
    fn send_text<'a>(
        &'a self,
        to: &'a str,
        body: &'a str,
    ) -> BoxFuture<'a, Result<SentMessage, BrowserError>>;
    fn request_pairing_code<'a>(
        &'a self,
        phone: &'a str,
    ) -> BoxFuture<'a, Result<String, BrowserError>>;
    fn mark_available(&self) -> BoxFuture<'_, Result<(), BrowserError>>;
    /// Kills the browser now, without a crash event.
    fn kill(&self);
    fn close(self: Box<Self>) -> BoxFuture<'static, ()>;
    fn logout(self: Box<Self>) -> BoxFuture<'static, Result<(), BrowserError>>;
}

/// A launched browser and its events.
pub type Launched = (
    Box<dyn SessionBrowser>,
    mpsc::UnboundedReceiver<DriverEvent>,
);

pub trait Launcher: Send + Sync + 'static {
    fn launch(&self, options: LaunchOptions) -> BoxFuture<'static, Result<Launched, BrowserError>>;
}

/// Launches real Chromium through the driver.
pub struct ChromiumLauncher;

impl Launcher for ChromiumLauncher {
    fn launch(&self, options: LaunchOptions) -> BoxFuture<'static, Result<Launched, BrowserError>> {
        Box::pin(async move {
            let (driver, events) = Driver::launch(&options).await?;
            Ok((Box::new(driver) as Box<dyn SessionBrowser>, events))
        })
    }
}

impl SessionBrowser for Driver {
    fn pid(&self) -> u32 {
        Driver::pid(self)
    }

    fn state(&self) -> BoxFuture<'_, Result<String, BrowserError>> {
        Box::pin(Driver::state(self))
    }

    fn send_text<'a>(
        &'a self,
        to: &'a str,
        body: &'a str,
    ) -> BoxFuture<'a, Result<SentMessage, BrowserError>> {
        Box::pin(Driver::send_text(self, to, body))
    }

    fn request_pairing_code<'a>(
        &'a self,
        phone: &'a str,
    ) -> BoxFuture<'a, Result<String, BrowserError>> {
        Box::pin(Driver::request_pairing_code(self, phone))
    }

    fn mark_available(&self) -> BoxFuture<'_, Result<(), BrowserError>> {
        Box::pin(Driver::mark_available(self))
    }

    fn kill(&self) {
        Driver::kill(self)
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(Driver::close(*self))
    }

    fn logout(self: Box<Self>) -> BoxFuture<'static, Result<(), BrowserError>> {
        Box::pin(Driver::logout(*self))
    }
}
