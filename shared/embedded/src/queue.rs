//! `Queue` over the `jobs` table of the SQLite file.
//!
//! A job is the head of its group when no older job of that group is left. Only heads are
//! delivered, and a head leased by a consumer (its `visible_at` in the future) holds back
//! the rest of its group, which gives SQS FIFO's one-at-a-time order per group. Dead-lettered
//! jobs stay in the same table with `dead = 1`.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use mako_core::ports::queue::{DEDUP_WINDOW, validate_job, validate_receive};
use mako_core::ports::{Delivery, NewJob, Queue, QueueError};
use sqlx::{Row, SqlitePool};
use tokio::sync::{Mutex, Notify};

use crate::now_millis;

pub struct SqliteQueue {
    pool: SqlitePool,
    max_attempts: u32,
    /// Serializes writers, as in the store.
    writer: Mutex<()>,
    /// Wakes long-polling receivers when a job is sent or released.
    wake: Notify,
}

fn backend(error: sqlx::Error) -> QueueError {
    QueueError::backend(error)
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// How often a waiting receiver looks again for leases that ran out.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

impl SqliteQueue {
    pub(crate) fn new(pool: SqlitePool, max_attempts: u32) -> Self {
        Self {
            pool,
            max_attempts: max_attempts.max(1),
            writer: Mutex::new(()),
            wake: Notify::new(),
        }
    }

    /// Leases up to `max` group heads, dead-lettering those out of attempts.
    async fn lease(&self, max: u32, visibility: Duration) -> Result<Vec<Delivery>, QueueError> {
        let _guard = self.writer.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;
        let now = now_millis();
        let mut delivered = Vec::new();

        // Dead-lettering a head exposes the next job of its group, so look again until the
        // page is full or nothing is deliverable.
        loop {
            let remaining = i64::from(max) - delivered.len() as i64;
            let rows = sqlx::query(
                "SELECT seq, id, grp, body, attempts FROM jobs AS j
                 WHERE dead = 0 AND visible_at <= ?
                   AND seq = (SELECT MIN(seq) FROM jobs WHERE dead = 0 AND grp = j.grp)
                 ORDER BY seq LIMIT ?",
            )
            .bind(now)
            .bind(remaining)
            .fetch_all(&mut *tx)
            .await
            .map_err(backend)?;
            if rows.is_empty() {
                break;
            }

            let mut dead_lettered = false;
            for row in rows {
                let seq: i64 = row.try_get("seq").map_err(backend)?;
                let id: String = row.try_get("id").map_err(backend)?;
                let attempts: i64 = row.try_get("attempts").map_err(backend)?;

                if attempts >= i64::from(self.max_attempts) {
                    sqlx::query("UPDATE jobs SET dead = 1, receipt = NULL, visible_at = ? WHERE seq = ?")
                        .bind(now)
                        .bind(seq)
                        .execute(&mut *tx)
                        .await
                        .map_err(backend)?;
                    tracing::warn!(job_id = %id, attempts, "job moved to the dead-letter queue");
                    dead_lettered = true;
                    continue;
                }

                let receipt = ulid::Ulid::new().to_string();
                sqlx::query("UPDATE jobs SET attempts = attempts + 1, receipt = ?, visible_at = ? WHERE seq = ?")
                    .bind(&receipt)
                    .bind(now.saturating_add(millis(visibility)))
                    .bind(seq)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                let body: String = row.try_get("body").map_err(backend)?;
                delivered.push(Delivery {
                    id,
                    receipt,
                    group: row.try_get("grp").map_err(backend)?,
                    body: serde_json::from_str(&body).map_err(QueueError::backend)?,
                    attempts: u32::try_from(attempts + 1).unwrap_or(u32::MAX),
                });
            }
            if !dead_lettered || delivered.len() >= max as usize {
                break;
            }
        }

        tx.commit().await.map_err(backend)?;
        Ok(delivered)
    }

    /// Moves the lease of a live or dead job to `visible_at`, optionally ending the lease.
    async fn update_lease(&self, receipt: &str, dead: bool, delay: Duration, release: bool) -> Result<(), QueueError> {
        let _guard = self.writer.lock().await;
        let visible_at = now_millis().saturating_add(millis(delay));
        let statement = if release {
            "UPDATE jobs SET visible_at = ?, receipt = NULL WHERE receipt = ? AND dead = ?"
        } else {
            "UPDATE jobs SET visible_at = ? WHERE receipt = ? AND dead = ?"
        };
        let result = sqlx::query(statement)
            .bind(visible_at)
            .bind(receipt)
            .bind(i64::from(dead))
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        if result.rows_affected() == 0 {
            return Err(QueueError::StaleReceipt);
        }
        self.wake.notify_waiters();
        Ok(())
    }

    async fn remove(&self, receipt: &str, dead: bool) -> Result<(), QueueError> {
        let _guard = self.writer.lock().await;
        let result = sqlx::query("DELETE FROM jobs WHERE receipt = ? AND dead = ?")
            .bind(receipt)
            .bind(i64::from(dead))
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        if result.rows_affected() == 0 {
            return Err(QueueError::StaleReceipt);
        }
        self.wake.notify_waiters();
        Ok(())
    }
}

#[async_trait]
impl Queue for SqliteQueue {
    async fn send(&self, job: NewJob) -> Result<String, QueueError> {
        validate_job(&job)?;
        let body = serde_json::to_string(&job.body).map_err(QueueError::backend)?;
        let _guard = self.writer.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;
        let now = now_millis();

        let id = ulid::Ulid::new().to_string();
        if let Some(dedup_id) = &job.dedup_id {
            sqlx::query("DELETE FROM job_dedup WHERE expires_at <= ?")
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            let existing: Option<String> = sqlx::query_scalar("SELECT job_id FROM job_dedup WHERE dedup_id = ?")
                .bind(dedup_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
            if let Some(existing) = existing {
                return Ok(existing);
            }
            sqlx::query("INSERT INTO job_dedup (dedup_id, job_id, expires_at) VALUES (?, ?, ?)")
                .bind(dedup_id)
                .bind(&id)
                .bind(now.saturating_add(millis(DEDUP_WINDOW)))
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }

        sqlx::query("INSERT INTO jobs (id, grp, body, visible_at, sent_at) VALUES (?, ?, ?, ?, ?)")
            .bind(&id)
            .bind(&job.group)
            .bind(body)
            .bind(now.saturating_add(millis(job.delay)))
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;

        self.wake.notify_waiters();
        Ok(id)
    }

    async fn receive(&self, max: u32, visibility: Duration, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        validate_receive(max, visibility)?;
        let deadline = Instant::now() + wait.min(mako_core::ports::queue::MAX_WAIT);
        loop {
            // Register for wake-ups before looking, so a send in between is not missed.
            let woken = self.wake.notified();
            let jobs = self.lease(max, visibility).await?;
            let left = deadline.saturating_duration_since(Instant::now());
            if !jobs.is_empty() || left.is_zero() {
                return Ok(jobs);
            }
            let _ = tokio::time::timeout(left.min(POLL_INTERVAL), woken).await;
        }
    }

    async fn ack(&self, receipt: &str) -> Result<(), QueueError> {
        self.remove(receipt, false).await
    }

    async fn retry(&self, receipt: &str, delay: Duration) -> Result<(), QueueError> {
        self.update_lease(receipt, false, delay, true).await
    }

    async fn extend(&self, receipt: &str, visibility: Duration) -> Result<(), QueueError> {
        validate_receive(1, visibility)?;
        self.update_lease(receipt, false, visibility, false).await
    }

    async fn dead_letters(&self, max: u32, visibility: Duration) -> Result<Vec<Delivery>, QueueError> {
        validate_receive(max, visibility)?;
        let _guard = self.writer.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;
        let now = now_millis();

        let rows = sqlx::query(
            "SELECT seq, id, grp, body, attempts FROM jobs WHERE dead = 1 AND visible_at <= ? ORDER BY seq LIMIT ?",
        )
        .bind(now)
        .bind(i64::from(max))
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;

        let mut leased = Vec::with_capacity(rows.len());
        for row in rows {
            let seq: i64 = row.try_get("seq").map_err(backend)?;
            let receipt = ulid::Ulid::new().to_string();
            sqlx::query("UPDATE jobs SET receipt = ?, visible_at = ? WHERE seq = ?")
                .bind(&receipt)
                .bind(now.saturating_add(millis(visibility)))
                .bind(seq)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            let body: String = row.try_get("body").map_err(backend)?;
            let attempts: i64 = row.try_get("attempts").map_err(backend)?;
            leased.push(Delivery {
                id: row.try_get("id").map_err(backend)?,
                receipt,
                group: row.try_get("grp").map_err(backend)?,
                body: serde_json::from_str(&body).map_err(QueueError::backend)?,
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
            });
        }
        tx.commit().await.map_err(backend)?;
        Ok(leased)
    }

    async fn ack_dead_letter(&self, receipt: &str) -> Result<(), QueueError> {
        self.remove(receipt, true).await
    }
}
