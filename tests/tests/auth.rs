//! Authentication and authorization end to end, over a real loopback
//! server: the authorization matrix (every RPC of every `ledger.v1`
//! service × eight callers, from one table checked against the compiled
//! service descriptors), namespace isolation of reads, subscriptions and
//! bundles under concurrent load, revocation without a restart, and a
//! server that refuses a broken principals file.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use chrono::Utc;
use ledger_client::proto::{
    self, admin_client::AdminClient, bundles_client::BundlesClient, ledger_client::LedgerClient,
    projections_client::ProjectionsClient,
};
use ledger_client::{Client, ClientError};
use ledger_server::auth::{Grant, Principals};
use ledger_tests::server::{TestServer, server_config};
use prost::Message as _;
use tokio_stream::StreamExt as _;
use tonic::transport::Channel;
use tonic::{Code, Request};

/// The callers of the matrix, in column order.
const CASES: [&str; 8] = [
    "no key",
    "bad key",
    "expired",
    "revoked",
    "read-only",
    "append-only",
    "other namespace",
    "admin",
];

const U: Code = Code::Unauthenticated;
const PD: Code = Code::PermissionDenied;
const NF: Code = Code::NotFound;
const OK: Code = Code::Ok;

/// Every RPC and the code each caller gets. The namespace under test is
/// `ops-hub`: read-only holds `ops-hub:read`, append-only `ops-hub:append`,
/// other namespace `ci:read,append`, admin `*:admin`; the bad key is the
/// admin key with one secret digit changed, and the expired and revoked
/// keys belong to a principal holding `*:admin`. [`call`] makes each
/// request; the test fails for an RPC of the descriptors without a row.
const MATRIX: &[(&str, [Code; 8])] = &[
    ("/ledger.v1.Ledger/Append", [U, U, U, U, PD, OK, PD, OK]),
    ("/ledger.v1.Ledger/AppendStream", [U, U, U, U, PD, OK, PD, OK]),
    ("/ledger.v1.Ledger/Read", [U, U, U, U, OK, PD, PD, OK]),
    ("/ledger.v1.Ledger/Subscribe", [U, U, U, U, OK, PD, PD, OK]),
    ("/ledger.v1.Ledger/GetRecord", [U, U, U, U, OK, PD, PD, OK]),
    ("/ledger.v1.Ledger/GetCheckpoint", [U, U, U, U, OK, OK, OK, OK]),
    ("/ledger.v1.Ledger/GetInclusionProof", [U, U, U, U, OK, OK, PD, OK]),
    ("/ledger.v1.Ledger/GetConsistencyProof", [U, U, U, U, OK, OK, OK, OK]),
    ("/ledger.v1.Ledger/GetLedgerInfo", [U, U, U, U, OK, OK, OK, OK]),
    ("/ledger.v1.Projections/GetStatus", [U, U, U, U, PD, PD, PD, OK]),
    ("/ledger.v1.Projections/ListFaults", [U, U, U, U, PD, PD, PD, OK]),
    ("/ledger.v1.Projections/Replay", [U, U, U, U, PD, PD, PD, OK]),
    ("/ledger.v1.Projections/Query", [U, U, U, U, PD, PD, PD, OK]),
    ("/ledger.v1.Bundles/Create", [U, U, U, U, OK, PD, PD, OK]),
    ("/ledger.v1.Bundles/Get", [U, U, U, U, OK, PD, NF, OK]),
    ("/ledger.v1.Bundles/List", [U, U, U, U, OK, PD, OK, OK]),
    ("/ledger.v1.Admin/ListPrincipals", [U, U, U, U, PD, PD, PD, OK]),
    ("/ledger.v1.Admin/CreatePrincipal", [U, U, U, U, PD, PD, PD, OK]),
    ("/ledger.v1.Admin/CreateKey", [U, U, U, U, PD, PD, PD, OK]),
    ("/ledger.v1.Admin/RevokeKey", [U, U, U, U, PD, PD, PD, OK]),
    ("/ledger.v1.Admin/RevokePrincipal", [U, U, U, U, PD, PD, PD, OK]),
    ("/ledger.v1.Admin/SetGrants", [U, U, U, U, PD, PD, PD, OK]),
    ("/ledger.v1.Admin/AddProducerKey", [U, U, U, U, PD, PD, PD, OK]),
    ("/ledger.v1.Admin/RevokeProducerKey", [U, U, U, U, PD, PD, PD, OK]),
    ("/ledger.v1.Admin/ListNamespaces", [U, U, U, U, OK, OK, OK, OK]),
    ("/ledger.v1.Admin/SetNamespacePolicy", [U, U, U, U, PD, PD, PD, OK]),
    ("/ledger.v1.Admin/SetVocabulary", [U, U, U, U, PD, PD, PD, OK]),
    // The admin cell really rotates the signing key (the rest only read
    // codes, whichever key signs).
    ("/ledger.v1.Admin/RotateSigningKey", [U, U, U, U, PD, PD, PD, OK]),
];

