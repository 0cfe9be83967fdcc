//! Validated stage definitions (`stages:`): one variant per stage type with its settings, and
//! the value types they use (prompt fields, consent modes, device classes…). Each kind's
//! settings are one struct whose fields carry the YAML key names. Built only by
//! `validate/stages.rs` (and the files it calls); re-exported from [`super::model`]; each struct
//! is turned into its running stage by `from_config` in `flow/stages/<kind>.rs`.

use std::time::Duration;

/// Default `password.failed_attempts_before_cancel`: attempts before the flow is cancelled.
pub const DEFAULT_FAILED_ATTEMPTS_BEFORE_CANCEL: u32 = 5;
/// Default `email.from_address`.
pub const DEFAULT_EMAIL_FROM: &str = "flowgate@localhost";
/// Default `email.subject`.
pub const DEFAULT_EMAIL_SUBJECT: &str = "flowgate";
/// Default `redirect.mode`.
pub const DEFAULT_REDIRECT_MODE: &str = "static";
/// Default `authenticator_totp.friendly_name`.
pub const DEFAULT_TOTP_FRIENDLY_NAME: &str = "TOTP";
/// Default `authenticator_validate.device_classes`.
pub const DEFAULT_DEVICE_CLASSES: &[&str] = &["totp", "static", "webauthn"];
/// Default `email.token_expiry`: 30 minutes.
pub const DEFAULT_EMAIL_TOKEN_EXPIRY: Duration = Duration::from_secs(30 * 60);
/// Default `captcha.score_min_threshold` (score, 0 to 1).
pub const DEFAULT_CAPTCHA_SCORE_MIN: f64 = 0.5;
/// Default `captcha.score_max_threshold` (score, 0 to 1).
pub const DEFAULT_CAPTCHA_SCORE_MAX: f64 = 1.0;
/// Default `captcha.timeout` for the siteverify call: 10 seconds.
pub const DEFAULT_CAPTCHA_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `consent.consent_expire_in`: 4 weeks.
pub const DEFAULT_CONSENT_EXPIRE_IN: Duration = Duration::from_secs(4 * 7 * 86_400);
/// Default `authenticator_totp.digits`.
pub const DEFAULT_TOTP_DIGITS: u32 = 6;
/// Default `authenticator_webauthn.friendly_name`.
pub const DEFAULT_WEBAUTHN_FRIENDLY_NAME: &str = "Passkey";
/// Default `authenticator_static.token_count`.
pub const DEFAULT_STATIC_TOKEN_COUNT: u32 = 6;

/// A validated stage definition: one variant per kind, each holding its kind's settings under
/// the YAML key names. `flow::stages` builds the running stage from it (`from_config`).
#[derive(Debug, Clone)]
pub enum StageDef {
    /// Who are you.
    Identification(IdentificationDef),
    /// Password check.
    Password(PasswordDef),
    /// Log the pending user in.
    UserLogin(UserLoginDef),
    /// Log out (the whole sign-on; with `terminate_other_sessions`, every session of the user).
    UserLogout {
        /// Also end the user's sessions on other devices.
        terminate_other_sessions: bool,
    },
    /// Always deny.
    Deny(DenyDef),
    /// Create or update the pending user from `prompt_data`.
    UserWrite(UserWriteDef),
    /// Delete the pending (logged-in) user and log out.
    UserDelete,
    /// Ask for values.
    Prompt(PromptDef),
    /// Send a link by mail; the link resumes the flow.
    Email(EmailDef),
    /// Captcha verified through a siteverify endpoint.
    Captcha(CaptchaSettings),
    /// Ask the user to agree.
    Consent(ConsentDef),
    /// Send the user elsewhere.
    Redirect(RedirectDef),
    /// Shows a page and continues (debugging).
    Dummy(DummyDef),
    /// Requires an invitation token.
    Invitation(InvitationDef),
    /// Sets up a TOTP authenticator.
    AuthenticatorTotp(AuthenticatorTotpDef),
    /// Creates recovery codes.
    AuthenticatorStatic(AuthenticatorStaticDef),
    /// Checks a second factor.
    AuthenticatorValidate(AuthenticatorValidateDef),
    /// Registers and manages passkeys and security keys (WebAuthn).
    AuthenticatorWebauthn(AuthenticatorWebauthnDef),
}

