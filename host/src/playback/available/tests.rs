use std::collections::BTreeMap;

use super::*;

fn t(text: &str) -> Ticks90k {
    parse_instant("t", text).unwrap()
}

fn span(a: &str, b: &str) -> Span {
    Span {
        start: t(a),
        end: t(b),
    }
}

fn query(pairs: &[(&str, &str)]) -> Result<AvailabilityQuery, PlaybackError> {
    let params: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    AvailabilityQuery::parse(&params)
}

fn ranges(q: &[(&str, &str)], spans: &[Span]) -> Vec<(String, String)> {
    query(q)
        .unwrap()
        .answer(spans)
        .time_ranges
        .into_iter()
        .map(|r| (r.start, r.end))
        .collect()
}

fn err(q: &[(&str, &str)]) -> PlaybackError {
    query(q).unwrap_err()
}

fn blob(start: Option<(i64, i64)>) -> StoredBlob {
    let mut metadata = BTreeMap::new();
    if let Some((a, b)) = start {
        metadata.insert("start".to_owned(), a.to_string());
        metadata.insert("end".to_owned(), b.to_string());
    }
    StoredBlob {
        name: "a/x.mp4".into(),
        bytes: 1,
        metadata,
    }
}

#[test]
fn precision_is_required_and_must_be_one_of_the_four() {
    let e = err(&[("startTime", "2020")]);
    assert_eq!((e.status(), e.code()), (400, "MissingParameter"));
    assert!(e.to_string().contains("'precision' is required"), "{e}");
    let e = err(&[("precision", "hour")]);
    assert_eq!(e.status(), 400);
    assert!(e.to_string().contains("year, month, day or full"), "{e}");
    assert!(
        query(&[
            ("precision", "Day"),
            ("startTime", "2020-01-01"),
            ("endTime", "2020-01-01")
        ])
        .is_ok()
    );
}

#[test]
fn full_precision_reproduces_lvas_example_with_a_two_second_gap_and_clipping() {
    let spans = [
        span("2019-12-20T22:00:00Z", "2019-12-21T04:01:08Z"),
        span("2019-12-21T04:01:10Z", "2019-12-22T06:00:00Z"),
    ];
    let got = ranges(
        &[
            ("precision", "full"),
            ("startTime", "2019-12-21T00:00:00Z"),
            ("endTime", "2019-12-22T00:00:00Z"),
        ],
        &spans,
    );
    assert_eq!(
        got,
        [
            (
                "2019-12-21T00:00:00.000Z".into(),
                "2019-12-21T04:01:08.000Z".into()
            ),
            (
                "2019-12-21T04:01:10.000Z".into(),
                "2019-12-22T00:00:00.000Z".into()
            ),
        ]
    );
    let json = serde_json::to_string(
        &query(&[
            ("precision", "full"),
            ("startTime", "2019-12-21T04:00:00Z"),
            ("endTime", "2019-12-21T04:01:00Z"),
        ])
        .unwrap()
        .answer(&spans),
    )
    .unwrap();
    assert_eq!(
        json,
        r#"{"timeRanges":[{"start":"2019-12-21T04:00:00.000Z","end":"2019-12-21T04:01:00.000Z"}]}"#
    );
}

#[test]
fn full_precision_needs_both_bounds_in_order_and_at_most_25_hours() {
    let e = err(&[("precision", "full"), ("startTime", "2020-01-01T00:00:00Z")]);
    assert!(
        e.to_string()
            .contains("'endTime' is required for precision=full"),
        "{e}"
    );
    let e = err(&[("precision", "full"), ("endTime", "2020-01-01T00:00:00Z")]);
    assert!(e.to_string().contains("'startTime' is required"), "{e}");
    let same = [
        ("precision", "full"),
        ("startTime", "2020-01-01T00:00:00Z"),
        ("endTime", "2020-01-01T00:00:00Z"),
    ];
    let e = err(&same);
    assert_eq!(e.code(), "InvalidTimeOrder");
    assert!(e.to_string().contains("must be before"), "{e}");
    assert!(
        query(&[
            ("precision", "full"),
            ("startTime", "2020-01-01T00:00:00Z"),
            ("endTime", "2020-01-02T01:00:00Z"),
        ])
        .is_ok()
    );
    let e = err(&[
        ("precision", "full"),
        ("startTime", "2020-01-01T00:00:00Z"),
        ("endTime", "2020-01-02T01:00:00.001Z"),
    ]);
    assert_eq!((e.status(), e.code()), (400, "TimeRangeTooLong"));
    assert!(
        e.to_string()
            .contains("maximum allowed time range for precision=full is 25 hours"),
        "{e}"
    );
}

