//! The hand-over's batching, and its fan-out to several sinks: track selection, a stalled
//! sink that costs the others nothing, late joiners.

use super::*;
use crate::events::Body;
use crate::source::{Frame, RunEndReason, TrackCodec, TrackParams};
use crate::time::Ticks90k;
use std::time::Duration;

fn track(codec: TrackCodec) -> TrackParams {
    TrackParams {
        codec,
        clock_rate: crate::time::ClockRate::HZ_90K,
        width: 0,
        height: 0,
        sample_rate: 0,
        channels: 0,
        decoder_config: bytes::Bytes::new(),
        rfc6381: String::new(),
    }
}

fn frame(track: usize, keyframe: bool) -> SourceItem {
    SourceItem::Frame(Frame {
        track,
        media_time: 0,
        decode_time: 0,
        wall: Ticks90k(0),
        keyframe,
        data: bytes::Bytes::new(),
        new_params: None,
    })
}

/// What the recorder receives for `items`: the length of each batch.
async fn batch_lengths(items: Vec<SourceItem>) -> Vec<usize> {
    let (mut handoff, mut rx) = channel(1000);
    for item in items {
        handoff.send(item).await.unwrap();
    }
    drop(handoff);
    let mut lengths = Vec::new();
    while let Some(b) = rx.recv().await {
        lengths.push(b.len());
    }
    lengths
}

#[tokio::test]
async fn a_batch_ends_with_the_frame_that_completes_a_group_of_pictures() {
    let tracks = vec![track(TrackCodec::H264), track(TrackCodec::Aac)];
    let mut items = vec![SourceItem::RunStarted { tracks }];
    for gop in 0..2 {
        items.push(frame(0, true));
        items.push(frame(1, true)); // audio frames are keyframes too, but never close
        items.push(frame(0, false));
        items.push(frame(0, false));
        if gop == 1 {
            items.push(SourceItem::RunEnded {
                reason: RunEndReason::Stalled,
            });
        }
    }
    // RunStarted | K A P(closes) | P K A P(closes) | P RunEnded
    assert_eq!(batch_lengths(items).await, vec![1, 3, 4, 2]);
}

#[tokio::test]
async fn a_long_group_of_pictures_goes_in_bounded_batches() {
    let mut items = vec![SourceItem::RunStarted {
        tracks: vec![track(TrackCodec::H265)],
    }];
    items.push(frame(0, true));
    items.extend((0..150).map(|_| frame(0, false)));
    assert_eq!(
        batch_lengths(items).await,
        vec![1, 2, MAX_BATCH_ITEMS, MAX_BATCH_ITEMS]
    );
}

fn frame_at(track: usize, keyframe: bool, t: i64) -> SourceItem {
    SourceItem::Frame(Frame {
        track,
        media_time: t,
        decode_time: t,
        wall: Ticks90k(t),
        keyframe,
        data: bytes::Bytes::from_static(b"frame"),
        new_params: None,
    })
}

/// `gops` groups of pictures of `per_gop` video frames (a keyframe first), each video frame
/// followed by an audio frame, times counting up from `from`.
fn gops(from: i64, gops: usize, per_gop: usize) -> Vec<SourceItem> {
    let mut items = Vec::new();
    for g in 0..gops {
        for i in 0..per_gop {
            let t = from + ((g * per_gop + i) as i64) * 3600;
            items.push(frame_at(0, i == 0, t));
            items.push(frame_at(1, true, t));
        }
    }
    items
}

/// Everything queued for one sink so far, without waiting.
fn drain(rx: &mut Batches) -> Vec<SourceItem> {
    let mut items = Vec::new();
    while let Ok(batch) = rx.try_recv() {
        items.extend(batch);
    }
    items
}

