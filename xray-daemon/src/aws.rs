//! Region, credentials and HTTP client for talking to X-Ray, through `aws-config`: flags and environment first,
//! then profiles, then (outside local mode) container and instance roles; `-r` assumes a role on top.

use aws_config::meta::credentials::CredentialsProviderChain;
use aws_config::meta::region::RegionProviderChain;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_xray::config::Region;
use aws_sdk_xray::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
use aws_smithy_http_client::Connector;
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

use crate::{Config, DaemonError};

/// Loads what the daemon signs with. In local mode nothing here calls the EC2 instance metadata service.
pub async fn load(config: &Config) -> Result<SdkConfig, DaemonError> {
    let region = region(config).await?;
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(region.clone());
    if config.local_mode {
        // The default chain would end at the instance metadata service; outside EC2 that lookup only costs
        // start-up time and log noise.
        let credentials = CredentialsProviderChain::first_try(
            "Environment",
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        )
        .or_else("Profile", aws_config::profile::ProfileFileCredentialsProvider::builder().build())
        .or_else("EcsContainer", aws_config::ecs::EcsCredentialsProvider::builder().build());
        loader = loader.credentials_provider(credentials);
    }
    if let Some(proxy) = &config.proxy_address {
        let proxy = ProxyConfig::all(proxy.as_str())
            .map_err(|error| DaemonError::Config(format!("--proxy-address {proxy:?}: {error}")))?;
        // The SDK's own HTTPS client, routed through the proxy.
        let client = aws_smithy_http_client::Builder::new().build_with_connector_fn(move |settings, _components| {
            let mut connector = Connector::builder().proxy_config(proxy.clone());
            if let Some(settings) = settings {
                connector = connector.connector_settings(settings.clone());
            }
            connector.tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc)).build()
        });
        loader = loader.http_client(client);
    }
    let mut sdk = loader.load().await;
    if let Some(role_arn) = &config.role_arn {
        let role = aws_config::sts::AssumeRoleProvider::builder(role_arn)
            .session_name("xray-daemon")
            .region(region)
            .configure(&sdk)
            .build()
            .await;
        sdk = sdk.to_builder().credentials_provider(SharedCredentialsProvider::new(role)).build();
    }
    Ok(sdk)
}

async fn region(config: &Config) -> Result<Region, DaemonError> {
    let explicit = RegionProviderChain::first_try(config.region.clone().map(Region::new));
    let chain = if config.local_mode {
        explicit
            .or_else(aws_config::environment::EnvironmentVariableRegionProvider::new())
            .or_else(aws_config::profile::ProfileFileRegionProvider::builder().build())
    } else {
        explicit.or_default_provider()
    };
    chain.region().await.ok_or(DaemonError::NoRegion)
}

/// Where X-Ray is: the configured endpoint, or the one AWS's endpoint rules give for the region (`amazonaws.com.cn`
/// in China, FIPS and dual-stack when the AWS configuration asks for them).
pub async fn endpoint(config: &Config, sdk: &SdkConfig) -> Result<String, DaemonError> {
    if let Some(endpoint) = &config.endpoint {
        return Ok(endpoint.clone());
    }
    let params = Params::builder()
        .set_region(sdk.region().map(|region| region.to_string()))
        .set_use_fips(sdk.use_fips())
        .set_use_dual_stack(sdk.use_dual_stack())
        .build()
        .map_err(|error| DaemonError::Config(format!("X-Ray endpoint: {error}")))?;
    let endpoint = DefaultResolver::new()
        .resolve_endpoint(&params)
        .await
        .map_err(|error| DaemonError::Config(format!("X-Ray endpoint for {:?}: {error}", sdk.region())))?;
    Ok(endpoint.url().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn endpoint_for(region: &str, configured: Option<&str>) -> String {
        let sdk = SdkConfig::builder().region(Region::new(region.to_owned())).build();
        let mut config = Config::new("127.0.0.1:2000", "127.0.0.1:2000");
        config.endpoint = configured.map(str::to_owned);
        endpoint(&config, &sdk).await.unwrap()
    }

    #[tokio::test]
    async fn the_endpoint_follows_the_region_s_partition_unless_one_is_configured() {
        assert_eq!(endpoint_for("eu-west-1", None).await, "https://xray.eu-west-1.amazonaws.com");
        assert_eq!(endpoint_for("cn-north-1", None).await, "https://xray.cn-north-1.amazonaws.com.cn");
        assert_eq!(endpoint_for("us-gov-west-1", None).await, "https://xray.us-gov-west-1.amazonaws.com");
        assert_eq!(endpoint_for("eu-west-1", Some("http://127.0.0.1:4566")).await, "http://127.0.0.1:4566");
    }
}
