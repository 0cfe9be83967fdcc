//! The policy kinds: each flowgate policy type with its authentik model (or a `flowgate.` model
//! for request matchers authentik lacks) and attribute mapping.

use super::unused::*;
use super::{attr, Attr, Kind};

/// Policies.
pub const POLICIES: &[Kind] = &[
    Kind {
        native: "expression",
        model: "authentik_policies_expression.expressionpolicy",
        attrs: &[attr("expression", Attr::Same)],
        ignored: &[("execution_logging", is_empty)],
    },
    Kind {
        native: "password",
        model: "authentik_policies_password.passwordpolicy",
        attrs: &[
            attr("password_field", Attr::Same),
            attr("check_static_rules", Attr::Same),
            attr("check_have_i_been_pwned", Attr::Same),
            attr("check_zxcvbn", Attr::Same),
            attr("amount_digits", Attr::Same),
            attr("amount_uppercase", Attr::Same),
            attr("amount_lowercase", Attr::Same),
            attr("amount_symbols", Attr::Same),
            attr("length_min", Attr::Same),
            attr("symbol_charset", Attr::Same),
            attr("error_message", Attr::Same),
            attr("hibp_allowed_count", Attr::Same),
            attr("zxcvbn_score_threshold", Attr::Same),
        ],
        ignored: &[("execution_logging", is_empty)],
    },
    Kind {
        native: "reputation",
        model: "authentik_policies_reputation.reputationpolicy",
        attrs: &[
            attr("check_ip", Attr::Same),
            attr("check_username", Attr::Same),
            attr("threshold", Attr::Same),
        ],
        ignored: &[("execution_logging", is_empty)],
    },
    Kind {
        native: "dummy",
        model: "authentik_policies_dummy.dummypolicy",
        attrs: &[
            attr("result", Attr::Same),
            attr("wait_min", Attr::Seconds),
            attr("wait_max", Attr::Seconds),
        ],
        ignored: &[("execution_logging", is_empty)],
    },
    Kind {
        native: "password_expiry",
        model: "authentik_policies_expiry.passwordexpirypolicy",
        attrs: &[attr("days", Attr::Same), attr("deny_only", Attr::Same)],
        ignored: &[("execution_logging", is_empty)],
    },
    // flowgate's request matchers have no authentik model; these names let them survive an
    // export → import round trip (authentik itself refuses them).
    Kind {
        native: "path",
        model: "flowgate.pathpolicy",
        attrs: &[attr("regex", Attr::Same)],
        ignored: &[],
    },
    Kind {
        native: "method",
        model: "flowgate.methodpolicy",
        attrs: &[attr("methods", Attr::Same)],
        ignored: &[],
    },
    Kind {
        native: "source_cidr",
        model: "flowgate.sourcecidrpolicy",
        attrs: &[attr("cidrs", Attr::Same)],
        ignored: &[],
    },
    Kind {
        native: "header",
        model: "flowgate.headerpolicy",
        attrs: &[("name", "header_name", Attr::Same), attr("regex", Attr::Same)],
        ignored: &[],
    },
    Kind {
        native: "time",
        model: "flowgate.timepolicy",
        attrs: &[
            attr("weekdays", Attr::Same),
            attr("from", Attr::Same),
            attr("to", Attr::Same),
        ],
        ignored: &[],
    },
];
