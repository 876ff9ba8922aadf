//! The bridge from the YAML to the OIAnalytics client: one [`ClientFactory`] per configuration
//! version (building one loads the CA store, so it is cached until a SIGHUP changes the file),
//! with every call counted into the MetricsApi family.

use std::rc::Rc;
use std::sync::{Arc, Mutex};

use crate::client::{
    ClientError, ClientFactory, ClientSettings, GatewaySettings, OiaClient, ProxySettings,
};
use crate::config::Config;

type Cached = Option<(Arc<Config>, Option<ClientFactory>)>;

static CACHE: Mutex<Cached> = Mutex::new(None);

/// The client factory for `config`, or `None` when `oianalytics.host` is not set.
pub fn client_factory(config: &Arc<Config>) -> Result<Option<ClientFactory>, ClientError> {
    // The cache holds plain data; a panic while holding it cannot leave it half-written.
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((cached_config, factory)) = cache.as_ref() {
        if Arc::ptr_eq(cached_config, config) {
            return Ok(factory.clone());
        }
    }
    let factory = build(config)?;
    *cache = Some((config.clone(), factory.clone()));
    Ok(factory)
}

/// An actor's client, rebuilt only when the configuration changes, so that its connections are
/// reused across calls.
#[derive(Default)]
pub struct CachedClient(Option<(Arc<Config>, Rc<OiaClient>)>);

impl CachedClient {
    /// The client for `config`; `Err` says why there is none.
    pub fn get(&mut self, config: Arc<Config>) -> Result<Rc<OiaClient>, String> {
        if let Some((built_for, client)) = &self.0 {
            if Arc::ptr_eq(built_for, &config) {
                return Ok(client.clone());
            }
        }
        let client = match client_factory(&config) {
            Ok(Some(factory)) => Rc::new(factory.client()),
            Ok(None) => return Err("oianalytics.host is not set".to_owned()),
            Err(e) => return Err(e.to_string()),
        };
        self.0 = Some((config, client.clone()));
        Ok(client)
    }
}

fn build(config: &Config) -> Result<Option<ClientFactory>, ClientError> {
    let oia = &config.oianalytics;
    let Some(host) = &oia.host else {
        return Ok(None);
    };
    let mut settings = ClientSettings::new(host.clone());
    settings.accept_unauthorized = oia.accept_unauthorized;
    settings.oibus_version = oia.oibus_version.clone();
    // Validated to 64KiB..1GiB, which fits any usize this runs on.
    settings.max_body_bytes = usize::try_from(oia.max_answer_bytes.0).unwrap_or(usize::MAX);
    if let Some(proxy) = &oia.proxy {
        let password = oia.proxy_password().map_err(|e| {
            ClientError::Settings(format!("cannot read oianalytics.proxy.password_file: {e}"))
        })?;
        settings.proxy = Some(ProxySettings {
            url: proxy.url.clone(),
            username: proxy.username.clone(),
            password,
        });
    }
    if let Some(gw) = &oia.api_gateway {
        let value = oia.gateway_header_value().map_err(|e| {
            ClientError::Settings(format!(
                "cannot read oianalytics.api_gateway.header_value_file: {e}"
            ))
        })?;
        settings.gateway = Some(GatewaySettings {
            base_endpoint: gw.base_endpoint.clone(),
            header_key: gw.header_key.clone(),
            header_value: value.unwrap_or_default(),
        });
    }
    Ok(Some(counted(ClientFactory::new(Arc::new(settings))?)))
}

/// `factory` with every call counted into the MetricsApi family, like the configured client's
/// (a north OIAnalytics with its own host builds its factory here too).
pub fn counted(factory: ClientFactory) -> ClientFactory {
    factory.with_metrics(Arc::new(|call| {
        crate::events::OiaRequestCompleted {
            route: call.route,
            method: call.method,
            result: call.result,
            elapsed: call.elapsed,
        }
        .emit();
    }))
}
