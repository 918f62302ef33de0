//! The console's two languages: English and Simplified Chinese. The choice is kept in the
//! `kms_lang` cookie (set by the language selector), so it is remembered across visits.
//!
//! Every text is a [`Text`] variant with both translations in one table, so a template that
//! names a text that does not exist does not compile, and no text lacks a language.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Zh,
}

pub const LANG_COOKIE: &str = "kms_lang";

impl Lang {
    pub fn from_cookie(v: Option<&str>) -> Lang {
        match v {
            Some("zh-CN") => Lang::Zh,
            _ => Lang::En,
        }
    }
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh-CN",
        }
    }
    pub fn is_zh(self) -> bool {
        self == Lang::Zh
    }
    /// `text` in this language.
    pub fn t(self, text: Text) -> &'static str {
        text.get(self)
    }
    /// The key list's paging line: "Page 1/3 · 41 keys" ("1 key" for one).
    pub fn paging(self, page: usize, pages: usize, total: usize) -> String {
        match self {
            Lang::En => {
                let noun = if total == 1 { "key" } else { "keys" };
                format!("Page {page}/{pages} · {total} {noun}")
            }
            Lang::Zh => format!("第 {page}/{pages} 页 · 共 {total} 个密钥"),
        }
    }
}

/// The language chosen in the `kms_lang` cookie (English without one).
impl<S: Send + Sync> FromRequestParts<S> for Lang {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let cookies = super::extract::Cookies::from_headers(&parts.headers);
        Ok(Lang::from_cookie(cookies.get(LANG_COOKIE)))
    }
}

macro_rules! texts {
    ($($name:ident => ($en:expr, $zh:expr),)*) => {
        /// A text of the console, in either language ([`Lang::t`]).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Text {
            $($name,)*
        }

        impl Text {
            pub const ALL: &'static [Text] = &[$(Text::$name,)*];

            pub fn get(self, lang: Lang) -> &'static str {
                match (self, lang) {
                    $((Text::$name, Lang::En) => $en,
                      (Text::$name, Lang::Zh) => $zh,)*
                }
            }
        }
    };
}