/// `identification` settings.
#[derive(Debug, Clone)]
pub struct IdentificationDef {
    /// Fields matched: `username`, `email`.
    pub user_fields: Vec<String>,
    /// Case-insensitive matching.
    pub case_insensitive_matching: bool,
    /// Continue with a fake user when unknown.
    pub pretend_user_exists: bool,
    /// Show the matched username rather than what was typed.
    pub show_matched_user: bool,
    /// Embedded password stage.
    pub password_stage: Option<String>,
    /// Flow linked as "Sign up".
    pub enrollment_flow: Option<String>,
    /// Flow linked as "Forgot password?".
    pub recovery_flow: Option<String>,
    /// Sources offered as login buttons (keys of `sources:`).
    pub sources: Vec<String>,
    /// Show the sources' names next to their icons.
    pub show_source_labels: bool,
    /// The enabled ones of `sources`, resolved against `sources:` (filled by validation).
    pub source_buttons: Vec<SourceButton>,
    /// An `authenticator_validate` stage whose WebAuthn settings drive passkey autofill.
    pub webauthn_stage: Option<String>,
    /// Flow linked as "Use a passkey".
    pub passwordless_flow: Option<String>,
}

/// A source as the identification stage shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceButton {
    /// Source key.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Icon.
    pub icon_url: Option<String>,
}

/// `password` settings.
#[derive(Debug, Clone)]
pub struct PasswordDef {
    /// Cancel the flow after this many failures.
    pub failed_attempts_before_cancel: u32,
    /// Offer a show-password toggle.
    pub allow_show_password: bool,
    /// Where the password is checked, in order (default: `local` only).
    pub backends: Vec<super::ldap_model::PasswordBackend>,
}

/// `user_login` settings.
#[derive(Debug, Clone)]
pub struct UserLoginDef {
    /// Session lifetime; `None` uses the session ttl.
    pub session_duration: Option<Duration>,
    /// Added to the lifetime when the user ticks "remember me"; `None` hides the choice.
    pub remember_me_offset: Option<Duration>,
    /// Delete the user's other sessions after login.
    pub terminate_other_sessions: bool,
}

/// `deny` settings.
#[derive(Debug, Clone)]
pub struct DenyDef {
    /// Message shown.
    pub deny_message: String,
}

/// `user_write` settings.
#[derive(Debug, Clone)]
pub struct UserWriteDef {
    /// When to create a user.
    pub user_creation_mode: UserCreationMode,
    /// New users start inactive (activated later, e.g. by the email stage).
    pub create_users_as_inactive: bool,
    /// Group new users join.
    pub create_users_group: Option<String>,
}

/// `prompt` settings.
#[derive(Debug, Clone)]
pub struct PromptDef {
    /// Fields in display order.
    pub fields: Vec<PromptField>,
    /// Policies the submitted values must pass (mode all).
    pub validation_policies: Vec<String>,
}

/// `email` settings.
#[derive(Debug, Clone)]
pub struct EmailDef {
    /// Sender.
    pub from_address: String,
    /// Subject line.
    pub subject: String,
    /// Which built-in (or overridden) mail template.
    pub template: EmailTemplate,
    /// Lifetime of the link.
    pub token_expiry: Duration,
    /// Activate the user when the link is followed.
    pub activate_user_on_success: bool,
}

/// `consent` settings (`mode` and `consent_expire_in` of the YAML, in one value).
#[derive(Debug, Clone)]
pub struct ConsentDef {
    /// How long an agreement lasts.
    pub mode: ConsentMode,
}

/// `redirect` settings (`mode`, `target_static` and `target_flow` of the YAML, in one value).
#[derive(Debug, Clone)]
pub struct RedirectDef {
    /// Where.
    pub target: RedirectTarget,
    /// Flow mode: carry the context into the target flow.
    pub keep_context: bool,
}

/// `dummy` settings.
#[derive(Debug, Clone)]
pub struct DummyDef {
    /// Fail instead.
    pub throw_error: bool,
}

/// `invitation` settings.
#[derive(Debug, Clone)]
pub struct InvitationDef {
    /// Continue without one.
    pub continue_flow_without_invitation: bool,
}

/// `authenticator_totp` settings.
#[derive(Debug, Clone)]
pub struct AuthenticatorTotpDef {
    /// 6 or 8.
    pub digits: u32,
    /// Device name.
    pub friendly_name: String,
}

/// `authenticator_static` settings.
#[derive(Debug, Clone)]
pub struct AuthenticatorStaticDef {
    /// How many.
    pub token_count: u32,
}

