//! End-to-end: per-tenant configs against the moto server (`scripts/test.sh` starts it and sets
//! CLOUDSPEND_TEST_MOTO_URL; without it these tests fail, they never skip).

use aws_sdk_sts::Client as Sts;
use cloudspend_aws_access::testing::{self, Moto, count_action, role_in, unique_account_id};
use cloudspend_aws_access::{AwsAccess, AwsError, ErrorKind, TenantCredentials};
use cloudspend_core::TenantId;
use secrecy::SecretString;

async fn caller_account(config: &aws_types::SdkConfig) -> Result<String, AwsError> {
    let out = Sts::new(config)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("sts:GetCallerIdentity", e))?;
    Ok(out.account().unwrap_or_default().to_string())
}

#[tokio::test]
async fn role_moves_calls_into_the_tenant_account_and_is_assumed_once_for_many_configs() {
    let _moto_state = testing::exclusive().await;
    let moto = Moto::from_env();
    let access = testing::aws_access().await;
    let tenant = TenantId::new();
    let account = unique_account_id();
    let creds = role_in(&account);

    moto.start_recording().await;
    for region in [
        "us-east-1",
        "eu-west-1",
        "eu-west-1",
        "ap-southeast-2",
        "us-west-2",
    ] {
        let config = access.sdk_config(tenant, &creds, region).await.unwrap();
        assert_eq!(caller_account(&config).await.unwrap(), account);
    }
    // A clone shares the cache: the scheduler and the API hold clones of one AwsAccess.
    let config = access
        .clone()
        .sdk_config(tenant, &creds, "us-east-1")
        .await
        .unwrap();
    assert_eq!(caller_account(&config).await.unwrap(), account);
    let recorded = moto.stop_recording().await;

    assert_eq!(count_action(&recorded, "GetCallerIdentity"), 6);
    assert_eq!(
        count_action(&recorded, "AssumeRole"),
        1,
        "one AssumeRole per tenant per credential lifetime"
    );
}

#[tokio::test]
async fn another_tenant_with_the_same_role_assumes_it_separately() {
    let _moto_state = testing::exclusive().await;
    let moto = Moto::from_env();
    let access = testing::aws_access().await;
    let account = unique_account_id();
    let creds = role_in(&account);

    moto.start_recording().await;
    for tenant in [TenantId::new(), TenantId::new()] {
        let config = access
            .sdk_config(tenant, &creds, "us-east-1")
            .await
            .unwrap();
        assert_eq!(caller_account(&config).await.unwrap(), account);
    }
    let recorded = moto.stop_recording().await;

    // Session names differ per tenant (CloudTrail shows who), so credentials are not shared.
    assert_eq!(count_action(&recorded, "AssumeRole"), 2);
}

#[tokio::test]
async fn access_key_and_server_default_reach_moto_through_the_loader_endpoint_override() {
    let _moto_state = testing::shared().await;
    // The real loader, endpoint given to `new`: the one override path we support.
    let access = AwsAccess::new(Some(testing::moto_url())).await;
    let creds = TenantCredentials::AccessKey {
        access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
        secret_access_key: SecretString::from("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    };
    let config = access
        .sdk_config(TenantId::new(), &creds, "eu-central-1")
        .await
        .unwrap();
    assert_eq!(config.endpoint_url(), Some(testing::moto_url().as_str()));
    assert_eq!(
        caller_account(&config).await.unwrap(),
        "123456789012",
        "moto's default account"
    );

    let server = testing::aws_access().await;
    let config = server
        .sdk_config(
            TenantId::new(),
            &TenantCredentials::ServerDefault,
            "us-east-1",
        )
        .await
        .unwrap();
    assert_eq!(caller_account(&config).await.unwrap(), "123456789012");
}

#[tokio::test]
async fn missing_permission_is_access_denied_with_the_permission_named() {
    let _moto_state = testing::exclusive().await;
    let moto = Moto::from_env();
    let access = testing::aws_access().await;
    let account = unique_account_id();
    let config = access
        .sdk_config(TenantId::new(), &role_in(&account), "us-east-1")
        .await
        .unwrap();
    // Assume the role while moto still accepts anything; the credentials stay cached.
    assert_eq!(caller_account(&config).await.unwrap(), account);
    moto.create_role(&config, "CloudSpendReadOnly").await;

    // From now on moto checks IAM policies; the role has none, so everything is denied.
    moto.enforce_auth_after(Some(0)).await;
    let result = aws_sdk_ec2::Client::new(&config)
        .describe_instances()
        .send()
        .await;
    moto.enforce_auth_after(None).await;

    let err = AwsError::from_sdk(
        "ec2:DescribeInstances",
        result.expect_err("auth is enforced"),
    );
    assert_eq!(
        err.kind(),
        ErrorKind::AccessDenied,
        "{err} / {}",
        err.detail()
    );
    assert!(
        matches!(err.code(), Some("AccessDenied" | "UnauthorizedOperation")),
        "{err}"
    );
    assert!(
        err.hint().unwrap().contains("ec2:DescribeInstances"),
        "{err}"
    );
    assert!(
        err.request_id().is_some(),
        "the request id is kept for support cases: {err}"
    );
}

#[tokio::test]
async fn unreachable_endpoint_says_to_check_the_network_and_endpoint() {
    // Port 9 on loopback (discard) is closed on these machines: connection refused at once.
    let access = AwsAccess::from_base(testing::base_config("http://127.0.0.1:9").await);
    let config = access
        .sdk_config(
            TenantId::new(),
            &TenantCredentials::ServerDefault,
            "us-east-1",
        )
        .await
        .unwrap();
    let err = caller_account(&config).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unreachable, "{err}");
    assert!(err.hint().unwrap().contains("endpoint"), "{err}");
}

#[tokio::test]
async fn invalid_role_arn_and_region_are_refused_before_any_call() {
    let access = AwsAccess::from_base(testing::base_config("http://127.0.0.1:9").await);
    let bad_role = TenantCredentials::Role {
        role_arn: "not-an-arn".into(),
        external_id: "x".into(),
    };
    let err = access
        .sdk_config(TenantId::new(), &bad_role, "us-east-1")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let err = access
        .sdk_config(TenantId::new(), &TenantCredentials::ServerDefault, "Mars")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

#[tokio::test]
async fn rejected_server_credentials_surface_as_a_credentials_error_with_the_sts_code() {
    let _moto_state = testing::exclusive().await;
    let moto = Moto::from_env();
    let access = testing::aws_access().await;
    let config = access
        .sdk_config(TenantId::new(), &role_in(&unique_account_id()), "us-east-1")
        .await
        .unwrap();

    // moto's test keys belong to no IAM user, so with authentication on AssumeRole fails.
    moto.enforce_auth_after(Some(0)).await;
    let result = caller_account(&config).await;
    moto.enforce_auth_after(None).await;

    let err = result.expect_err("AssumeRole is refused");
    assert_eq!(
        err.kind(),
        ErrorKind::Credentials,
        "{err} / {}",
        err.detail()
    );
    assert_eq!(err.code(), Some("InvalidClientTokenId"), "{err}");
    assert!(err.hint().unwrap().contains("AWS_ACCESS_KEY_ID"), "{err}");
}
