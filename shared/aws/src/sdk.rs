//! SDK configuration shared by the adapters and by provisioning.

use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::config::Credentials;
use aws_smithy_http_client::tls;

/// One client per service, built from one SDK configuration.
pub(crate) struct Clients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub secrets_manager: aws_sdk_secretsmanager::Client,
}

impl Clients {
    /// Builds the clients for `region`, or for an emulator at `endpoint`.
    ///
    /// The HTTP client uses rustls with ring, so aws-lc is never compiled. The region is
    /// always explicit, so the SDK never asks the instance metadata service for it. With an
    /// endpoint the credentials are static dummies (emulators accept any), so the SDK never
    /// asks for credentials either. S3 then uses path-style addressing, because an emulator
    /// at `127.0.0.1` has no per-bucket host names.
    pub async fn new(region: &str, endpoint: Option<&str>) -> Clients {
        let http_client = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
            .build_https();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .http_client(http_client);
        if let Some(endpoint) = endpoint {
            loader = loader.endpoint_url(endpoint).credentials_provider(Credentials::new(
                "mako-emulator",
                "mako-emulator",
                None,
                None,
                "mako-emulator",
            ));
        }
        let config = loader.load().await;

        let s3_config = aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(endpoint.is_some())
            .build();
        Clients {
            dynamodb: aws_sdk_dynamodb::Client::new(&config),
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            sqs: aws_sdk_sqs::Client::new(&config),
            secrets_manager: aws_sdk_secretsmanager::Client::new(&config),
        }
    }
}
