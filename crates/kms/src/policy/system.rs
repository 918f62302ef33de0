//! System policies (reference §6), as published (whitespace compacted). They go through the
//! same parser as custom policies ([`SystemPolicy::policy`]).

use super::document::{Policy, PolicyError, PolicyKind};

/// A system policy: name, published default version and document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SystemPolicy {
    pub name: &'static str,
    pub version: &'static str,
    pub document: &'static str,
}

impl SystemPolicy {
    /// The compiled document.
    pub fn policy(&self) -> Result<Policy, PolicyError> {
        Policy::parse(self.document, PolicyKind::Identity)
    }

    pub fn by_name(name: &str) -> Option<&'static SystemPolicy> {
        SYSTEM_POLICIES.iter().find(|p| p.name == name)
    }
}

pub const ALIYUN_KMS_FULL_ACCESS: SystemPolicy = SystemPolicy {
    name: "AliyunKMSFullAccess",
    version: "v3",
    document: r#"{"Version":"1","Statement":[{"Action":"kms:*","Resource":"*","Effect":"Allow"},{"Action":"ram:CreateServiceLinkedRole","Condition":{"StringEquals":{"ram:ServiceName":["secretsmanager-rds.kms.aliyuncs.com","keystore.kms.aliyuncs.com"]}},"Resource":"*","Effect":"Allow"}]}"#,
};

pub const ALIYUN_KMS_READ_ONLY_ACCESS: SystemPolicy = SystemPolicy {
    name: "AliyunKMSReadOnlyAccess",
    version: "v3",
    document: r#"{"Version":"1","Statement":[{"Action":["kms:List*","kms:Describe*","kms:GetPublicKey","kms:GetUploadBackupDataInfo","kms:GetKmsInstanceSharedAccounts","kms:GetKmsInstanceQuotaInfos","kms:GetCheckAssociateResourceTaskResults","kms:GetKeyPolicy","kms:GetKeyDefaultPolicy","kms:GetSecretPolicy","kms:GetSecretDefaultPolicy","kms:GetKmsInstance","kms:GetDefaultKmsInstance"],"Resource":"*","Effect":"Allow"}]}"#,
};

/// The current version (v2: v1 plus GenerateMac/VerifyMac, which this server implements).
pub const ALIYUN_KMS_CRYPTO_USER_ACCESS: SystemPolicy = SystemPolicy {
    name: "AliyunKMSCryptoUserAccess",
    version: "v2",
    document: r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":["kms:Encrypt","kms:Decrypt","kms:GenerateDataKey","kms:GenerateDataKeyWithoutPlaintext","kms:AsymmetricDecrypt","kms:AsymmetricEncrypt","kms:AsymmetricSign","kms:AsymmetricVerify","kms:GetPublicKey","kms:GenerateMac","kms:VerifyMac"],"Resource":"*"}]}"#,
};

pub const ALIYUN_KMS_CRYPTO_ADMIN_ACCESS: SystemPolicy = SystemPolicy {
    name: "AliyunKMSCryptoAdminAccess",
    version: "v2",
    document: r#"{"Version":"1","Statement":[{"Action":["kms:*"],"Resource":["acs:kms:*:*:key*","acs:kms:*:*:alias*"],"Effect":"Allow"},{"Action":["ecs:TagResources","ecs:UntagResources","ecs:ListTagResources"],"Resource":["acs:kms:*:*:key/*","acs:kms:*:*:secret/*"],"Effect":"Allow"}]}"#,
};

pub const ALIYUN_KMS_SECRET_USER_ACCESS: SystemPolicy = SystemPolicy {
    name: "AliyunKMSSecretUserAccess",
    version: "v1",
    document: r#"{"Statement":[{"Effect":"Allow","Action":["kms:GetSecretValue"],"Resource":"*"},{"Effect":"Allow","Action":["kms:DescribeSecret","kms:ListSecretVersionIds"],"Resource":"*"}],"Version":"1"}"#,
};

pub const ALIYUN_KMS_SECRET_ADMIN_ACCESS: SystemPolicy = SystemPolicy {
    name: "AliyunKMSSecretAdminAccess",
    version: "v5",
    document: r#"{"Version":"1","Statement":[{"Action":"kms:*","Resource":"acs:kms:*:*:secret*","Effect":"Allow"},{"Action":"kms:GetRandomPassword","Resource":"*","Effect":"Allow"},{"Action":["rds:DescribeDBInstances","rds:DescribeDBInstanceAttribute","rds:DescribeDatabases","rds:DescribeAccounts","rds:DescribeDBInstanceNetInfo","rds:CreateAccount","rds:GrantAccountPrivilege"],"Resource":"*","Effect":"Allow"},{"Action":"ecs:DescribeInstances","Resource":"acs:ecs:*:*:instance/*","Effect":"Allow"},{"Action":["ecs:TagResources","ecs:UntagResources","ecs:ListTagResources"],"Resource":["acs:kms:*:*:key/*","acs:kms:*:*:secret/*"],"Effect":"Allow"},{"Action":"ram:CreateServiceLinkedRole","Condition":{"StringEquals":{"ram:ServiceName":["secretsmanager-rds.kms.aliyuncs.com","secretsmanager-ecs.kms.aliyuncs.com"]}},"Resource":"*","Effect":"Allow"}]}"#,
};

pub const ALIYUN_STS_ASSUME_ROLE_ACCESS: SystemPolicy = SystemPolicy {
    name: "AliyunSTSAssumeRoleAccess",
    version: "v1",
    document: r#"{"Statement":[{"Action":"sts:AssumeRole","Effect":"Allow","Resource":"*"}],"Version":"1"}"#,
};

/// `Action:"*"` on `Resource:"*"` **[inference: document not fetched, §6]**.
pub const ADMINISTRATOR_ACCESS: SystemPolicy = SystemPolicy {
    name: "AdministratorAccess",
    version: "v1",
    document: r#"{"Statement":[{"Action":"*","Effect":"Allow","Resource":"*"}],"Version":"1"}"#,
};

pub const SYSTEM_POLICIES: &[SystemPolicy] = &[
    ALIYUN_KMS_FULL_ACCESS,
    ALIYUN_KMS_READ_ONLY_ACCESS,
    ALIYUN_KMS_CRYPTO_USER_ACCESS,
    ALIYUN_KMS_CRYPTO_ADMIN_ACCESS,
    ALIYUN_KMS_SECRET_USER_ACCESS,
    ALIYUN_KMS_SECRET_ADMIN_ACCESS,
    ALIYUN_STS_ASSUME_ROLE_ACCESS,
    ADMINISTRATOR_ACCESS,
];
