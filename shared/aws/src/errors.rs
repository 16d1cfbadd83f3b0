//! Helpers shared by the adapters for SDK errors.

use std::error::Error;
use std::fmt::Debug;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// Returns the AWS error code of a service error, such as `ConditionalCheckFailedException`,
/// or `None` for errors that never reached the service (timeouts, connection failures).
pub(crate) fn error_code<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> Option<&str> {
    error.code()
}

/// Logs a failed request and wraps the SDK error as the source of an `anyhow` error that
/// names the service, operation and resource.
pub(crate) fn backend<E, R>(
    service: &'static str,
    operation: &'static str,
    resource: &str,
    error: SdkError<E, R>,
) -> anyhow::Error
where
    E: ProvideErrorMetadata + Error + Send + Sync + 'static,
    R: Debug + Send + Sync + 'static,
{
    tracing::warn!(
        service,
        operation,
        resource,
        code = error.code().unwrap_or("none"),
        error = %DisplayErrorContext(&error),
        "AWS request failed"
    );
    anyhow::Error::new(error).context(format!("{service} {operation} on {resource} failed"))
}

/// Like [`backend`], but logs and keeps only the messages of the error chain. The SDK
/// error's debug form contains the raw HTTP response, which for an unparsable
/// `GetSecretValue` response would be the secret itself.
pub(crate) fn redacted_backend<E, R>(
    service: &'static str,
    operation: &'static str,
    resource: &str,
    error: SdkError<E, R>,
) -> anyhow::Error
where
    E: ProvideErrorMetadata + Error + Send + Sync + 'static,
    R: Debug + Send + Sync + 'static,
{
    let messages = chain(&error);
    let code = error.code().unwrap_or("none");
    tracing::warn!(service, operation, resource, code, error = %messages, "AWS request failed");
    anyhow::anyhow!("{service} {operation} on {resource} failed: {messages}")
}

/// Returns the messages of an error and its sources, joined by `: `.
pub(crate) fn chain(error: &(dyn Error + 'static)) -> String {
    let mut messages = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        messages.push_str(": ");
        messages.push_str(&cause.to_string());
        source = cause.source();
    }
    messages
}

#[cfg(test)]
mod tests {
    use aws_sdk_s3::primitives::SdkBody;
    use aws_sdk_secretsmanager::config::http::HttpResponse;
    use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;

    use super::*;

    #[test]
    fn redacted_error_omits_response_body() {
        let raw = HttpResponse::new(
            200u16.try_into().expect("status code"),
            SdkBody::from(r#"{"SecretString":"top-secret"}"#),
        );
        let error: SdkError<GetSecretValueError, HttpResponse> =
            SdkError::response_error(std::io::Error::other("unparsable response"), raw);

        let wrapped = redacted_backend("Secrets Manager", "GetSecretValue", "mako", error);
        let text = format!("{wrapped} {wrapped:#} {wrapped:?} {wrapped:#?}");

        assert!(!text.contains("top-secret"), "{text}");
        assert!(text.contains("unparsable response"), "{text}");
        assert!(text.contains("GetSecretValue on mako"), "{text}");
    }
}