/// Guards against a hang (a subscription that never delivers); never an
/// assertion on how long anything takes.
const HANG: Duration = Duration::from_secs(120);

/// Adds principal `name` with `grants` and one key; returns the key.
fn add(principals: &mut Principals, name: &str, grants: &[&str]) -> anyhow::Result<String> {
    let grants = grants.iter().map(|g| Grant::parse(g)).collect::<Result<Vec<_>, _>>()?;
    principals.add_principal(name, grants)?;
    Ok(principals.add_key(name, Utc::now(), None)?.expose().to_string())
}

/// `key` with its last secret digit changed.
fn wrong_secret(key: &str) -> String {
    let last = if key.ends_with('0') { '1' } else { '0' };
    format!("{}{last}", &key[..key.len() - 1])
}

/// The methods of every `ledger.v1` service, as gRPC paths, from the
/// descriptor set the server registers for reflection.
fn offered_methods() -> anyhow::Result<BTreeSet<String>> {
    let set = prost_types::FileDescriptorSet::decode(proto::FILE_DESCRIPTOR_SET)?;
    let mut methods = BTreeSet::new();
    for file in set.file.iter().filter(|f| f.package() == "ledger.v1") {
        for service in &file.service {
            for method in &service.method {
                methods.insert(format!("/ledger.v1.{}/{}", service.name(), method.name()));
            }
        }
    }
    ensure!(methods.len() >= 16, "descriptor set lists only {methods:?}");
    Ok(methods)
}

/// `message` with `authorization: Bearer <key>` when a key is given.
fn req<T>(message: T, key: Option<&str>) -> anyhow::Result<Request<T>> {
    let mut request = Request::new(message);
    if let Some(key) = key {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {key}").parse()?);
    }
    Ok(request)
}

fn unary<T>(result: Result<tonic::Response<T>, tonic::Status>) -> Code {
    result.err().map_or(OK, |s| s.code())
}

/// The code of a streaming call: the call's, else the first message's.
async fn first<T>(result: Result<tonic::Response<tonic::Streaming<T>>, tonic::Status>) -> anyhow::Result<Code> {
    let mut stream = match result {
        Ok(response) => response.into_inner(),
        Err(status) => return Ok(status.code()),
    };
    let message = tokio::time::timeout(HANG, stream.message()).await?;
    Ok(message.err().map_or(OK, |s| s.code()))
}

/// The code of a streaming call read to its end.
async fn drain<T>(result: Result<tonic::Response<tonic::Streaming<T>>, tonic::Status>) -> anyhow::Result<Code> {
    let mut stream = match result {
        Ok(response) => response.into_inner(),
        Err(status) => return Ok(status.code()),
    };
    loop {
        match tokio::time::timeout(HANG, stream.message()).await? {
            Ok(Some(_)) => {}
            Ok(None) => return Ok(OK),
            Err(status) => return Ok(status.code()),
        }
    }
}

fn ops_event(n: u64) -> proto::Event {
    ledger_client::event(
        "ops-hub/probe",
        "ops.health_checked",
        format!("{{\"run\":{n}}}").into_bytes(),
    )
}

fn append_request(n: u64) -> proto::AppendRequest {
    proto::AppendRequest {
        events: vec![ops_event(n)],
        ..Default::default()
    }
}

/// What the matrix calls refer to.
struct Seeded {
    channel: Channel,
    /// A record in `ops-hub`.
    ops_seq: u64,
    /// A bundle of `ops-hub` records.
    bundle_id: String,
    /// The admin's key: makes what a revocation cell revokes.
    admin_key: String,
}

/// A producer public key for cell `n` (any valid point will do).
fn producer_public_key(n: u64) -> Vec<u8> {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&n.to_le_bytes());
    ed25519_dalek::SigningKey::from_bytes(&seed)
        .verifying_key()
        .as_bytes()
        .to_vec()
}