fn frames(items: &[SourceItem]) -> Vec<(usize, i64, bool)> {
    items
        .iter()
        .filter_map(|i| match i {
            SourceItem::Frame(f) => Some((f.track, f.media_time, f.keyframe)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn each_sink_gets_the_tracks_it_takes_from_one_session() {
    let events = EventBus::new();
    let (mut handoff, joiner) = fan_out(2, events);
    let (both, mut both_rx) = feed("/s/both".into(), true, 64);
    let (video, mut video_rx) = feed("/s/video".into(), false, 64);
    joiner.join(both);
    joiner.join(video);
    drop(joiner);
    let tracks = vec![track(TrackCodec::H264), track(TrackCodec::Aac)];
    handoff
        .send(SourceItem::RunStarted { tracks })
        .await
        .unwrap();
    for item in gops(0, 2, 5) {
        handoff.send(item).await.unwrap();
    }
    handoff
        .send(SourceItem::RunEnded {
            reason: RunEndReason::Stalled,
        })
        .await
        .unwrap();
    let both = drain(&mut both_rx);
    let video = drain(&mut video_rx);
    let SourceItem::RunStarted { tracks } = &video[0] else {
        panic!("{video:?}")
    };
    assert_eq!(tracks.len(), 1, "the video-only sink has one track");
    assert!(tracks[0].is_video());
    assert_eq!(frames(&both).len(), 20);
    assert_eq!(
        frames(&video),
        frames(&both)
            .into_iter()
            .filter(|(t, _, _)| *t == 0)
            .collect::<Vec<_>>(),
        "the same video frames, audio left out"
    );
    assert!(matches!(
        video.last(),
        Some(SourceItem::RunEnded {
            reason: RunEndReason::Stalled
        })
    ));
}

#[tokio::test]
async fn a_stalled_sink_loses_frames_alone_and_resumes_at_a_keyframe() {
    let events = EventBus::new();
    let mut diagnostics = events.subscribe();
    let (mut handoff, joiner) = fan_out(2, events);
    let (fast, mut fast_rx) = feed("/s/fast".into(), true, 4);
    let (slow, mut slow_rx) = feed("/s/slow".into(), true, 4);
    joiner.join(fast);
    joiner.join(slow);
    drop(joiner);
    let tracks = vec![track(TrackCodec::H264), track(TrackCodec::Aac)];
    let mut fast_items = Vec::new();
    let mut send =
        async |handoff: &mut Handoff, item: SourceItem, fast_items: &mut Vec<SourceItem>| {
            // Never waits: the stalled sink's full queue does not hold the session.
            tokio::time::timeout(Duration::from_secs(5), handoff.send(item))
                .await
                .expect("a send never waits for the stalled sink")
                .unwrap();
            fast_items.extend(drain(&mut fast_rx));
        };
    send(
        &mut handoff,
        SourceItem::RunStarted { tracks },
        &mut fast_items,
    )
    .await;
    // 20 GOPs while the slow sink reads nothing: its 4 batches fill, the rest is dropped.
    for item in gops(0, 20, 5) {
        send(&mut handoff, item, &mut fast_items).await;
    }
    let stalled = drain(&mut slow_rx);
    // The slow sink reads again: it resumes at the next keyframe, in a new run.
    let mut resumed = Vec::new();
    let end = SourceItem::RunEnded {
        reason: RunEndReason::Stalled,
    };
    for item in gops(20 * 5 * 3600, 3, 5).into_iter().chain([end]) {
        send(&mut handoff, item, &mut fast_items).await;
        resumed.extend(drain(&mut slow_rx));
    }

    assert_eq!(
        frames(&fast_items).len(),
        230,
        "the fast sink got every frame"
    );
    let slow_frames = frames(&stalled).len();
    assert!(slow_frames < 40, "{slow_frames} frames fit 4 batches");
    let SourceItem::RunEnded {
        reason: RunEndReason::SinkBehind { frames: dropped },
    } = &resumed[0]
    else {
        panic!("the slow sink's lost run ends first: {:?}", &resumed[..2]);
    };
    assert!(matches!(resumed[1], SourceItem::RunStarted { .. }));
    let first = frames(&resumed)[0];
    assert_eq!(first, (0, 20 * 5 * 3600, true), "it resumes at a keyframe");
    assert_eq!(
        slow_frames as u64 + dropped + frames(&resumed).len() as u64,
        230,
        "every frame is either recorded or counted as dropped"
    );
    let dropped_events: Vec<Event> = std::iter::from_fn(|| diagnostics.try_recv().ok())
        .filter(|e| matches!(e.body, Body::DataDropped(_)))
        .collect();
    assert_eq!(dropped_events.len(), 1, "one DataDropped per episode");
    assert_eq!(dropped_events[0].subject, "/s/slow");
    let Body::DataDropped(d) = &dropped_events[0].body else {
        unreachable!()
    };
    assert_eq!(d.reason, "sinkBehind");
    assert!(d.bytes > 0, "{d:?}");
}

#[tokio::test]
async fn a_sink_joining_mid_run_starts_at_the_next_keyframe_with_current_parameters() {
    let (mut handoff, joiner) = fan_out(2, EventBus::new());
    let (first, mut first_rx) = feed("/s/1".into(), true, 64);
    joiner.join(first);
    let tracks = vec![track(TrackCodec::H264)];
    handoff
        .send(SourceItem::RunStarted { tracks })
        .await
        .unwrap();
    let mut items = gops(0, 2, 5)
        .into_iter()
        .filter(|i| matches!(i, SourceItem::Frame(f) if f.track == 0))
        .collect::<Vec<_>>();
    // The second GOP's keyframe carries new parameters.
    if let SourceItem::Frame(f) = &mut items[5] {
        let mut p = track(TrackCodec::H264);
        p.width = 1280;
        f.new_params = Some(p);
    }
    for item in items.drain(..3) {
        handoff.send(item).await.unwrap();
    }
    let (late, mut late_rx) = feed("/s/2".into(), true, 64);
    joiner.join(late);
    for item in items {
        handoff.send(item).await.unwrap();
    }
    let end = SourceItem::RunEnded {
        reason: RunEndReason::Stalled,
    };
    handoff.send(end).await.unwrap();
    drop(joiner);
    let late = drain(&mut late_rx);
    let SourceItem::RunStarted { tracks } = &late[0] else {
        panic!("{late:?}")
    };
    assert_eq!(tracks[0].width, 1280, "the newest parameters of the run");
    assert_eq!(frames(&late)[0], (0, 5 * 3600, true));
    assert_eq!(frames(&drain(&mut first_rx)).len(), 10);
}
