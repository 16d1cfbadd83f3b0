//! Lambda entry point of the job worker.

use lambda_http::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let (state, queue) = match mako_lambda::aws_state_and_queue().await {
        Ok(parts) => parts,
        Err(error) => {
            tracing::error!(error = ?error, "cold start failed");
            return Err(error.into());
        }
    };
    tracing::info!("worker ready");
    lambda_http::lambda_runtime::run(service_fn(
        |event: LambdaEvent<aws_lambda_events::event::sqs::SqsEvent>| {
            let (state, queue) = (state.clone(), queue.clone());
            async move { Ok::<_, Error>(mako_worker::handle(&state, &queue, event.payload).await) }
        },
    ))
    .await
}
