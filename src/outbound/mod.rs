//! Outbound calls: mail (SMTP or files) and captcha siteverify. (Being written.)