#[test]
fn full_precision_accepts_rfc3339_offsets_and_bare_dates_and_rejects_other_text() {
    assert_eq!(t("2020-01-01T01:00:00+01:00"), t("2020-01-01T00:00:00Z"));
    assert_eq!(t("2020-01-01"), t("2020-01-01T00:00:00Z"));
    assert_eq!(t("2020-05-12T23:33:09.381Z"), Ticks90k(143_039_375_044_290));
    for bad in [
        "2020-01-01 00:00:00",
        "2020-01-01T00:00Z",
        "yesterday",
        "2020-13-01",
        "2020-02-30",
    ] {
        let e = err(&[
            ("precision", "full"),
            ("startTime", bad),
            ("endTime", "2030-01-01T00:00:00Z"),
        ]);
        assert_eq!((e.status(), e.code()), (400, "InvalidTimeFormat"), "{bad}");
        assert!(e.to_string().contains(&format!("startTime '{bad}'")), "{e}");
    }
}

#[test]
fn day_precision_reproduces_lvas_weekday_example() {
    let mut spans = Vec::new();
    for (a, b) in [(3, 7), (10, 14), (18, 21), (24, 28)] {
        for d in a..=b {
            // Working hours only: gaps inside each day and every night.
            spans.push(span(
                &format!("2020-02-{d:02}T08:00:00Z"),
                &format!("2020-02-{d:02}T17:00:00Z"),
            ));
        }
    }
    let got = ranges(
        &[
            ("precision", "day"),
            ("startTime", "2020-02-01"),
            ("endTime", "2020-02-29"),
        ],
        &spans,
    );
    let want: Vec<(String, String)> = [("03", "07"), ("10", "14"), ("18", "21"), ("24", "28")]
        .iter()
        .map(|(a, b)| (format!("2020-02-{a}"), format!("2020-02-{b}")))
        .collect();
    assert_eq!(got, want);
    // Clipped to the query, bounds inclusive.
    let got = ranges(
        &[
            ("precision", "day"),
            ("startTime", "2020-02-05"),
            ("endTime", "2020-02-10"),
        ],
        &spans,
    );
    assert_eq!(
        got,
        [
            ("2020-02-05".into(), "2020-02-07".into()),
            ("2020-02-10".into(), "2020-02-10".into())
        ]
    );
}

#[test]
fn a_span_ending_exactly_at_midnight_does_not_reach_the_next_day_but_one_crossing_it_does() {
    let q = [
        ("precision", "day"),
        ("startTime", "2020-01-01"),
        ("endTime", "2020-01-31"),
    ];
    let to_midnight = [span("2020-01-01T23:00:00Z", "2020-01-02T00:00:00Z")];
    assert_eq!(
        ranges(&q, &to_midnight),
        [("2020-01-01".into(), "2020-01-01".into())]
    );
    let across = [span("2020-01-01T23:00:00Z", "2020-01-02T00:00:01Z")];
    assert_eq!(
        ranges(&q, &across),
        [("2020-01-01".into(), "2020-01-02".into())]
    );
}

#[test]
fn day_precision_needs_both_dates_in_order_and_at_most_31_days() {
    assert!(
        query(&[
            ("precision", "day"),
            ("startTime", "2020-01-01"),
            ("endTime", "2020-01-31")
        ])
        .is_ok()
    );
    assert!(
        query(&[
            ("precision", "day"),
            ("startTime", "2020-01-05"),
            ("endTime", "2020-01-05")
        ])
        .is_ok()
    );
    let e = err(&[
        ("precision", "day"),
        ("startTime", "2020-01-01"),
        ("endTime", "2020-02-01"),
    ]);
    assert!(e.to_string().contains("precision=day is 31 days"), "{e}");
    let e = err(&[
        ("precision", "day"),
        ("startTime", "2020-01-02"),
        ("endTime", "2020-01-01"),
    ]);
    assert!(
        e.to_string().contains("must be the same as or before"),
        "{e}"
    );
    let e = err(&[("precision", "day"), ("startTime", "2020-01-02")]);
    assert!(
        e.to_string()
            .contains("'endTime' is required for precision=day (YYYY-MM-DD)"),
        "{e}"
    );
    let e = err(&[
        ("precision", "day"),
        ("startTime", "2020-1-2"),
        ("endTime", "2020-01-03"),
    ]);
    assert!(e.to_string().contains("expected YYYY-MM-DD"), "{e}");
    let e = err(&[
        ("precision", "day"),
        ("startTime", "2020-02-01"),
        ("endTime", "2020-02-30"),
    ]);
    assert_eq!(e.code(), "InvalidTimeFormat");
}

#[test]
fn month_precision_groups_months_with_media_and_allows_at_most_12() {
    let spans = [
        span("2019-01-31T23:00:00Z", "2019-02-01T01:00:00Z"),
        span("2019-03-10T00:00:00Z", "2019-03-11T00:00:00Z"),
        span("2019-06-01T00:00:00Z", "2019-08-01T00:00:00Z"),
    ];
    let got = ranges(
        &[
            ("precision", "month"),
            ("startTime", "2019-01"),
            ("endTime", "2019-12"),
        ],
        &spans,
    );
    assert_eq!(
        got,
        [
            ("2019-01".into(), "2019-03".into()),
            ("2019-06".into(), "2019-07".into())
        ]
    );
    let got = ranges(
        &[
            ("precision", "month"),
            ("startTime", "2019-02"),
            ("endTime", "2019-06"),
        ],
        &spans,
    );
    assert_eq!(
        got,
        [
            ("2019-02".into(), "2019-03".into()),
            ("2019-06".into(), "2019-06".into())
        ]
    );
    let e = err(&[
        ("precision", "month"),
        ("startTime", "2019-01"),
        ("endTime", "2020-01"),
    ]);
    assert!(
        e.to_string().contains("precision=month is 12 months"),
        "{e}"
    );
    let e = err(&[
        ("precision", "month"),
        ("startTime", "2019-13"),
        ("endTime", "2019-12"),
    ]);
    assert!(e.to_string().contains("expected YYYY-MM"), "{e}");
    let e = err(&[
        ("precision", "month"),
        ("startTime", "2019-01-01"),
        ("endTime", "2019-12"),
    ]);
    assert_eq!(e.code(), "InvalidTimeFormat");
}