/// Makes the request of `method` as the caller holding `key`; returns the
/// status code it got.
async fn call(seeded: &Seeded, method: &str, key: Option<&str>, n: u64) -> anyhow::Result<Code> {
    let mut ledger = LedgerClient::new(seeded.channel.clone());
    let mut projections = ProjectionsClient::new(seeded.channel.clone());
    let mut bundles = BundlesClient::new(seeded.channel.clone());
    let mut admin = AdminClient::new(seeded.channel.clone());
    let admin_key = Some(seeded.admin_key.as_str());
    Ok(match method {
        "/ledger.v1.Ledger/Append" => unary(ledger.append(req(append_request(n), key)?).await),
        "/ledger.v1.Ledger/AppendStream" => {
            let outbound = tokio_stream::iter(vec![append_request(n)]);
            match ledger.append_stream(req(outbound, key)?).await {
                Err(status) => status.code(),
                Ok(response) => match tokio::time::timeout(HANG, response.into_inner().message()).await? {
                    Err(status) => status.code(),
                    Ok(Some(answer)) => answer.error.map_or(OK, |e| Code::from(e.code)),
                    Ok(None) => bail!("AppendStream closed without an answer"),
                },
            }
        }
        "/ledger.v1.Ledger/Read" => {
            let read = proto::ReadRequest {
                stream: "ops-hub/probe".to_string(),
                ..Default::default()
            };
            drain(ledger.read(req(read, key)?).await).await?
        }
        "/ledger.v1.Ledger/Subscribe" => {
            let subscribe = proto::SubscribeRequest {
                stream_prefix: "ops-hub/".to_string(),
                ..Default::default()
            };
            first(ledger.subscribe(req(subscribe, key)?).await).await?
        }
        "/ledger.v1.Ledger/GetRecord" => {
            let get = proto::GetRecordRequest {
                key: Some(proto::get_record_request::Key::Seq(seeded.ops_seq)),
            };
            unary(ledger.get_record(req(get, key)?).await)
        }
        "/ledger.v1.Ledger/GetCheckpoint" => unary(
            ledger
                .get_checkpoint(req(proto::GetCheckpointRequest::default(), key)?)
                .await,
        ),
        "/ledger.v1.Ledger/GetInclusionProof" => {
            let prove = proto::GetInclusionProofRequest {
                seq: seeded.ops_seq,
                tree_size: None,
            };
            unary(ledger.get_inclusion_proof(req(prove, key)?).await)
        }
        "/ledger.v1.Ledger/GetConsistencyProof" => {
            let prove = proto::GetConsistencyProofRequest {
                old_size: 1,
                new_size: None,
            };
            unary(ledger.get_consistency_proof(req(prove, key)?).await)
        }
        "/ledger.v1.Ledger/GetLedgerInfo" => {
            unary(ledger.get_ledger_info(req(proto::GetLedgerInfoRequest {}, key)?).await)
        }
        "/ledger.v1.Projections/GetStatus" => unary(
            projections
                .get_status(req(proto::GetStatusRequest::default(), key)?)
                .await,
        ),
        "/ledger.v1.Projections/ListFaults" => {
            let list = proto::ListFaultsRequest {
                name: "subjects".to_string(),
                ..Default::default()
            };
            unary(projections.list_faults(req(list, key)?).await)
        }
        "/ledger.v1.Projections/Replay" => {
            let replay = proto::ReplayRequest {
                name: "subjects".to_string(),
                from_seq: 0,
            };
            drain(projections.replay(req(replay, key)?).await).await?
        }
        "/ledger.v1.Projections/Query" => {
            let query = proto::QueryRequest {
                view: "tasks".to_string(),
                ..Default::default()
            };
            unary(projections.query(req(query, key)?).await)
        }
        "/ledger.v1.Bundles/Create" => {
            let create = proto::CreateBundleRequest {
                selector: [("stream".to_string(), "ops-hub/probe".to_string())].into(),
                ..Default::default()
            };
            unary(bundles.create(req(create, key)?).await)
        }
        "/ledger.v1.Bundles/Get" => {
            let get = proto::GetBundleRequest {
                bundle_id: seeded.bundle_id.clone(),
            };
            drain(bundles.get(req(get, key)?).await).await?
        }
        "/ledger.v1.Bundles/List" => unary(bundles.list(req(proto::ListBundlesRequest {}, key)?).await),
        "/ledger.v1.Admin/ListPrincipals" => {
            unary(admin.list_principals(req(proto::ListPrincipalsRequest {}, key)?).await)
        }
        "/ledger.v1.Admin/CreatePrincipal" => {
            let create = proto::CreatePrincipalRequest {
                name: format!("matrix-{n}"),
                grants: vec!["ops-hub:read".to_string()],
                expires_in_days: 1,
            };
            unary(admin.create_principal(req(create, key)?).await)
        }
        "/ledger.v1.Admin/CreateKey" => {
            let create = proto::CreateKeyRequest {
                name: "read-only".to_string(),
                expires_in_days: 1,
            };
            unary(admin.create_key(req(create, key)?).await)
        }
        "/ledger.v1.Admin/RevokeKey" => {
            let create = proto::CreateKeyRequest {
                name: "read-only".to_string(),
                expires_in_days: 1,
            };
            let made = admin.create_key(req(create, admin_key)?).await?.into_inner();
            let revoke = proto::RevokeKeyRequest { key_id: made.key_id };
            unary(admin.revoke_key(req(revoke, key)?).await)
        }
        "/ledger.v1.Admin/RevokePrincipal" => {
            let create = proto::CreatePrincipalRequest {
                name: format!("doomed-{n}"),
                grants: vec!["ops-hub:read".to_string()],
                expires_in_days: 1,
            };
            admin.create_principal(req(create, admin_key)?).await?;
            let revoke = proto::RevokePrincipalRequest {
                name: format!("doomed-{n}"),
            };
            unary(admin.revoke_principal(req(revoke, key)?).await)
        }
        "/ledger.v1.Admin/SetGrants" => {
            let set = proto::SetGrantsRequest {
                name: "read-only".to_string(),
                grants: vec!["ops-hub:read".to_string(), format!("matrix-{n}:read")],
            };
            unary(admin.set_grants(req(set, key)?).await)
        }
        "/ledger.v1.Admin/AddProducerKey" => {
            let add = proto::AddProducerKeyRequest {
                name: "append-only".to_string(),
                key_id: format!("matrix-{n}"),
                public_key: producer_public_key(n),
            };
            unary(admin.add_producer_key(req(add, key)?).await)
        }
        "/ledger.v1.Admin/RevokeProducerKey" => {
            let add = proto::AddProducerKeyRequest {
                name: "append-only".to_string(),
                key_id: format!("matrix-{n}"),
                public_key: producer_public_key(n),
            };
            admin.add_producer_key(req(add, admin_key)?).await?;
            let revoke = proto::RevokeProducerKeyRequest {
                key_id: format!("matrix-{n}"),
            };
            unary(admin.revoke_producer_key(req(revoke, key)?).await)
        }
        "/ledger.v1.Admin/ListNamespaces" => {
            unary(admin.list_namespaces(req(proto::ListNamespacesRequest {}, key)?).await)
        }
        "/ledger.v1.Admin/SetNamespacePolicy" => {
            let set = proto::SetNamespacePolicyRequest {
                namespace: format!("matrix-{n}"),
                require_signatures: true,
            };
            unary(admin.set_namespace_policy(req(set, key)?).await)
        }
        "/ledger.v1.Admin/SetVocabulary" => {
            let set = proto::SetVocabularyRequest {
                namespace: format!("matrix-{n}"),
                types: vec![proto::EventTypeRule {
                    r#type: "matrix.checked".to_string(),
                    schema: String::new(),
                }],
                unrestricted: false,
            };
            unary(admin.set_vocabulary(req(set, key)?).await)
        }
        "/ledger.v1.Admin/RotateSigningKey" => unary(
            admin
                .rotate_signing_key(req(proto::RotateSigningKeyRequest {}, key)?)
                .await,
        ),
        other => bail!("no call for {other}: add one beside its MATRIX row"),
    })
}