texts! {
    Title => ("KMS Console", "KMS 控制台"),
    Signin => ("Sign in", "登录"),
    Signout => ("Sign out", "退出登录"),
    SigninUser => ("Console user", "控制台用户"),
    SigninAk => ("Access key", "访问密钥"),
    UserName => ("User name", "用户名"),
    Password => ("Password", "密码"),
    AkId => ("AccessKey ID", "AccessKey ID"),
    AkSecret => ("AccessKey secret", "AccessKey Secret"),
    BadCredentials => ("The sign-in details are not correct.", "登录信息不正确。"),
    TooManyAttempts => ("Too many failed sign-ins. Try again in 15 minutes.", "登录失败次数过多，请 15 分钟后再试。"),
    SigninBusy => ("The console is busy checking other sign-ins. Try again in a moment.", "控制台正在处理其他登录请求，请稍后重试。"),
    SigninFormExpired => ("The sign-in form has expired. Please sign in again.", "登录表单已过期，请重新登录。"),
    DuplicateSessionCookie => ("Your browser sent two session cookies for this site. Delete this site's cookies, then sign in again.", "浏览器为此站点发送了两个会话 Cookie。请删除此站点的 Cookie 后重新登录。"),
    SessionExpired => ("Your session has ended. Please sign in again.", "会话已结束，请重新登录。"),
    SignedOut => ("You are signed out.", "您已退出登录。"),
    Region => ("Region", "地域"),
    Language => ("Language", "语言"),
    Keys => ("Keys", "密钥"),
    Forbidden => ("Not allowed", "无权操作"),
    Ram => ("Access control (RAM)", "访问控制 (RAM)"),
    Done => ("done.", "已完成。"),
    RamUsers => ("Users", "用户"),
    RamGroups => ("Groups", "用户组"),
    RamRoles => ("Roles", "角色"),
    RamPolicies => ("Policies", "权限策略"),
    RamCreateUser => ("Create user", "创建用户"),
    RamDeleteUser => ("Delete user", "删除用户"),
    RamCreateAk => ("Create access key", "创建 AccessKey"),
    RamSecretOnce => ("The AccessKey secret is shown only now. Copy it and keep it safe.", "AccessKey Secret 仅显示这一次，请立即复制并妥善保存。"),
    RamCreateProfile => ("Enable console sign-in", "开启控制台登录"),
    RamUpdateProfile => ("Change console password", "修改控制台密码"),
    RamGroupName => ("Group name", "用户组名称"),
    RamCreateGroup => ("Create group", "创建用户组"),
    RamAddToGroup => ("Add user to group", "添加用户到用户组"),
    RamRemoveFromGroup => ("Remove user from group", "从用户组移除用户"),
    RamRoleName => ("Role name", "角色名称"),
    RamTrustPolicy => ("Trust policy (JSON)", "信任策略 (JSON)"),
    RamCreateRole => ("Create role", "创建角色"),
    RamPolicyName => ("Policy name", "策略名称"),
    RamPolicyDocument => ("Policy document (JSON)", "策略内容 (JSON)"),
    RamPolicyType => ("Policy type", "策略类型"),
    RamCreatePolicy => ("Create policy", "创建策略"),
    RamNewVersion => ("Save as new default version", "保存为新的默认版本"),
    RamEdit => ("Edit", "编辑"),
    RamAttach => ("Attach", "授权"),
    RamDetach => ("Detach", "移除授权"),
    RamAttachTo => ("Attach or detach a policy", "为身份授权或移除授权"),
    RamPrincipal => ("User, group or role name", "用户、用户组或角色名称"),
    RamEditor => ("Policy editor", "策略编辑器"),
    RamVersion => ("Default version", "默认版本"),
    RamAttachments => ("Attachments", "引用次数"),
    Nav => ("Navigation", "导航"),
    CreateKey => ("Create key", "创建密钥"),
    Alias => ("Alias", "别名"),
    Aliases => ("Aliases", "别名"),
    KeyId => ("Key ID", "密钥 ID"),
    Spec => ("Key spec", "密钥规格"),
    Origin => ("Origin", "密钥材料来源"),
    State => ("State", "状态"),
    Protection => ("Protection level", "保护级别"),
    Created => ("Created", "创建时间"),
    All => ("All", "全部"),
    Search => ("Search by key ID or alias", "按密钥 ID 或别名搜索"),
    Filter => ("Filter", "筛选"),
    NoKeys => ("No keys match.", "没有符合条件的密钥。"),
    Prev => ("Previous", "上一页"),
    Next => ("Next", "下一页"),
    Description => ("Description", "描述"),
    RotationPeriod => ("Automatic rotation", "自动轮转"),
    RotationOff => ("Off", "关闭"),
    Days => ("days", "天"),
    Advanced => ("Advanced", "高级选项"),
    MaterialSource => ("Key material source", "密钥材料来源"),
    SourceKms => ("KMS (generated by this service)", "KMS（由本服务生成）"),
    SourceExternal => ("External (bring your own key)", "外部（自带密钥）"),
    ExternalAck => ("I understand that with external key material I am responsible for keeping a copy of it: if it is deleted or expires, the key and everything encrypted under it are unusable until I import the same material again.", "我了解使用外部密钥材料时需自行保管其副本：材料被删除或过期后，在重新导入相同材料之前，该密钥及其加密的所有数据都将无法使用。"),
    Cancel => ("Cancel", "取消"),
    Confirm => ("Confirm", "确认"),
    Close => ("Close", "关闭"),
    Metadata => ("Key metadata", "密钥元数据"),
    Versions => ("Versions", "密钥版本"),
    VersionId => ("Version ID", "版本 ID"),
    Tags => ("Tags", "标签"),
    TagKey => ("Tag key", "标签键"),
    TagValue => ("Tag value", "标签值"),
    AddTag => ("Add tag", "添加标签"),
    Remove => ("Remove", "移除"),
    AddAlias => ("Add alias", "添加别名"),
    AliasName => ("Alias name (alias/…)", "别名（alias/…）"),
    None => ("None", "无"),
    KeyMaterial => ("Key material", "密钥材料"),
    MaterialPresent => ("Imported", "已导入"),
    MaterialAbsent => ("Not imported", "未导入"),
    MaterialExpires => ("Material expires", "材料过期时间"),
    Never => ("Never", "永不过期"),
    GetParams => ("Get import parameters", "获取导入参数"),
    WrappingAlg => ("Wrapping algorithm", "加密算法"),
    WrappingSpec => ("Wrapping key spec", "加密公钥类型"),
    NextStep => ("Next", "下一步"),
    DownloadPub => ("Download public key", "下载公钥"),
    DownloadToken => ("Download import token", "下载导入令牌"),
    TokenExpires => ("The import token expires at", "导入令牌过期时间"),
    ImportMaterial => ("Import key material", "导入密钥材料"),
    EncryptedMaterialFile => ("Encrypted key material file (base64)", "加密后的密钥材料文件（base64）"),
    TokenFile => ("Import token file", "导入令牌文件"),
    MaterialExpiry => ("Key material expires", "密钥材料过期时间"),
    ExpireNever => ("Never", "永不过期"),
    ExpireAt => ("At (your local time)", "指定时间（本地时间）"),
    DeleteMaterial => ("Delete key material", "删除密钥材料"),
    ConfirmDeleteMaterial => ("Delete the key material? The key becomes unusable until the same material is imported again.", "确定删除密钥材料吗？在重新导入相同材料之前，该密钥将无法使用。"),
    Actions => ("Actions", "操作"),
    Enable => ("Enable", "启用"),
    Disable => ("Disable", "禁用"),
    ConfirmDisable => ("Disable this key? Encrypt and Decrypt with it will be refused.", "确定禁用此密钥吗？使用它的加密和解密请求将被拒绝。"),
    ScheduleDeletion => ("Schedule deletion", "计划删除"),
    PendingWindow => ("Waiting period (days, 7-366)", "预删除周期（天，7-366）"),
    ConfirmScheduleDeletion => ("Schedule this key for deletion? When the waiting period ends the key and its material are destroyed for good.", "确定计划删除此密钥吗？预删除周期结束后，密钥及其材料将被永久销毁。"),
    CancelDeletion => ("Cancel deletion", "取消删除"),
    RotationPolicy => ("Rotation policy", "轮转策略"),
    RotationEnable => ("Rotate automatically", "自动轮转"),
    RotationInterval => ("Interval (days, 7-730)", "周期（天，7-730）"),
    Save => ("Save", "保存"),
    ConfirmRemoveAlias => ("Remove this alias?", "确定移除此别名吗？"),
    ConfirmRemoveTag => ("Remove this tag?", "确定移除此标签吗？"),
    Error => ("The server refused", "服务端拒绝了请求"),
    Back => ("Back to keys", "返回密钥列表"),
    NotFound => ("Not found.", "未找到。"),
    Skip => ("Skip to content", "跳到正文"),
    SignedInAs => ("Signed in as", "当前用户"),
    Account => ("Account", "账号"),
    Primary => ("primary", "主版本"),
    DeletionProtection => ("Deletion protection", "删除保护"),
    DeletionProtectionOn => ("Protect this key from deletion", "开启删除保护"),
    LooksLikeAk => ("That user name looks like an AccessKey ID: to sign in with an access key, choose \"Access key\".", "该用户名看起来是 AccessKey ID：如需使用访问密钥登录，请选择“访问密钥”。"),
    WrapWithOpenssl => ("Then wrap 32 bytes with openssl, in the folder where you saved PublicKey_base64.txt (the commands for the algorithm chosen above):", "然后在保存 PublicKey_base64.txt 的目录中，用 openssl 加密 32 字节的密钥材料（以下为上面所选算法对应的命令）："),
    Copy => ("Copy", "复制"),
    Copied => ("Copied", "已复制"),
    ImportChecklist => ("The server does not say which check failed (so the import is no padding oracle). Check that:", "服务端不会说明哪一项检查失败（以免导入成为填充预言机）。请确认："),
    CheckAlgorithm => ("the material was wrapped with the algorithm chosen for this token, and with the public key downloaded with it;", "密钥材料使用了获取此导入令牌时所选的算法，以及与令牌一同下载的公钥进行加密；"),
    Check32 => ("the key material is exactly 32 bytes before wrapping;", "加密前的密钥材料恰好为 32 字节；"),
    CheckSame => ("if this key had material before, it is the same material: a key takes only the material of its first import;", "如果该密钥之前导入过材料，本次必须是相同的材料：密钥只接受首次导入的材料；"),
    CheckToken => ("the token is not withdrawn (after 10 failed imports) or expired (after 24 hours): if in doubt, get new import parameters.", "导入令牌未被撤销（导入失败 10 次后）或过期（24 小时后）：如有疑问，请重新获取导入参数。"),
    HintToken => ("This token cannot be used: it was withdrawn after 10 failed imports, is another key's, or the token and public key files are swapped. Get new import parameters and wrap the material with the new public key.", "此导入令牌不可用：导入失败 10 次后已被撤销、属于其他密钥，或令牌文件与公钥文件互换了。请重新获取导入参数，并用新公钥加密密钥材料。"),
    HintExpired => ("Import tokens last 24 hours: get new import parameters and wrap the material with the new public key.", "导入令牌有效期为 24 小时：请重新获取导入参数，并用新公钥加密密钥材料。"),
    // Secrets Manager (issue 18).
    Secrets => ("Secrets", "凭据"),
    CreateSecret => ("Create secret", "创建凭据"),
    NoSecrets => ("No secrets yet.", "暂无凭据。"),
    SecretName => ("Secret name", "凭据名称"),
    SecretValue => ("Secret value", "凭据值"),
    NewValue => ("New value", "新的凭据值"),
    EncryptionKey => ("Encryption key (KeyId or alias)", "加密密钥（KeyId 或别名）"),
    DefaultKey => ("default: the account's secrets key", "默认：账号的凭据默认密钥"),
    Updated => ("Updated", "更新时间"),
    PlannedDeletion => ("Scheduled for deletion", "计划删除"),
    BackToSecrets => ("Back to secrets", "返回凭据列表"),
    RestoreSecret => ("Restore", "恢复凭据"),
    DeleteSecret => ("Delete", "删除凭据"),
    RecoveryWindow => ("Recovery window (days, 7-30)", "恢复窗口（天，7-30）"),
    ConfirmDeleteSecret => ("Delete this secret? Its values can be read again only if it is restored within the recovery window.", "确定删除此凭据吗？只有在恢复窗口内恢复后，才能再次读取其凭据值。"),
    Stage => ("Stage", "版本状态"),
    Stages => ("Stages", "版本状态"),
    RevealValue => ("Show value", "显示凭据值"),
    RevealedHint => ("Shown on request; the request is in the audit trail. It is not kept in the page.", "按需显示；本次请求已记入审计日志。凭据值不会保存在页面中。"),
    HideValue => ("Hide", "隐藏"),
    PutValue => ("Store new version", "存入新版本"),
    MoveToVersion => ("To version", "目标版本"),
    MoveStage => ("Move stage", "移动版本状态"),
    HintLineBreaks => ("The encrypted key material file has line breaks: openssl wraps base64 every 64 characters unless given -A. Make it again with: openssl enc -e -base64 -A -in EncryptedKeyMaterial.bin -out EncryptedKeyMaterial_base64.txt", "加密后的密钥材料文件含有换行：openssl 不加 -A 时每 64 个字符换行。请重新生成：openssl enc -e -base64 -A -in EncryptedKeyMaterial.bin -out EncryptedKeyMaterial_base64.txt"),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_text_has_both_languages() {
        for t in Text::ALL {
            assert!(
                !t.get(Lang::En).is_empty() && !t.get(Lang::Zh).is_empty(),
                "{t:?}"
            );
        }
        assert_eq!(Lang::from_cookie(Some("zh-CN")), Lang::Zh);
        assert_eq!(Lang::from_cookie(Some("fr")), Lang::En);
        assert_eq!(Lang::Zh.t(Text::Keys), "密钥");
    }

    #[test]
    fn paging_counts_keys_in_the_singular_and_plural() {
        assert_eq!(Lang::En.paging(1, 1, 1), "Page 1/1 · 1 key");
        assert_eq!(Lang::En.paging(1, 1, 0), "Page 1/1 · 0 keys");
        assert_eq!(Lang::En.paging(2, 3, 41), "Page 2/3 · 41 keys");
        assert_eq!(Lang::Zh.paging(1, 1, 1), "第 1/1 页 · 共 1 个密钥");
    }
}
