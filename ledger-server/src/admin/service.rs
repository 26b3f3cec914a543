//! The `ledger.v1.Admin` gRPC service: each call checks its grant, then
//! makes its change through [`Admin::change`], which records it in the
//! ledger before it takes effect (a signing key rotation, through
//! [`Admin::rotate_signing_key`]).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use ledger_client::proto::{self, admin_server};
use serde_json::json;
use tonic::{Request, Response, Status};
use tracing::Instrument as _;

use super::{Admin, AdminError, Recorded};
use crate::auth::producer::{ProducerKeyEntry, parse_public_key};
use crate::auth::{Caller, Grant, NamespacePolicy, Permission, Principals, TypeDeclaration};
use crate::service::rpc_span;

/// Serves `ledger.v1.Admin` over an [`Admin`].
#[derive(Debug, Clone)]
pub struct AdminService {
    admin: Arc<Admin>,
}

impl AdminService {
    /// The service over `admin`.
    pub fn new(admin: Arc<Admin>) -> AdminService {
        AdminService { admin }
    }
}

fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

fn change(recorded: Recorded) -> proto::AdminChange {
    proto::AdminChange {
        seq: recorded.seq,
        event_id: recorded.event_id.to_string(),
        policy_digest: recorded.digest.to_hex().to_string(),
        changes: recorded.changes,
    }
}

fn grants(field: &str, grants: &[String]) -> Result<Vec<Grant>, AdminError> {
    grants
        .iter()
        .enumerate()
        .map(|(i, g)| Grant::parse(g).map_err(|e| AdminError::Refused(format!("{field}[{i}]: {e}"))))
        .collect()
}

fn expiry(days: u32, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    (days > 0).then(|| now + chrono::Duration::days(i64::from(days)))
}

/// `admin` on every namespace, for changes to principals and keys.
fn require_admin(caller: &Caller) -> Result<(), Status> {
    caller.require_everywhere(Permission::Admin)
}

/// `admin` on `namespace`, for its policy and vocabulary.
fn require_namespace_admin(caller: &Caller, namespace: &str) -> Result<(), Status> {
    if caller.may(Permission::Admin, namespace) {
        return Ok(());
    }
    Err(Status::permission_denied(format!(
        "namespace: principal {:?} lacks admin on namespace {namespace:?}",
        caller.name()
    )))
}

fn principal_info(p: &crate::auth::Principal) -> proto::PrincipalInfo {
    proto::PrincipalInfo {
        name: p.name.clone(),
        grants: p.grants.iter().map(ToString::to_string).collect(),
        keys: p
            .keys
            .iter()
            .map(|k| proto::ApiKeyInfo {
                id: k.id.clone(),
                created_at: Some(timestamp(k.created_at)),
                expires_at: k.expires_at.map(timestamp),
                revoked_at: k.revoked_at.map(timestamp),
            })
            .collect(),
        producer_keys: p
            .producer_keys
            .iter()
            .map(|k| proto::ProducerKeyInfo {
                id: k.id.clone(),
                public_key: k.public_key.as_bytes().to_vec(),
                added_at: Some(timestamp(k.added_at)),
                revoked_at: k.revoked_at.map(timestamp),
            })
            .collect(),
    }
}

fn namespace_info(n: &NamespacePolicy) -> proto::NamespacePolicy {
    proto::NamespacePolicy {
        namespace: n.name.clone(),
        require_signatures: n.require_signatures,
        vocabulary_version: n.vocabulary_version,
        vocabulary_enforced: n.types.is_some(),
        types: n
            .types
            .iter()
            .flatten()
            .map(|t| proto::EventTypeRule {
                r#type: t.event_type.clone(),
                schema: t.schema.as_ref().map(ToString::to_string).unwrap_or_default(),
            })
            .collect(),
    }
}

#[tonic::async_trait]
impl admin_server::Admin for AdminService {
    async fn list_principals(
        &self,
        request: Request<proto::ListPrincipalsRequest>,
    ) -> Result<Response<proto::ListPrincipalsResponse>, Status> {
        let caller = Caller::of(&request)?;
        require_admin(&caller)?;
        let principals = self.admin.auth().principals();
        Ok(Response::new(proto::ListPrincipalsResponse {
            principals: principals.principals.iter().map(principal_info).collect(),
        }))
    }

    async fn create_principal(
        &self,
        request: Request<proto::CreatePrincipalRequest>,
    ) -> Result<Response<proto::CreatePrincipalResponse>, Status> {
        let span = rpc_span("Admin.CreatePrincipal", &request);
        async move {
            let caller = Caller::of(&request)?;
            require_admin(&caller)?;
            let request = request.into_inner();
            let now = Utc::now();
            let grants = grants("grants", &request.grants)?;
            let expires_at = expiry(request.expires_in_days, now);
            let name = request.name.clone();
            let details =
                json!({"name": request.name, "grants": request.grants, "expires_in_days": request.expires_in_days});
            let (key, recorded) = self
                .admin
                .change(
                    caller.name(),
                    "principal_created",
                    details,
                    move |p: &mut Principals| {
                        p.add_principal(&name, grants)?;
                        Ok(p.add_key(&name, now, expires_at)?)
                    },
                )
                .await?;
            Ok(Response::new(proto::CreatePrincipalResponse {
                api_key: key.expose().to_string(),
                key_id: key.entry().id.clone(),
                change: Some(change(recorded)),
            }))
        }
        .instrument(span)
        .await
    }

