//! Lambda entry point of the scheduler: an EventBridge schedule invokes it every minute, and
//! each invocation is one tick of [`mako_jobs::scheduler::tick`].

use lambda_http::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let state = match mako_lambda::aws_state().await {
        Ok(state) => state,
        Err(error) => {
            tracing::error!(error = ?error, "cold start failed");
            return Err(error.into());
        }
    };
    tracing::info!("scheduler ready");
    lambda_http::lambda_runtime::run(service_fn(|_event: LambdaEvent<serde_json::Value>| {
        let state = state.clone();
        async move { Ok::<_, Error>(mako_jobs::scheduler::tick(&state, chrono::Utc::now()).await) }
    }))
    .await
}
