use std::time::Duration;

use ports::{FlagSet, FlagStore, KillSwitch};
use tower::ServiceExt;

use super::*;
use crate::flags::test_store::MemFlags;
use crate::layers::testing::{assert_no_request, mock, ok, read, write};
use tower::Layer;

fn flags(pairs: &[(&str, &str)]) -> Flags {
    let mut set = FlagSet::default();
    for (k, v) in pairs {
        set.values.insert((*k).into(), (*v).into());
    }
    Flags::from_set(&set)
}

#[test]
fn decision_table() {
    let none = flags(&[]);
    assert_eq!(check(&none, &write(true)), Ok(()));
    let all = flags(&[("kill-switch", "all_writes")]);
    assert_eq!(
        check(&all, &write(false)),
        Err(Suppressed::KillSwitch("all_writes"))
    );
    assert_eq!(check(&all, &read()), Ok(()), "reads pass the kill switch");
    let replies = flags(&[("kill-switch", "auto_replies")]);
    assert_eq!(
        check(&replies, &write(true)),
        Err(Suppressed::KillSwitch("auto_replies"))
    );
    assert_eq!(
        check(&replies, &write(false)),
        Ok(()),
        "routing writes still allowed"
    );
    let paused = flags(&[("pause.richpanel", "on")]);
    assert_eq!(
        check(&paused, &read()),
        Err(Suppressed::Paused(Downstream::Richpanel))
    );
    let safe = flags(&[("safe-mode", "on")]);
    assert_eq!(check(&safe, &write(true)), Err(Suppressed::SafeMode));
    assert_eq!(check(&safe, &write(false)), Ok(()));
    let mut enrich = read();
    enrich.optional = true;
    assert_eq!(check(&safe, &enrich), Err(Suppressed::SafeMode));
    let chan = flags(&[("channel.email", "off")]);
    assert_eq!(
        check(&chan, &write(false)),
        Err(Suppressed::ChannelDisabled("email".into()))
    );
    let tpl = flags(&[("template.faq_order", "off")]);
    assert_eq!(
        check(&tpl, &write(true)),
        Err(Suppressed::TemplateDisabled("faq_order".into()))
    );
}

#[tokio::test(start_paused = true)]
async fn flip_reaches_the_layer_within_one_ttl_and_nothing_reaches_inner() {
    let store = Arc::new(MemFlags::default());
    let cache = Arc::new(FlagCache::new(
        store.clone(),
        Duration::from_millis(200),
        KillSwitch::Off,
        false,
    ));
    let (inner, mut handle) = mock();
    let mut svc = KillSwitchLayer::new(cache).layer(inner);

    let call = tokio::spawn(svc.clone().oneshot(write(false)));
    let (_, send) = handle.next_request().await.expect("request reaches inner");
    send.send_response(ok());
    assert!(call.await.expect("join").is_ok());

    store
        .set("kill-switch", "all_writes", "test", "test")
        .await
        .expect("set");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let err = svc
        .ready()
        .await
        .expect("ready")
        .call(write(false))
        .await
        .expect_err("suppressed");
    assert_eq!(
        err,
        CallError::KillSwitch {
            scope: "all_writes"
        }
    );
    assert_eq!(err.suppression_reason(), Some("kill_switch"));
    // Reads still go through while writes are stopped.
    let call = tokio::spawn(svc.clone().oneshot(read()));
    let (_, send) = handle.next_request().await.expect("read reaches inner");
    send.send_response(ok());
    assert!(call.await.expect("join").is_ok());
    assert_no_request(&mut handle, Duration::from_millis(10)).await;
}
