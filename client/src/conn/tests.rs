//! The connection driver against a scripted fake broker on loopback: pipelining, routing by
//! correlation id, and the failure rules (every waiter fails when the connection dies; a
//! request timeout closes the connection).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use bytes::BytesMut;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{
    ApiVersionsResponse, MetadataRequest, MetadataResponse, ResponseKind,
};
use sluice_protocol::frame::FrameDecoder;
use sluice_protocol::messages::{decode_request, encode_response, ApiKey, RequestKind};
use sluice_protocol::versions::SUPPORTED;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{ConnectOptions, Connection};
use crate::error::Error;

/// How the fake broker answers Metadata requests.
#[derive(Clone, Copy)]
enum Script {
    /// Collect `n` requests, then answer them in reverse order (controller id = correlation
    /// id, so each answer says which request it belongs to).
    Reverse(usize),
    /// Never answer Metadata.
    Silent,
    /// Close the socket after reading the first Metadata request.
    Hangup,
}

fn options() -> ConnectOptions {
    ConnectOptions {
        client_id: "test".into(),
        connect_timeout: Duration::from_secs(5),
        max_in_flight: 16,
        max_frame_size: 1 << 20,
        security: Default::default(),
    }
}

async fn fake_broker(script: Script) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        serve(socket, script).await;
    });
    addr
}

async fn serve(mut socket: TcpStream, script: Script) {
    let mut decoder = FrameDecoder::new(1 << 20);
    let mut buf = BytesMut::new();
    let mut held: Vec<(i32, i16)> = Vec::new();
    loop {
        while let Some(frame) = decoder.decode(&mut buf).unwrap() {
            let (header, body) = decode_request(frame).unwrap();
            let (id, version) = (header.correlation_id, header.request_api_version);
            let mut out = BytesMut::new();
            match body {
                RequestKind::ApiVersions(_) => {
                    let keys = SUPPORTED
                        .iter()
                        .map(|r| {
                            ApiVersion::default()
                                .with_api_key(r.api as i16)
                                .with_min_version(r.min)
                                .with_max_version(r.max)
                        })
                        .collect();
                    let response = ApiVersionsResponse::default().with_api_keys(keys);
                    encode_response(
                        &mut out,
                        id,
                        ApiKey::ApiVersions,
                        version,
                        &ResponseKind::ApiVersions(response),
                    )
                    .unwrap();
                }
                RequestKind::Metadata(_) => match script {
                    Script::Reverse(n) => {
                        held.push((id, version));
                        if held.len() == n {
                            for (id, version) in held.drain(..).rev() {
                                out.extend_from_slice(&metadata_answer(id, version));
                            }
                        }
                    }
                    Script::Silent => {}
                    Script::Hangup => return,
                },
                other => panic!("unexpected request {other:?}"),
            }
            socket.write_all(&out).await.unwrap();
        }
        if socket.read_buf(&mut buf).await.unwrap_or(0) == 0 {
            return;
        }
    }
}

fn metadata_answer(correlation_id: i32, version: i16) -> BytesMut {
    let response = MetadataResponse::default().with_controller_id(correlation_id.into());
    let mut out = BytesMut::new();
    encode_response(
        &mut out,
        correlation_id,
        ApiKey::Metadata,
        version,
        &ResponseKind::Metadata(response),
    )
    .unwrap();
    out
}

#[tokio::test]
async fn pipelined_requests_are_routed_by_correlation_id_even_out_of_order() {
    let addr = fake_broker(Script::Reverse(8)).await;
    let conn = Connection::connect(&addr, &options()).await.unwrap();
    assert!(conn.versions().get(ApiKey::Metadata).is_ok());
    let request = MetadataRequest::default();
    let sends = (0..8).map(|_| conn.send(&request, Duration::from_secs(5)));
    let responses = futures::future::join_all(sends).await;
    let mut controllers: Vec<i32> = responses
        .into_iter()
        .map(|r| r.unwrap().controller_id.0)
        .collect();
    controllers.sort_unstable();
    // The handshake used id 0; each answer carries its own request's id back.
    assert_eq!(controllers, (1..=8).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_hangup_fails_every_pending_request_and_later_ones() {
    let addr = fake_broker(Script::Hangup).await;
    let conn = Connection::connect(&addr, &options()).await.unwrap();
    let request = MetadataRequest::default();
    let (a, b) = tokio::join!(
        conn.send(&request, Duration::from_secs(5)),
        conn.send(&request, Duration::from_secs(5))
    );
    for result in [a, b] {
        let err = result.unwrap_err();
        assert!(err.is_indefinite(), "{err}");
    }
    assert!(conn.is_closed());
    // A closed connection never reopens: later requests get the error it closed with.
    let err = conn
        .send(&request, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(err.is_indefinite(), "{err}");
}

#[tokio::test]
async fn a_timed_out_request_closes_the_connection() {
    let addr = fake_broker(Script::Silent).await;
    let conn = Connection::connect(&addr, &options()).await.unwrap();
    let request = MetadataRequest::default();
    let slow = conn.send(&request, Duration::from_secs(30));
    let quick = async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        conn.send(&request, Duration::from_millis(50)).await
    };
    let (slow, quick) = tokio::join!(slow, quick);
    assert!(matches!(quick.unwrap_err(), Error::Timeout { .. }));
    let err = slow.unwrap_err();
    assert!(
        matches!(&err, Error::Disconnected { reason, .. } if reason.contains("timed out")),
        "{err}"
    );
    assert!(conn.is_closed());
}

#[tokio::test]
async fn connecting_to_a_closed_port_is_an_io_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let err = Connection::connect(&addr, &options()).await.unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
}

#[tokio::test]
async fn a_connection_closed_during_api_versions_is_a_retriable_disconnect() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 64];
        let _ = socket.read(&mut buf).await;
        drop(socket);
    });
    let err = Connection::connect(&addr, &options()).await.unwrap_err();
    // A pre-0.10 broker and a connection cut mid-handshake look the same: retry, and say so.
    assert!(err.is_retriable() && !err.is_fatal(), "{err}");
    assert!(err.to_string().contains("older than Kafka 0.10"), "{err}");
}
