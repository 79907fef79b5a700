//! What the simulated customers write: message texts by intent class and
//! the email fixtures the email and SES traffic is made from.

/// Texts by intent class. Rules match case-insensitively.
pub const FAQ: &[&str] = &[
    "Hi, where is my order? I ordered last week.",
    "What is your return policy for shoes?",
    "How long does shipping take to Canada?",
    "Can you send the tracking number for order 1042 please",
    "My package hasn't arrived yet, order status?",
];
pub const TIER0: &[&str] = &[
    "I will file a chargeback with my bank if this is not fixed",
    "This is fraud, I didn't authorize this purchase",
    "I am talking to my lawyer about this order",
];
pub const NEUTRAL: &[&str] = &[
    "Thanks for the quick help yesterday!",
    "Do you have the blue one in a size 10?",
    "Please update the address on my account",
    "Hello, I have a question about my subscription",
];

/// Real-world emails (encodings, attachments, alternatives) to vary.
pub const EMAIL_FIXTURES: &[&str] = &[
    include_str!("../../fixtures/japanese-base64.eml"),
    include_str!("../../fixtures/multipart-attachment.eml"),
    include_str!("../../fixtures/rfc2046-alternative.eml"),
];
