//! Any bytes into the webhook model and the conversion to `Inbound`: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidings::{
    clock::Timestamp,
    messenger::{event::WebhookBody, inbound::to_inbound},
};

fuzz_target!(|data: &[u8]| {
    if let Ok(body) = serde_json::from_slice::<WebhookBody<'_>>(data) {
        for entry in body.entry {
            let page = entry.id.clone();
            let events = entry.messaging.into_iter().map(|e| (e, false)).chain(entry.standby.into_iter().map(|e| (e, true)));
            for (event, standby) in events {
                let _ = to_inbound(&page, event, standby, Timestamp::from_millis(0));
            }
        }
    }
});