/// `authenticator_validate` settings.
#[derive(Debug, Clone)]
pub struct AuthenticatorValidateDef {
    /// Allowed device classes.
    pub device_classes: Vec<DeviceClass>,
    /// Without a device.
    pub not_configured_action: NotConfiguredAction,
    /// Setup stages offered by `configure`.
    pub configuration_stages: Vec<String>,
    /// `webauthn_user_verification`.
    pub webauthn_user_verification: WebauthnRequirement,
}

/// `authenticator_webauthn` settings.
#[derive(Debug, Clone)]
pub struct AuthenticatorWebauthnDef {
    /// `user_verification`.
    pub user_verification: WebauthnRequirement,
    /// `resident_key_requirement` (discoverable credential).
    pub resident_key_requirement: WebauthnRequirement,
    /// `authenticator_attachment`: `platform` or `cross-platform`; `None` allows both.
    pub authenticator_attachment: Option<AuthenticatorAttachment>,
    /// Name of a new device (numbered when the user has several).
    pub friendly_name: String,
}

/// WebAuthn `required`/`preferred`/`discouraged` (user verification, resident keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebauthnRequirement {
    /// Must.
    Required,
    /// Ask for it.
    Preferred,
    /// Do not ask.
    Discouraged,
}

impl WebauthnRequirement {
    /// The config spellings, as accepted in the YAML.
    pub const ALL: &'static [(&'static str, WebauthnRequirement)] = &[
        ("required", WebauthnRequirement::Required),
        ("preferred", WebauthnRequirement::Preferred),
        ("discouraged", WebauthnRequirement::Discouraged),
    ];

    /// The spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Required => "required",
            Self::Preferred => "preferred",
            Self::Discouraged => "discouraged",
        }
    }
}

/// `authenticator_webauthn.authenticator_attachment`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthenticatorAttachment {
    /// Built into the device (a platform passkey).
    Platform,
    /// Roaming (a USB/NFC security key, a phone).
    CrossPlatform,
}

impl AuthenticatorAttachment {
    /// The config spellings, as accepted in the YAML.
    pub const ALL: &'static [(&'static str, AuthenticatorAttachment)] = &[
        ("platform", AuthenticatorAttachment::Platform),
        ("cross-platform", AuthenticatorAttachment::CrossPlatform),
    ];

    /// The spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Platform => "platform",
            Self::CrossPlatform => "cross-platform",
        }
    }
}

/// `user_write.user_creation_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserCreationMode {
    /// Never; a pending user is required.
    NeverCreate,
    /// When there is no pending user.
    CreateWhenRequired,
    /// Always create a new user.
    AlwaysCreate,
}

impl UserCreationMode {
    /// The config spellings, as accepted in the YAML.
    pub const ALL: &'static [(&'static str, UserCreationMode)] = &[
        ("never_create", UserCreationMode::NeverCreate),
        ("create_when_required", UserCreationMode::CreateWhenRequired),
        ("always_create", UserCreationMode::AlwaysCreate),
    ];
}

/// One prompt field.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PromptField {
    /// Key in `prompt_data` and in the response.
    pub field_key: String,
    /// Label.
    pub label: String,
    /// Field type (docs/design.md §5.7 spelling).
    #[serde(rename = "type")]
    pub kind: PromptKind,
    /// Required.
    pub required: bool,
    /// Placeholder (the value of `hidden` and `static`).
    pub placeholder: String,
    /// Initial value.
    pub initial_value: String,
    /// Help text.
    pub sub_text: String,
    /// Sort key.
    pub order: i64,
    /// Choices of `radio-button-group` and `dropdown`.
    pub choices: Vec<String>,
}

/// Prompt field types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PromptKind {
    /// Text.
    Text,
    /// Multi-line text.
    TextArea,
    /// Text forced to its initial value.
    TextReadOnly,
    /// Multi-line text forced to its initial value.
    TextAreaReadOnly,
    /// A username not used by another user.
    Username,
    /// An email address.
    Email,
    /// A password (two of them must match).
    Password,
    /// An integer.
    Number,
    /// A boolean.
    Checkbox,
    /// One of the choices.
    RadioButtonGroup,
    /// One of the choices.
    Dropdown,
    /// `YYYY-MM-DD`.
    Date,
    /// `YYYY-MM-DDTHH:MM[:SS]`.
    DateTime,
    /// A base64 data URI.
    File,
    /// A visual separator.
    Separator,
    /// Forced to the placeholder, not shown.
    Hidden,
    /// Forced to the placeholder, shown as text.
    Static,
    /// A locale code.
    AkLocale,
}