    async fn create_key(
        &self,
        request: Request<proto::CreateKeyRequest>,
    ) -> Result<Response<proto::CreateKeyResponse>, Status> {
        let span = rpc_span("Admin.CreateKey", &request);
        async move {
            let caller = Caller::of(&request)?;
            require_admin(&caller)?;
            let request = request.into_inner();
            let now = Utc::now();
            let expires_at = expiry(request.expires_in_days, now);
            let name = request.name.clone();
            let details = json!({"name": request.name, "expires_in_days": request.expires_in_days});
            let (key, recorded) = self
                .admin
                .change(caller.name(), "api_key_created", details, move |p: &mut Principals| {
                    Ok(p.add_key(&name, now, expires_at)?)
                })
                .await?;
            Ok(Response::new(proto::CreateKeyResponse {
                api_key: key.expose().to_string(),
                key_id: key.entry().id.clone(),
                change: Some(change(recorded)),
            }))
        }
        .instrument(span)
        .await
    }

    async fn revoke_key(
        &self,
        request: Request<proto::RevokeKeyRequest>,
    ) -> Result<Response<proto::AdminChange>, Status> {
        let span = rpc_span("Admin.RevokeKey", &request);
        async move {
            let caller = Caller::of(&request)?;
            require_admin(&caller)?;
            let key_id = request.into_inner().key_id.to_ascii_lowercase();
            let details = json!({"key_id": key_id});
            let ((), recorded) = self
                .admin
                .change(caller.name(), "api_key_revoked", details, move |p: &mut Principals| {
                    p.revoke_key(&key_id, Utc::now())?;
                    Ok(())
                })
                .await?;
            Ok(Response::new(change(recorded)))
        }
        .instrument(span)
        .await
    }

    async fn revoke_principal(
        &self,
        request: Request<proto::RevokePrincipalRequest>,
    ) -> Result<Response<proto::AdminChange>, Status> {
        let span = rpc_span("Admin.RevokePrincipal", &request);
        async move {
            let caller = Caller::of(&request)?;
            require_admin(&caller)?;
            let name = request.into_inner().name;
            let details = json!({"name": name});
            let ((), recorded) = self
                .admin
                .change(
                    caller.name(),
                    "principal_revoked",
                    details,
                    move |p: &mut Principals| Ok(p.revoke_principal(&name, Utc::now())?),
                )
                .await?;
            Ok(Response::new(change(recorded)))
        }
        .instrument(span)
        .await
    }

    async fn set_grants(
        &self,
        request: Request<proto::SetGrantsRequest>,
    ) -> Result<Response<proto::AdminChange>, Status> {
        let span = rpc_span("Admin.SetGrants", &request);
        async move {
            let caller = Caller::of(&request)?;
            require_admin(&caller)?;
            let request = request.into_inner();
            let parsed = grants("grants", &request.grants)?;
            let name = request.name.clone();
            let details = json!({"name": request.name, "grants": request.grants});
            let ((), recorded) = self
                .admin
                .change(caller.name(), "grants_set", details, move |p: &mut Principals| {
                    Ok(p.set_grants(&name, parsed)?)
                })
                .await?;
            Ok(Response::new(change(recorded)))
        }
        .instrument(span)
        .await
    }

    async fn add_producer_key(
        &self,
        request: Request<proto::AddProducerKeyRequest>,
    ) -> Result<Response<proto::AdminChange>, Status> {
        let span = rpc_span("Admin.AddProducerKey", &request);
        async move {
            let caller = Caller::of(&request)?;
            require_admin(&caller)?;
            let request = request.into_inner();
            let public_key = parse_public_key(&request.public_key).map_err(AdminError::Refused)?;
            let entry = ProducerKeyEntry {
                id: request.key_id.clone(),
                public_key,
                added_at: Utc::now(),
                revoked_at: None,
            };
            let details = json!({
                "name": request.name,
                "key_id": request.key_id,
                "public_key": entry.public_key_base64(),
            });
            let name = request.name;
            let ((), recorded) = self
                .admin
                .change(
                    caller.name(),
                    "producer_key_added",
                    details,
                    move |p: &mut Principals| Ok(p.add_producer_key(&name, entry)?),
                )
                .await?;
            Ok(Response::new(change(recorded)))
        }
        .instrument(span)
        .await
    }