#[test]
fn year_precision_bounds_are_optional_and_default_to_the_recording() {
    let spans = [
        span("2017-12-31T23:00:00Z", "2018-01-01T01:00:00Z"),
        span("2020-05-01T00:00:00Z", "2021-02-01T00:00:00Z"),
    ];
    assert_eq!(
        ranges(&[("precision", "year")], &spans),
        [
            ("2017".into(), "2018".into()),
            ("2020".into(), "2021".into())
        ]
    );
    assert_eq!(
        ranges(&[("precision", "year"), ("startTime", "2018")], &spans),
        [
            ("2018".into(), "2018".into()),
            ("2020".into(), "2021".into())
        ]
    );
    assert_eq!(
        ranges(&[("precision", "year"), ("endTime", "2020")], &spans),
        [
            ("2017".into(), "2018".into()),
            ("2020".into(), "2020".into())
        ]
    );
    assert!(ranges(&[("precision", "year")], &[]).is_empty());
    let e = err(&[
        ("precision", "year"),
        ("startTime", "2021"),
        ("endTime", "2020"),
    ]);
    assert_eq!(e.code(), "InvalidTimeOrder");
    let e = err(&[("precision", "year"), ("startTime", "20")]);
    assert!(e.to_string().contains("expected YYYY"), "{e}");
}

#[test]
fn no_media_in_range_is_an_empty_list_not_an_error() {
    let spans = [span("2020-01-01T00:00:00Z", "2020-01-01T01:00:00Z")];
    let q = [
        ("precision", "full"),
        ("startTime", "2020-01-02T00:00:00Z"),
        ("endTime", "2020-01-02T01:00:00Z"),
    ];
    assert_eq!(
        serde_json::to_string(&query(&q).unwrap().answer(&spans)).unwrap(),
        r#"{"timeRanges":[]}"#
    );
    // Touching the query only at an instant holds no media.
    let q = [
        ("precision", "full"),
        ("startTime", "2020-01-01T01:00:00Z"),
        ("endTime", "2020-01-01T02:00:00Z"),
    ];
    assert!(ranges(&q, &spans).is_empty());
}

#[test]
fn query_keys_are_case_insensitive_as_in_ava() {
    let spans = [span("2020-01-01T00:00:00Z", "2020-01-01T01:00:00Z")];
    let got = ranges(
        &[
            ("precision", "full"),
            ("starttime", "2020-01-01T00:30:00Z"),
            ("endtime", "2020-01-01T02:00:00Z"),
        ],
        &spans,
    );
    assert_eq!(
        got,
        [(
            "2020-01-01T00:30:00.000Z".into(),
            "2020-01-01T01:00:00.000Z".into()
        )]
    );
}

#[test]
fn segments_closer_than_one_frame_merge_and_real_holes_split() {
    let base = Ticks90k::from_secs(1_600_000_000).0;
    let secs = |s: i64| base + s * TICKS_PER_SECOND;
    let blobs = [
        blob(Some((secs(0), secs(30)))),
        blob(Some((secs(30), secs(60)))), // contiguous
        blob(Some((secs(60) + SEAM_TOLERANCE.0, secs(90)))), // within one frame
        blob(Some((secs(92), secs(120)))), // 2 s hole
        blob(Some((secs(100), secs(110)))), // overlap (re-upload)
        blob(None),                       // foreign blob, ignored
    ];
    let spans = recorded_spans("a", &blobs).unwrap();
    assert_eq!(
        spans,
        [
            Span {
                start: Ticks90k(secs(0)),
                end: Ticks90k(secs(90))
            },
            Span {
                start: Ticks90k(secs(92)),
                end: Ticks90k(secs(120))
            },
        ]
    );
}

#[test]
fn unknown_assets_are_404_and_assets_without_span_metadata_are_400() {
    let e = recorded_spans("nothing", &[]).unwrap_err();
    assert_eq!((e.status(), e.code()), (404, "AssetNotFound"));
    let e = recorded_spans("foreign", &[blob(None)]).unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (400, "AssetNotRecordedByMediaGraph")
    );
    assert!(
        e.to_string().contains("not recorded by a media graph"),
        "{e}"
    );
    assert_eq!(e.body()["error"]["code"], "AssetNotRecordedByMediaGraph");
}
