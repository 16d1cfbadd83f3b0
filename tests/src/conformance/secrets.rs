//! `Secrets` conformance: reads, writes, replacement, name checks and persistence.

use mako_core::ports::{SecretString, SecretsError};

use crate::fixtures::Adapters;

pub async fn missing_secret_reads_none(adapters: &Adapters) {
    let value = adapters.secrets.get("never-set").await.expect("get");
    assert_eq!(value, None);
}

pub async fn put_then_get_and_replace(adapters: &Adapters) {
    let secrets = &*adapters.secrets;

    secrets
        .put("google-client-secret", &SecretString::new("first ✓"))
        .await
        .expect("put");
    assert_eq!(
        secrets.get("google-client-secret").await.expect("get"),
        Some(SecretString::new("first ✓"))
    );

    secrets
        .put("google-client-secret", &SecretString::new("second"))
        .await
        .expect("replace");
    assert_eq!(
        secrets.get("google-client-secret").await.expect("get"),
        Some(SecretString::new("second"))
    );
}

pub async fn secrets_persist_across_instances(adapters: &Adapters) {
    adapters
        .secrets
        .put("github-client-secret", &SecretString::new("kept"))
        .await
        .expect("put");

    let reopened = (adapters.reopen_secrets)().await;

    assert_eq!(
        reopened.get("github-client-secret").await.expect("get"),
        Some(SecretString::new("kept"))
    );
}

pub async fn invalid_names_are_rejected(adapters: &Adapters) {
    for name in ["", "UPPER", "with space", "../escape", &"x".repeat(65)] {
        let result = adapters.secrets.get(name).await;
        assert!(
            matches!(result, Err(SecretsError::InvalidName(_))),
            "{name:?}: {result:?}"
        );
        let result = adapters.secrets.put(name, &SecretString::new("v")).await;
        assert!(
            matches!(result, Err(SecretsError::InvalidName(_))),
            "{name:?}: {result:?}"
        );
    }
}

pub async fn debug_output_hides_value(_adapters: &Adapters) {
    let secret = SecretString::new("hunter2");
    assert!(!format!("{secret:?}").contains("hunter2"));
}