/// A server with principals from `principals` (saved in `dir`).
async fn start(dir: &Path, principals: &Principals) -> anyhow::Result<TestServer> {
    let path = dir.join("principals.toml");
    principals.save(&path)?;
    let mut config = server_config(dir)?;
    config.principals_file = Some(path);
    TestServer::start(config).await
}

#[test]
fn the_matrix_has_a_row_for_every_rpc_and_nothing_else() -> anyhow::Result<()> {
    let offered = offered_methods()?;
    let tabled: BTreeSet<String> = MATRIX.iter().map(|(method, _)| method.to_string()).collect();
    ensure!(tabled.len() == MATRIX.len(), "MATRIX has a method twice");
    let missing: Vec<&String> = offered.difference(&tabled).collect();
    ensure!(missing.is_empty(), "RPCs without a row in MATRIX: {missing:?}");
    let stale: Vec<&String> = tabled.difference(&offered).collect();
    ensure!(
        stale.is_empty(),
        "MATRIX rows for RPCs the server does not offer: {stale:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_answers_every_caller_as_the_matrix_says() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let now = Utc::now();
    let mut principals = Principals::default();
    let read_only = add(&mut principals, "read-only", &["ops-hub:read"])?;
    let append_only = add(&mut principals, "append-only", &["ops-hub:append"])?;
    let other = add(&mut principals, "other-namespace", &["ci:read,append"])?;
    let admin = add(&mut principals, "admin", &["*:admin"])?;
    principals.add_principal("lapsed", vec![Grant::parse("*:admin")?])?;
    let expired = principals.add_key(
        "lapsed",
        now - chrono::Duration::hours(2),
        Some(now - chrono::Duration::hours(1)),
    )?;
    let revoked = principals.add_key("lapsed", now, None)?;
    principals.revoke_key(&revoked.entry().id, now)?;
    let server = start(dir.path(), &principals).await?;

    // Seed, as admin: records in ops-hub and ci, a bundle of ops-hub's.
    let client = server.client_with_key(&admin).await?;
    let response = client.append(append_request(0)).await?;
    let ops_seq = response.receipts[0].seq;
    client
        .append(proto::AppendRequest {
            events: vec![ledger_client::event("ci/build", "ci.build_finished", b"{}".to_vec())],
            ..Default::default()
        })
        .await?;
    let bundle = client
        .create_bundle(proto::CreateBundleRequest {
            selector: [("stream".to_string(), "ops-hub/probe".to_string())].into(),
            ..Default::default()
        })
        .await?;
    let seeded = Seeded {
        channel: tonic::transport::Endpoint::from_shared(server.url())?.connect().await?,
        ops_seq,
        bundle_id: bundle.bundle_id,
        admin_key: admin.clone(),
    };

    let bad = wrong_secret(&admin);
    let keys: [Option<&str>; 8] = [
        None,
        Some(&bad),
        Some(expired.expose()),
        Some(revoked.expose()),
        Some(&read_only),
        Some(&append_only),
        Some(&other),
        Some(&admin),
    ];
    let mut failures = Vec::new();
    let mut n = 1;
    for (method, expected) in MATRIX {
        for (case, key) in keys.iter().enumerate() {
            n += 1;
            let got = call(&seeded, method, *key, n).await?;
            if got != expected[case] {
                failures.push(format!(
                    "{method} as {}: expected {:?}, got {got:?}",
                    CASES[case], expected[case]
                ));
            }
        }
    }
    ensure!(
        failures.is_empty(),
        "{} cells wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // Health and reflection answer without a key.
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::{ServerReflectionRequest, server_reflection_request::MessageRequest};
    HealthClient::new(seeded.channel.clone())
        .check(HealthCheckRequest {
            service: "ledger.v1.Ledger".to_string(),
        })
        .await?;
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = ServerReflectionClient::new(seeded.channel.clone())
        .server_reflection_info(tokio_stream::iter([request]))
        .await?
        .into_inner();
    answers.message().await?.context("reflection answered nothing")?;
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_say_why_without_saying_what_exists() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut principals = Principals::default();
    let ops = add(&mut principals, "ops", &["ops-hub:read,append"])?;
    let ci = add(&mut principals, "ci", &["ci:read,append"])?;
    let server = start(dir.path(), &principals).await?;
    let status = |result: Result<proto::Record, ClientError>| match result {
        Err(ClientError::Status(s)) => Ok((s.code(), s.message().to_string())),
        other => Err(anyhow::anyhow!("expected a status, got {other:?}")),
    };

    let ops_client = server.client_with_key(&ops).await?;
    let ci_client = server.client_with_key(&ci).await?;
    let response = ops_client.append(append_request(1)).await?;
    let (seq, id) = (response.receipts[0].seq, response.receipts[0].event_id.clone());

    // By event id, another namespace's record is answered as a missing one.
    let (code, message) = status(ci_client.record_by_id(&id).await)?;
    let missing = uuid::Uuid::new_v4().to_string();
    let (missing_code, missing_message) = status(ci_client.record_by_id(&missing).await)?;
    ensure!(
        code == Code::NotFound && missing_code == Code::NotFound,
        "{code:?} {missing_code:?}"
    );
    ensure!(
        message.replace(&id, "ID") == missing_message.replace(&missing, "ID"),
        "{message} / {missing_message}"
    );
    // By seq (seqs below the size exist: the checkpoint says so), refused.
    let (code, message) = status(ci_client.record(seq).await)?;
    ensure!(code == Code::PermissionDenied, "{code:?}");
    ensure!(
        message == format!("seq: principal \"ci\" may not read the record at seq {seq}"),
        "{message}"
    );

    // A stream that exists and one that does not are refused alike.
    for stream in ["ops-hub/probe", "ops-hub/never-written"] {
        let denied = ci_client
            .read(proto::ReadRequest {
                stream: stream.to_string(),
                ..Default::default()
            })
            .await;
        let message = match denied {
            Err(ClientError::Status(s)) if s.code() == Code::PermissionDenied => s.message().to_string(),
            other => bail!("reading {stream}: expected PERMISSION_DENIED, got {other:?}"),
        };
        ensure!(
            message == "stream: principal \"ci\" lacks read on namespace \"ops-hub\"",
            "{message}"
        );
    }
    let appended = ci_client.append(append_request(2)).await;
    match appended {
        Err(ClientError::Status(s)) if s.code() == Code::PermissionDenied => ensure!(
            s.message() == "events[0].stream: principal \"ci\" lacks append on namespace \"ops-hub\"",
            "{}",
            s.message()
        ),
        other => bail!("expected PERMISSION_DENIED, got {other:?}"),
    }

    // Unauthenticated: the same words for a wrong secret and an unknown id.
    for key in [wrong_secret(&ops), format!("lk_0123456789abcdef_{}", &ops[20..])] {
        match server.client_with_key(&key).await?.info().await {
            Err(ClientError::Status(s)) if s.code() == Code::Unauthenticated => {
                ensure!(s.message() == "invalid API key", "{}", s.message());
            }
            other => bail!("expected UNAUTHENTICATED, got {other:?}"),
        }
    }
    server.stop().await
}

/// Subscribes (unfiltered, or by `prefix`) from seq 0 until a record of
/// stream `marker` arrives; returns every record's seq and stream.
async fn subscribe_until(client: Client, prefix: &str, marker: &str) -> anyhow::Result<Vec<(u64, String)>> {
    let mut stream = Box::pin(client.subscribe(proto::SubscribeRequest {
        stream_prefix: prefix.to_string(),
        ..Default::default()
    }));
    let mut seen = Vec::new();
    loop {
        let record = tokio::time::timeout(HANG, stream.next())
            .await?
            .context("subscription ended")??;
        let event = record.event.context("record without event")?;
        seen.push((record.seq, event.stream.clone()));
        if event.stream == marker {
            return Ok(seen);
        }
    }
}

/// Appends `batches` batches of `per_batch` events to `stream`; returns
/// the seqs.
async fn produce(client: Client, stream: String, batches: u64, per_batch: u64) -> anyhow::Result<Vec<u64>> {
    let mut seqs = Vec::new();
    for b in 0..batches {
        let events = (0..per_batch)
            .map(|i| {
                let mut event = ledger_client::event(
                    stream.clone(),
                    "ops.health_checked",
                    format!("{{\"n\":{}}}", b * per_batch + i).into_bytes(),
                );
                event.metadata = Some(proto::Metadata {
                    correlation_id: "shared-run".to_string(),
                    ..Default::default()
                });
                event
            })
            .collect();
        let response = client
            .append(proto::AppendRequest {
                events,
                ..Default::default()
            })
            .await?;
        seqs.extend(response.receipts.iter().map(|r| r.seq));
    }
    Ok(seqs)
}

async fn read_all(client: &Client, limit: u64) -> anyhow::Result<Vec<(u64, String)>> {
    let mut stream = client
        .read(proto::ReadRequest {
            limit,
            ..Default::default()
        })
        .await?;
    let mut out = Vec::new();
    while let Some(record) = stream.message().await? {
        out.push((record.seq, record.event.context("record without event")?.stream));
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn namespaces_stay_isolated_under_concurrent_load() -> anyhow::Result<()> {
    const PRODUCERS: u64 = 2;
    const BATCHES: u64 = 25;
    const PER_BATCH: u64 = 8;
    let dir = tempfile::tempdir()?;
    let mut principals = Principals::default();
    let ops_key = add(&mut principals, "ops", &["ops-hub:read,append"])?;
    let ci_key = add(&mut principals, "ci", &["ci:read,append"])?;
    let admin_key = add(&mut principals, "admin", &["*:admin"])?;
    let server = start(dir.path(), &principals).await?;
    let ops = server.client_with_key(&ops_key).await?;
    let ci = server.client_with_key(&ci_key).await?;
    let admin = server.client_with_key(&admin_key).await?;

    // Subscribers first, so they see the catch-up and the live hand-over.
    // `o` is a prefix without '/': it matches ops-hub/ and other/ streams,
    // and the filter must still hold back other/.
    let ops_all = tokio::spawn(subscribe_until(ops.clone(), "", "ops-hub/done"));
    let ops_o = tokio::spawn(subscribe_until(ops.clone(), "o", "ops-hub/done"));
    let ci_all = tokio::spawn(subscribe_until(ci.clone(), "", "ci/done"));
    let admin_all = tokio::spawn(subscribe_until(admin.clone(), "", "admin/done"));

    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        producers.push(tokio::spawn(produce(
            ops.clone(),
            format!("ops-hub/p{p}"),
            BATCHES,
            PER_BATCH,
        )));
        producers.push(tokio::spawn(produce(
            ci.clone(),
            format!("ci/p{p}"),
            BATCHES,
            PER_BATCH,
        )));
    }
    // The admin writes where neither may read: another namespace, the
    // default namespace and a system namespace.
    for stream in ["other/x", "plain", "alert/isolation"] {
        producers.push(tokio::spawn(produce(admin.clone(), stream.to_string(), 5, 2)));
    }
    let mut written: Vec<Vec<u64>> = Vec::new();
    for producer in producers {
        written.push(producer.await??);
    }
    let own = |ns: &str| -> BTreeSet<u64> {
        let mut set = BTreeSet::new();
        for (i, seqs) in written.iter().enumerate().take(2 * PRODUCERS as usize) {
            if (i % 2 == 0) == (ns == "ops-hub") {
                set.extend(seqs);
            }
        }
        set
    };
    let (mut ops_seqs, mut ci_seqs) = (own("ops-hub"), own("ci"));
    ops_seqs.extend(produce(ops.clone(), "ops-hub/done".to_string(), 1, 1).await?);
    ci_seqs.extend(produce(ci.clone(), "ci/done".to_string(), 1, 1).await?);
    let last = produce(admin.clone(), "admin/done".to_string(), 1, 1).await?;
    ensure!(ops_seqs.len() as u64 == PRODUCERS * BATCHES * PER_BATCH + 1);

    let check = |who: &str, seen: Vec<(u64, String)>, expected: &BTreeSet<u64>, ns: &str| -> anyhow::Result<()> {
        if let Some((seq, stream)) = seen.iter().find(|(_, s)| !s.starts_with(ns)) {
            bail!("{who} received seq {seq} of {stream}");
        }
        let got: Vec<u64> = seen.iter().map(|(seq, _)| *seq).collect();
        let want: Vec<u64> = expected.iter().copied().collect();
        ensure!(
            got == want,
            "{who}: received {} records, expected {}",
            got.len(),
            want.len()
        );
        Ok(())
    };
    check("ops (all)", ops_all.await??, &ops_seqs, "ops-hub/")?;
    check("ops (prefix o)", ops_o.await??, &ops_seqs, "ops-hub/")?;
    check("ci (all)", ci_all.await??, &ci_seqs, "ci/")?;
    check("ops (read)", read_all(&ops, 0).await?, &ops_seqs, "ops-hub/")?;
    check("ci (read)", read_all(&ci, 0).await?, &ci_seqs, "ci/")?;
    // A limit counts the records delivered, not those skipped.
    let first_five: BTreeSet<u64> = ops_seqs.iter().copied().take(5).collect();
    check("ops (read, limit 5)", read_all(&ops, 5).await?, &first_five, "ops-hub/")?;
    // The admin sees everything, in order, without a gap.
    let everything = admin_all.await??;
    let seqs: Vec<u64> = everything.iter().map(|(seq, _)| *seq).collect();
    let want: Vec<u64> = (0..=last[0]).collect();
    ensure!(
        seqs == want,
        "admin received {} records, expected {}",
        seqs.len(),
        want.len()
    );

    // Views span namespaces: refused unless read everywhere.
    let query = proto::QueryRequest {
        view: "tasks".to_string(),
        ..Default::default()
    };
    match ops.query(query.clone()).await {
        Err(ClientError::Status(s)) if s.code() == Code::PermissionDenied => {}
        other => bail!("ops query: expected PERMISSION_DENIED, got {other:?}"),
    }
    admin.query(query).await?;

    // Bundles: never cut down to what the caller may read.
    let by_correlation = proto::CreateBundleRequest {
        selector: [("correlation".to_string(), "shared-run".to_string())].into(),
        ..Default::default()
    };
    match ops.create_bundle(by_correlation.clone()).await {
        Err(ClientError::Status(s)) if s.code() == Code::PermissionDenied => {
            ensure!(
                !s.message().contains("\"ci\""),
                "the refusal names another namespace: {}",
                s.message()
            );
        }
        other => bail!("ops bundle across namespaces: expected PERMISSION_DENIED, got {other:?}"),
    }
    let shared = admin.create_bundle(by_correlation).await?;
    let own_bundle = ops
        .create_bundle(proto::CreateBundleRequest {
            selector: [("stream".to_string(), "ops-hub/p0".to_string())].into(),
            ..Default::default()
        })
        .await?;
    let listed = |list: Vec<proto::BundleSummary>| list.into_iter().map(|b| b.bundle_id).collect::<BTreeSet<_>>();
    ensure!(listed(ops.list_bundles().await?) == [own_bundle.bundle_id.clone()].into());
    ensure!(listed(ci.list_bundles().await?).is_empty());
    ensure!(listed(admin.list_bundles().await?) == [own_bundle.bundle_id.clone(), shared.bundle_id.clone()].into());
    let mut sink = Vec::new();
    match ops.get_bundle(&shared.bundle_id, &mut sink).await {
        Err(ClientError::Status(s)) if s.code() == Code::NotFound => {}
        other => bail!("ops getting the shared bundle: expected NOT_FOUND, got {other:?}"),
    }
    ensure!(sink.is_empty());
    ops.get_bundle(&own_bundle.bundle_id, &mut sink).await?;
    ensure!(!sink.is_empty());
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_is_refused_without_a_restart() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut principals = Principals::default();
    let key = add(&mut principals, "probe", &["ops-hub:read,append"])?;
    let server = start(dir.path(), &principals).await?;
    let client = server.client_with_key(&key).await?;
    client.append(append_request(1)).await?;

    let path = dir.path().join("principals.toml");
    let mut edited = Principals::load(&path)?;
    let id = key[3..19].to_string();
    edited.revoke_key(&id, Utc::now())?;
    let second = edited.add_key("probe", Utc::now(), None)?;
    edited.save(&path)?;
    // The server polls the file; wait (bounded) for it to notice.
    let mut refused = false;
    for _ in 0..600 {
        match client.info().await {
            Err(ClientError::Status(s)) if s.code() == Code::Unauthenticated => {
                ensure!(s.message() == "API key revoked", "{}", s.message());
                refused = true;
                break;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(other) => bail!("unexpected {other}"),
        }
    }
    ensure!(refused, "the revoked key still works");
    // The key made meanwhile works.
    server
        .client_with_key(second.expose())
        .await?
        .append(append_request(2))
        .await?;
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_principals_file_stops_the_server_before_it_opens_the_ledger() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("principals.toml");
    std::fs::write(&path, "[[principal]]\nname = \"a\"\ngrants = [\"ops-hub:write\"]\n")?;
    let mut config = server_config(dir.path())?;
    config.principals_file = Some(path);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let outcome = ledger_server::run(listener, config, std::future::ready(())).await;
    match outcome {
        Err(ledger_server::ServerError::Auth(err)) => {
            ensure!(
                err.to_string().contains("\"write\" is not read, append or admin"),
                "{err}"
            );
        }
        other => bail!("expected an auth error, got {other:?}"),
    }
    ensure!(!dir.path().join("ledger.json").exists(), "the ledger was opened");
    Ok(())
}
