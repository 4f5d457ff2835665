//! Arbitrary bytes as everything a client sends after the handshake.
//!
//! Each input drives a fresh [`Session`] on a fresh vhost the way the
//! connection task does: frames are split off the input and handled, the
//! mailbox is drained into the session, and the batch is ended. No socket and
//! no runtime are involved (queue timers simply never fire), so a run is
//! deterministic. Besides "no panic, no hang", everything the broker writes
//! must be well-formed: frames within the negotiated frame_max whose methods
//! decode.
//!
//! Durable queues write to a real message store in a temporary directory; the
//! harness deletes them after each input so the store does not grow.

#![no_main]

use std::sync::{Arc, OnceLock};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use warren::auth::{Access, AccessControl, DefaultUser};
use warren::broker::vhost::{Durability, VHost};
use warren::config::{Config, Overrides};
use warren::protocol::frame::{FRAME_METHOD, decode_method, split_frame};
use warren::server::connection::ConnectionSettings;
use warren::server::handshake::Limits;
use warren::server::session::{Phase, Session, Tuning};
use warren::store::definitions::DefinitionStore;
use warren::store::{Store, SyncPolicy};

/// The broker-wide parts every input's vhost shares, opened once per process.
struct Shared {
    durability: Durability,
    /// The default user, with full permissions on `/`.
    access: Access,
    settings: ConnectionSettings,
    next_connection: AtomicU64,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let config = Config::load(Overrides::default()).expect("default configuration");
        let dir = std::env::temp_dir().join(format!("warren-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let saved =
            Arc::new(DefinitionStore::open(&dir).expect("definitions in a temporary directory"));
        let default_user = DefaultUser {
            name: config.default_user.clone(),
            password: config.default_pass.clone(),
        };
        let control = AccessControl::restore(saved.clone(), Some(&default_user));
        let access = Access::new(Arc::new(control), &default_user.name, "/");
        let policy = SyncPolicy::Interval(Duration::from_secs(1));
        let (store, _) = Store::open(&dir.join("messages"), policy, config.queue_in_memory_limit)
            .expect("message store in a temporary directory");
        Shared {
            durability: Durability {
                store,
                saved,
                in_memory_limit: config.queue_in_memory_limit,
            },
            access,
            settings: ConnectionSettings {
                limits: Limits {
                    channel_max: config.channel_max,
                    frame_max: config.frame_max,
                    heartbeat: config.heartbeat,
                },
                max_message_size: config.max_message_size,
                consumer_timeout: Some(Duration::from_millis(config.consumer_timeout_ms)),
            },
            next_connection: AtomicU64::new(1),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let shared = shared();
    let vhost = VHost::new("/", shared.durability.clone());
    let limits = shared.settings.limits;
    // What a client that accepts the server's offer negotiates.
    let tuning = Tuning {
        channel_max: limits.channel_max,
        frame_max: limits.frame_max,
        heartbeat: limits.heartbeat,
    };
    let id = shared.next_connection.fetch_add(1, Ordering::Relaxed);
    let mut session = Session::new(
        id,
        shared.access.clone(),
        vhost.clone(),
        tuning,
        true,
        shared.settings,
    );
    // The mailbox's receiving end, once a consumer has created the mailbox.
    let mut events = None;
    let mut inbuf = BytesMut::from(data);
    session.begin_batch(Instant::now());
    while session.phase() != Phase::Closed {
        match split_frame(&mut inbuf, tuning.frame_max) {
            Ok(Some(frame)) => session.handle_frame(frame),
            Ok(None) => break,
            Err(error) => {
                session.close(error);
                break;
            }
        }
        // One frame per batch, so deliveries interleave with the client's frames.
        if events.is_none() {
            events = session.take_events();
        }
        let mut taken = 0;
        while let Some(event) = events.as_mut().and_then(|e| e.try_recv().ok()) {
            session.handle_event(event);
            taken += 1;
        }
        session.events_taken(taken);
        session.end_of_batch();
        if session.awaits_disk() {
            // As if the store had caught up: releases confirms of persistent messages.
            session.disk_synced(u64::MAX);
            session.end_of_batch();
        }
        check_output(&mut session.out, tuning.frame_max);
    }
    session.release_channels();
    check_output(&mut session.out, tuning.frame_max);
    delete_durable_queues(&vhost, &shared.durability.saved);
});

/// Everything the broker wrote splits into frames and its methods decode.
fn check_output(out: &mut BytesMut, frame_max: u32) {
    while let Some(frame) = split_frame(out, frame_max).expect("Warren writes valid frames") {
        if frame.kind == FRAME_METHOD {
            decode_method(&frame.payload).expect("Warren's methods decode");
        }
    }
    assert!(out.is_empty(), "Warren wrote a partial frame");
}

/// Deletes the durable queues the input declared, releasing their stored messages.
fn delete_durable_queues(vhost: &VHost, saved: &DefinitionStore) {
    let durable = saved.vhosts().remove("/").unwrap_or_default().queues;
    for definition in durable {
        if let Ok(queue) = vhost.queue(&definition.name) {
            vhost.remove_queue(&queue);
        }
    }
}
