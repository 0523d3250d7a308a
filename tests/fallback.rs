//! The Fallback rules: which failures move on to the next route and which stop.

use std::sync::Arc;

use async_trait::async_trait;
use mockall::mock;
use tidings::{
    contact::{Address, Channel},
    message::{Message, Receipt},
    transport::{
        Capabilities, DeliveryError, DeliveryErrorKind, Fallback, SendContext, SharedTransport,
        Transport, fallback::AttemptFailure, stub::StubTransport,
    },
};

mock! {
    Route {}
    #[async_trait]
    impl Transport for Route {
        fn channel(&self) -> &Channel;
        fn capabilities(&self) -> Capabilities;
        async fn send(&self, to: &Address, message: &Message, ctx: &SendContext) -> Result<Receipt, DeliveryError>;
    }
}

fn addresses() -> Vec<Address> {
    vec![
        Address::messenger("page-1", "psid-1").unwrap(),
        Address::email("ann@example.org").unwrap(),
    ]
}

fn msg() -> Message {
    Message::text("Your payment arrived").unwrap()
}

fn failing(channel: Channel, error: DeliveryError) -> Arc<StubTransport> {
    Arc::new(StubTransport::new(channel).with_permanent_failure(error))
}

#[tokio::test]
async fn window_closed_and_unreachable_fall_through_to_the_next_transport() {
    for error in [
        DeliveryError::window_closed("last inbound 30 h ago"),
        DeliveryError::unreachable("user blocked the Page"),
    ] {
        let messenger = failing(Channel::Messenger, error.clone());
        let email = Arc::new(StubTransport::new(Channel::Email));
        let fallback = Fallback::new([
            messenger.clone() as SharedTransport,
            email.clone() as SharedTransport,
        ]);

        let delivered = fallback
            .send(&addresses(), &msg(), &SendContext::update())
            .await
            .unwrap();
        assert_eq!(delivered.receipt.channel, Channel::Email);
        assert_eq!(
            delivered.address,
            Address::email("ann@example.org").unwrap()
        );
        assert_eq!(delivered.passed_over.len(), 1);
        match &delivered.passed_over[0].failure {
            AttemptFailure::Failed(e) => assert_eq!(e.kind(), error.kind()),
            other => panic!("expected the Messenger failure, got {other:?}"),
        }
        assert_eq!(messenger.attempts(), 1);
        assert_eq!(email.sent().len(), 1);
    }
}

#[tokio::test]
async fn retryable_invalid_unauthorized_and_other_stop_without_trying_the_next() {
    for error in [
        DeliveryError::retryable("Graph code 613"),
        DeliveryError::invalid_message("label longer than 20"),
        DeliveryError::unauthorized("token expired"),
        DeliveryError::other("unexpected"),
    ] {
        let messenger = failing(Channel::Messenger, error.clone());
        let mut email = MockRoute::new();
        email.expect_channel().return_const(Channel::Email);
        email.expect_send().times(0);
        let fallback = Fallback::new([
            messenger.clone() as SharedTransport,
            Arc::new(email) as SharedTransport,
        ]);

        let undelivered = fallback
            .send(&addresses(), &msg(), &SendContext::update())
            .await
            .unwrap_err();
        assert!(undelivered.stopped, "{error} should stop the fallback");
        assert_eq!(undelivered.attempts.len(), 1);
        assert_eq!(
            undelivered.last_error().map(|e| e.kind()),
            Some(error.kind())
        );
        assert!(
            undelivered
                .to_string()
                .starts_with("not delivered: stopped at"),
            "{undelivered}"
        );
    }
}

#[tokio::test]
async fn a_transport_without_an_address_is_passed_over() {
    let mut messenger = MockRoute::new();
    messenger.expect_channel().return_const(Channel::Messenger);
    messenger.expect_send().times(0);
    let email = Arc::new(StubTransport::new(Channel::Email));
    let fallback = Fallback::new([
        Arc::new(messenger) as SharedTransport,
        email.clone() as SharedTransport,
    ]);

    let only_email = [Address::email("ann@example.org").unwrap()];
    let delivered = fallback
        .send(&only_email, &msg(), &SendContext::update())
        .await
        .unwrap();
    assert_eq!(delivered.receipt.channel, Channel::Email);
    assert!(matches!(
        delivered.passed_over[0].failure,
        AttemptFailure::NoAddress
    ));
    assert_eq!(delivered.passed_over[0].channel, Channel::Messenger);
}

