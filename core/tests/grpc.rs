//! The generated client and server talk over a real HTTP/2 connection on 127.0.0.1, with the
//! feature set and message limits `wire` chose.

use std::pin::Pin;
use std::time::Duration;

use hatchery_core::wire::tonic::{self, transport, Request, Response, Status, Streaming};
use hatchery_core::wire::{
    self, proto, Coordinator, CoordinatorClient, CoordinatorServer, MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
};
use proto::{master_message, worker_message};
use tokio_stream::{Stream, StreamExt};

/// Answers a valid `Hello` with a `Welcome`, and refuses anything else as the master would.
struct Master;

#[tonic::async_trait]
impl Coordinator for Master {
    type SessionStream = Pin<Box<dyn Stream<Item = Result<proto::MasterMessage, Status>> + Send>>;

    async fn session(
        &self,
        request: Request<Streaming<proto::WorkerMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let mut from_worker = request.into_inner();
        let first = from_worker
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("no Hello"))?;
        let worker_message::Kind::Hello(hello) = first.into_kind()? else {
            return Err(Status::invalid_argument("the first message must be Hello"));
        };
        wire::check_hello(&hello)?;
        let welcome = master_message::Kind::Welcome(proto::Welcome {
            protocol_version: wire::PROTOCOL_VERSION,
            acked_seq: hello.last_seq,
            ..Default::default()
        });
        let out = tokio_stream::iter([Ok(welcome.into())]);
        Ok(Response::new(Box::pin(out)))
    }
}

async fn serve() -> transport::Endpoint {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let service = CoordinatorServer::new(Master)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    tokio::spawn(transport::Server::builder().serve_with_incoming(service, incoming));
    transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(1))
}

async fn open_session(hello: proto::Hello) -> Result<proto::MasterMessage, Status> {
    let channel = serve().await.connect().await.unwrap();
    let mut client = CoordinatorClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let to_master = tokio_stream::iter([proto::WorkerMessage::from(worker_message::Kind::Hello(
        hello,
    ))]);
    let mut from_master = client.session(to_master).await?.into_inner();
    let reply = from_master.next().await.expect("a reply or a status")?;
    Ok(reply)
}

fn hello(protocol_version: u32) -> proto::Hello {
    proto::Hello {
        protocol_version,
        worker_id: "worker-1".into(),
        last_seq: 41,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_worker_of_our_version_is_welcomed() {
    let reply = tokio::time::timeout(
        Duration::from_secs(5),
        open_session(hello(PROTOCOL_VERSION)),
    )
    .await
    .expect("within 5 s")
    .unwrap();
    let master_message::Kind::Welcome(welcome) = reply.into_kind().unwrap() else {
        panic!("not a Welcome");
    };
    assert_eq!(
        (welcome.protocol_version, welcome.acked_seq),
        (PROTOCOL_VERSION, 41)
    );
}

#[tokio::test]
async fn a_worker_of_another_version_is_refused_naming_both() {
    let status = tokio::time::timeout(
        Duration::from_secs(5),
        open_session(hello(PROTOCOL_VERSION + 1)),
    )
    .await
    .expect("within 5 s")
    .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert!(
        status
            .message()
            .contains(&format!("version {}", PROTOCOL_VERSION + 1))
            && status
                .message()
                .contains(&format!("version {PROTOCOL_VERSION}")),
        "{}",
        status.message()
    );
}