impl PromptKind {
    /// All types with their config spelling.
    pub const ALL: &'static [(&'static str, PromptKind)] = &[
        ("text", PromptKind::Text),
        ("text_area", PromptKind::TextArea),
        ("text_read_only", PromptKind::TextReadOnly),
        ("text_area_read_only", PromptKind::TextAreaReadOnly),
        ("username", PromptKind::Username),
        ("email", PromptKind::Email),
        ("password", PromptKind::Password),
        ("number", PromptKind::Number),
        ("checkbox", PromptKind::Checkbox),
        ("radio-button-group", PromptKind::RadioButtonGroup),
        ("dropdown", PromptKind::Dropdown),
        ("date", PromptKind::Date),
        ("date-time", PromptKind::DateTime),
        ("file", PromptKind::File),
        ("separator", PromptKind::Separator),
        ("hidden", PromptKind::Hidden),
        ("static", PromptKind::Static),
        ("ak-locale", PromptKind::AkLocale),
    ];

    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, k)| *k == self)
            .map(|(n, _)| *n)
            .unwrap_or("text")
    }
}

/// Built-in mail templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailTemplate {
    /// "Confirm your address" (enrollment).
    AccountConfirmation,
    /// "Reset your password" (recovery).
    PasswordReset,
}

impl EmailTemplate {
    /// The config spellings, which are also the template file stems.
    pub const ALL: &'static [(&'static str, EmailTemplate)] = &[
        ("account_confirmation", EmailTemplate::AccountConfirmation),
        ("password_reset", EmailTemplate::PasswordReset),
    ];

    /// Template file stem.
    pub fn name(self) -> &'static str {
        match self {
            EmailTemplate::AccountConfirmation => "account_confirmation",
            EmailTemplate::PasswordReset => "password_reset",
        }
    }
}

/// Captcha stage settings.
#[derive(Debug, Clone)]
pub struct CaptchaSettings {
    /// Site key shown to the browser.
    pub public_key: String,
    /// Secret sent to siteverify.
    pub private_key: String,
    /// Interactive widget.
    pub interactive: bool,
    /// Lowest score accepted (-1: none).
    pub score_min_threshold: f64,
    /// Highest score accepted (-1: none).
    pub score_max_threshold: f64,
    /// Check success and score.
    pub error_on_invalid_score: bool,
    /// Widget script.
    pub js_url: String,
    /// siteverify endpoint.
    pub api_url: String,
    /// Deadline of one verification.
    pub timeout: Duration,
}

/// Consent modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentMode {
    /// Ask every time.
    AlwaysRequire,
    /// Ask once.
    Permanent,
    /// Ask again after this long.
    Expiring(Duration),
}

/// Redirect targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedirectTarget {
    /// A URL (relative paths or http(s) URLs).
    Static(String),
    /// Another flow, by slug.
    Flow(String),
}

/// Authenticator device classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceClass {
    /// TOTP apps.
    Totp,
    /// Recovery codes.
    Static,
    /// Passkeys and security keys.
    Webauthn,
}

/// What authenticator_validate does for a user without a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotConfiguredAction {
    /// Continue.
    Skip,
    /// Deny.
    Deny,
    /// Run a configuration stage.
    Configure,
}

impl NotConfiguredAction {
    /// The config spellings, as accepted in the YAML.
    pub const ALL: &'static [(&'static str, NotConfiguredAction)] = &[
        ("skip", NotConfiguredAction::Skip),
        ("deny", NotConfiguredAction::Deny),
        ("configure", NotConfiguredAction::Configure),
    ];
}

impl StageDef {
    /// The `type:` spelling.
    pub fn kind(&self) -> &'static str {
        match self {
            StageDef::Identification(_) => "identification",
            StageDef::Password(_) => "password",
            StageDef::UserLogin(_) => "user_login",
            StageDef::UserLogout { .. } => "user_logout",
            StageDef::Deny(_) => "deny",
            StageDef::UserWrite(_) => "user_write",
            StageDef::UserDelete => "user_delete",
            StageDef::Prompt(_) => "prompt",
            StageDef::Email(_) => "email",
            StageDef::Captcha(_) => "captcha",
            StageDef::Consent(_) => "consent",
            StageDef::Redirect(_) => "redirect",
            StageDef::Dummy(_) => "dummy",
            StageDef::Invitation(_) => "invitation",
            StageDef::AuthenticatorTotp(_) => "authenticator_totp",
            StageDef::AuthenticatorStatic(_) => "authenticator_static",
            StageDef::AuthenticatorValidate(_) => "authenticator_validate",
            StageDef::AuthenticatorWebauthn(_) => "authenticator_webauthn",
        }
    }
}
