//! Lambda entry point of the `/api/auth` route family.

#[tokio::main]
async fn main() -> Result<(), mako_lambda::Error> {
    mako_lambda::run(mako_auth::router).await
}