    async fn revoke_producer_key(
        &self,
        request: Request<proto::RevokeProducerKeyRequest>,
    ) -> Result<Response<proto::AdminChange>, Status> {
        let span = rpc_span("Admin.RevokeProducerKey", &request);
        async move {
            let caller = Caller::of(&request)?;
            require_admin(&caller)?;
            let key_id = request.into_inner().key_id;
            let details = json!({"key_id": key_id});
            let ((), recorded) = self
                .admin
                .change(
                    caller.name(),
                    "producer_key_revoked",
                    details,
                    move |p: &mut Principals| {
                        p.revoke_producer_key(&key_id, Utc::now())?;
                        Ok(())
                    },
                )
                .await?;
            Ok(Response::new(change(recorded)))
        }
        .instrument(span)
        .await
    }

    async fn list_namespaces(
        &self,
        request: Request<proto::ListNamespacesRequest>,
    ) -> Result<Response<proto::ListNamespacesResponse>, Status> {
        let caller = Caller::of(&request)?;
        let principals = self.admin.auth().principals();
        Ok(Response::new(proto::ListNamespacesResponse {
            namespaces: principals
                .namespaces
                .iter()
                .filter(|n| caller.may(Permission::Admin, &n.name))
                .map(namespace_info)
                .collect(),
        }))
    }

    async fn set_namespace_policy(
        &self,
        request: Request<proto::SetNamespacePolicyRequest>,
    ) -> Result<Response<proto::AdminChange>, Status> {
        let span = rpc_span("Admin.SetNamespacePolicy", &request);
        async move {
            let caller = Caller::of(&request)?;
            let request = request.into_inner();
            require_namespace_admin(&caller, &request.namespace)?;
            let details = json!({"namespace": request.namespace, "require_signatures": request.require_signatures});
            let ((), recorded) = self
                .admin
                .change(
                    caller.name(),
                    "namespace_policy_set",
                    details,
                    move |p: &mut Principals| {
                        p.namespace_mut(&request.namespace)?.require_signatures = request.require_signatures;
                        Ok(())
                    },
                )
                .await?;
            Ok(Response::new(change(recorded)))
        }
        .instrument(span)
        .await
    }

    async fn set_vocabulary(
        &self,
        request: Request<proto::SetVocabularyRequest>,
    ) -> Result<Response<proto::AdminChange>, Status> {
        let span = rpc_span("Admin.SetVocabulary", &request);
        async move {
            let caller = Caller::of(&request)?;
            let request = request.into_inner();
            require_namespace_admin(&caller, &request.namespace)?;
            if request.unrestricted && !request.types.is_empty() {
                return Err(AdminError::Refused(
                    "types: must be empty with unrestricted (any type may be appended)".to_string(),
                )
                .into());
            }
            let mut declared = Vec::with_capacity(request.types.len());
            for (i, rule) in request.types.iter().enumerate() {
                let schema = if rule.schema.trim().is_empty() {
                    None
                } else {
                    Some(
                        serde_json::from_str::<serde_json::Value>(&rule.schema)
                            .map_err(|e| AdminError::Refused(format!("types[{i}].schema: not JSON: {e}")))?,
                    )
                };
                declared.push(TypeDeclaration {
                    event_type: rule.r#type.clone(),
                    schema,
                });
            }
            crate::vocab::Vocabulary::new(1, declared.iter().map(|t| (t.event_type.clone(), t.schema.clone())))
                .map_err(|e| AdminError::Refused(format!("types: {e}")))?;
            let details = json!({
                "namespace": request.namespace,
                "unrestricted": request.unrestricted,
                "types": declared
                    .iter()
                    .map(|t| json!({"type": t.event_type, "schema": t.schema}))
                    .collect::<Vec<_>>(),
            });
            let ((), recorded) = self
                .admin
                .change(caller.name(), "vocabulary_set", details, move |p: &mut Principals| {
                    let policy = p.namespace_mut(&request.namespace)?;
                    policy.vocabulary_version += 1;
                    policy.types = (!request.unrestricted).then_some(declared);
                    Ok(())
                })
                .await?;
            Ok(Response::new(change(recorded)))
        }
        .instrument(span)
        .await
    }

    async fn rotate_signing_key(
        &self,
        request: Request<proto::RotateSigningKeyRequest>,
    ) -> Result<Response<proto::RotateSigningKeyResponse>, Status> {
        let span = rpc_span("Admin.RotateSigningKey", &request);
        async move {
            let caller = Caller::of(&request)?;
            require_admin(&caller)?;
            let rotated = self.admin.rotate_signing_key(caller.name()).await?;
            Ok(Response::new(proto::RotateSigningKeyResponse {
                rotation_seq: rotated.rotation_seq,
                old_verifier_key: rotated.old_key.to_string(),
                new_verifier_key: rotated.new_key.to_string(),
                change: Some(proto::AdminChange {
                    seq: rotated.seq,
                    event_id: rotated.event_id.to_string(),
                    policy_digest: rotated.policy_digest,
                    changes: rotated.changes,
                }),
                resumed: rotated.resumed,
            }))
        }
        .instrument(span)
        .await
    }
}