#[tokio::test]
async fn every_address_of_a_channel_is_tried_in_order() {
    let mut messenger = MockRoute::new();
    messenger.expect_channel().return_const(Channel::Messenger);
    let mut seq = mockall::Sequence::new();
    messenger
        .expect_send()
        .withf(|to, _, _| to.scope() == Some("page-1"))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Err(DeliveryError::unreachable("blocked on page 1")));
    messenger
        .expect_send()
        .withf(|to, _, _| to.scope() == Some("page-2"))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|to, _, _| {
            Ok(Receipt::new(
                to.channel().clone(),
                vec!["mid.2".into()],
                tidings::Timestamp::from_millis(1),
            ))
        });
    let fallback = Fallback::new([Arc::new(messenger) as SharedTransport]);
    let two_pages = [
        Address::messenger("page-1", "psid-1").unwrap(),
        Address::messenger("page-2", "psid-9").unwrap(),
    ];
    let delivered = fallback
        .send(&two_pages, &msg(), &SendContext::update())
        .await
        .unwrap();
    assert_eq!(delivered.receipt.message_ids, ["mid.2"]);
    assert_eq!(delivered.address.scope(), Some("page-2"));
}

#[tokio::test]
async fn exhausting_every_route_reports_each_attempt() {
    let messenger = failing(Channel::Messenger, DeliveryError::window_closed("8 days"));
    let email = failing(Channel::Email, DeliveryError::unreachable("bounced"));
    let sms: SharedTransport = Arc::new(StubTransport::new(Channel::custom("sms").unwrap()));
    let fallback = Fallback::new([messenger as SharedTransport, email as SharedTransport, sms]);

    let undelivered = fallback
        .send(&addresses(), &msg(), &SendContext::update())
        .await
        .unwrap_err();
    assert!(!undelivered.stopped);
    let channels: Vec<String> = undelivered
        .attempts
        .iter()
        .map(|a| a.channel.to_string())
        .collect();
    assert_eq!(channels, ["messenger", "email", "custom:sms"]);
    assert!(matches!(
        undelivered.attempts[2].failure,
        AttemptFailure::NoAddress
    ));
    assert_eq!(
        undelivered.last_error().map(|e| e.kind()),
        Some(DeliveryErrorKind::Unreachable)
    );

    let nobody = Fallback::new(Vec::<SharedTransport>::new());
    let err = nobody
        .send(&addresses(), &msg(), &SendContext::update())
        .await
        .unwrap_err();
    assert!(err.attempts.is_empty());
    assert_eq!(
        err.to_string(),
        "not delivered: no transport has an address for this recipient"
    );
}

#[tokio::test]
async fn the_stub_checks_channel_and_capabilities_before_sending() {
    let narrow = StubTransport::new(Channel::Messenger)
        .with_capabilities(Capabilities::text_only().with_choices(3, Some(20)));
    let four = (0..4)
        .fold(Message::builder("Pick"), |b, i| {
            b.choice(format!("c{i}"), format!("p{i}"))
        })
        .build()
        .unwrap();
    let to = Address::messenger("p", "u").unwrap();
    let err = narrow
        .send(&to, &four, &SendContext::reply())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), DeliveryErrorKind::InvalidMessage);
    let err = narrow
        .send(
            &Address::email("a@b.c").unwrap(),
            &msg(),
            &SendContext::reply(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), DeliveryErrorKind::InvalidMessage);
    assert!(narrow.sent().is_empty());
    assert_eq!(narrow.attempts(), 2);

    let receipt = narrow
        .send(&to, &msg(), &SendContext::reply())
        .await
        .unwrap();
    let sent = narrow.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].receipt, receipt);
    assert_eq!(sent[0].ctx, SendContext::reply());
}
