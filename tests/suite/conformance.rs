//! Runs every port conformance case on the embedded adapters and, when an AWS emulator is
//! configured, on the AWS adapters.

/// Declares one test per case of a conformance suite for one adapter fixture.
macro_rules! suite {
    ($fixture:path, $suite:ident: [$($case:ident),* $(,)?]) => {
        pub mod $suite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    if let Some(adapters) = $fixture().await {
                        mako_tests::conformance::$suite::$case(&adapters).await;
                    }
                }
            )*
        }
    };
}

/// Declares every conformance case for one adapter fixture.
macro_rules! all_suites {
    ($fixture:path) => {
        suite!($fixture, store: [
            put_then_get_round_trips,
            get_missing_returns_none,
            conditional_put_requires_absence,
            conditional_put_requires_presence,
            version_conflict_is_rejected,
            version_condition_on_missing_item_fails,
            delete_honours_conditions,
            query_filters_by_sort_key,
            query_orders_by_utf8_bytes,
            paginates_forwards_and_backwards,
            gsi_queries_cross_partitions,
            gsi_paginates_over_equal_index_keys,
            transaction_applies_every_write,
            failed_transaction_leaves_nothing,
            failed_check_aborts_transaction,
            transaction_limits_are_enforced,
            expired_items_are_invisible,
            expired_items_count_as_absent_for_conditions,
            batch_get_aligns_with_keys,
            oversized_item_is_rejected,
            invalid_cursor_is_rejected,
            counter_increments_and_restarts_after_expiry,
            concurrent_increments_are_atomic,
            concurrent_conditional_puts_admit_one,
            reads_follow_every_write,
            concurrent_reads_never_go_back,
        ]);
        suite!($fixture, blobs: [
            put_then_get_round_trips,
            empty_blob_round_trips,
            byte_ranges_are_served,
            unsatisfiable_range_reports_size,
            missing_blob_is_reported,
            overwrite_replaces_content_and_etag,
            failed_put_keeps_previous_blob,
            multipart_sized_blob_round_trips,
            readers_never_see_partial_blobs,
            delete_and_delete_prefix,
            invalid_keys_are_rejected,
            presigned_url_serves_ranges,
        ]);
        suite!($fixture, queue: [
            send_receive_ack,
            unacknowledged_job_is_redelivered,
            fifo_group_waits_for_leased_job,
            retry_delays_redelivery,
            extend_keeps_job_leased,
            job_is_dead_lettered_after_max_attempts,
            duplicate_send_is_dropped,
            delayed_job_waits,
            receive_waits_for_new_job,
            invalid_requests_are_rejected,
        ]);
        suite!($fixture, secrets: [
            missing_secret_reads_none,
            put_then_get_and_replace,
            secrets_persist_across_instances,
            invalid_names_are_rejected,
            debug_output_hides_value,
        ]);
    };
}

mod embedded {
    all_suites!(mako_tests::fixtures::embedded);
}

mod aws {
    all_suites!(mako_tests::fixtures::aws);
}
