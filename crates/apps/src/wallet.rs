//! A wallet over a purse at some mint, usually on another machine, as
//! persistent kinds: what `pola serve --wallet-from` serves.
//!
//! A wallet has two facets over two purses of the mint's currency, both
//! held as far references that can be made again after a restart (built
//! from the purses' sturdyrefs; see [`pola_vat::Remote::recipe`]):
//! - the **wallet** (the owner's; keep it private): `balance()`,
//!   `pay(payee_uri, amount)` (sprouts a payment purse at the mint, moves
//!   `amount` into it from the main purse and hands it to the payee's
//!   `receive`), `deposit_received()` (moves everything received into the
//!   main purse; answers the new balance);
//! - the **payee** (the one to give payers): `receive(payment, amount)`
//!   moves `amount` out of `payment` into the wallet's *incoming* purse at
//!   once. The deposit is the check: a payment that is not a genuine purse
//!   of the same mint, or holds less, is refused, and the payer hears so.
//!   The payee can neither spend nor read the balance.
//!
//! A far reference made from a sturdyref is passed in a message to its own
//! peer as that peer's object only once it has been fetched; the wallet
//! therefore passes a purse to the mint only after the purse has answered
//! something in this session.
//!
//! Invariants (upheld by this module and the mint):
//! - The wallet's state is two references; the money is at the mint. A
//!   restart of the wallet's host loses nothing: a payment whose `receive`
//!   was answered is in the incoming purse.
//! - Only the owner's facet can take money out of either purse.

use std::sync::Arc;

use pola_vat::persist::{Kinds, Portrait};
use pola_vat::{Object, Outcome, Ref, Turn, Val, error};

use crate::mint::parse_amount;

/// Reaches the object a sturdyref URI names (for `pay`): a capability the
/// host gives the wallet kind, typically `PeerHandle::enliven`.
pub type Enliven = Arc<dyn Fn(&str) -> Result<Ref, Val> + Send + Sync>;

const WALLET: &str = "pola.wallet";
const PAYEE: &str = "pola.wallet.payee";

/// The kinds of this module, for a persistent vat's registry; `enliven` is
/// how `pay` reaches a payee.
pub fn kinds(kinds: &mut Kinds, enliven: Enliven) {
    let bad = |what: &str| error(format!("{what}: bad state"));
    kinds.add(WALLET, 1, move |_, state| match state.as_list() {
        Some([Val::Ref(purse), Val::Ref(incoming)]) => Ok(Wallet {
            purse: purse.clone(),
            incoming: incoming.clone(),
            enliven: enliven.clone(),
        }),
        _ => Err(bad(WALLET)),
    });
    kinds.add(PAYEE, 1, move |_, state| match state {
        Val::Ref(incoming) => Ok(Payee { incoming }),
        _ => Err(bad(PAYEE)),
    });
}

/// Makes a wallet's two facets over `purse` (its money) and `incoming`
/// (where received payments go; a purse of the same mint): `(wallet,
/// payee)`.
pub fn new_wallet(cx: &mut Turn<'_>, purse: Ref, incoming: Ref, enliven: Enliven) -> (Ref, Ref) {
    let payee = cx.spawn(Payee {
        incoming: incoming.clone(),
    });
    let wallet = cx.spawn(Wallet {
        purse,
        incoming,
        enliven,
    });
    (wallet, payee)
}

/// The owner's facet.
struct Wallet {
    purse: Ref,
    incoming: Ref,
    enliven: Enliven,
}

impl Object for Wallet {
    fn receive(&self, cx: &mut Turn<'_>, method: &str, args: Vec<Val>) -> Outcome {
        match method {
            "balance" => Ok(Val::Ref(cx.send(&self.purse, "balance", Vec::new()))),
            "pay" => {
                let uri = args
                    .first()
                    .and_then(Val::as_str)
                    .ok_or_else(|| error("pay needs the payee's sturdyref URI"))?;
                let amount = parse_amount(args.get(1))?;
                let payee = (self.enliven)(uri)?;
                let sprouted = cx.send(&self.purse, "sprout", Vec::new());
                let purse = self.purse.clone();
                // The purse is passed to the mint only once it has answered
                // (so the mint sees its own purse, not a proxy).
                Ok(Val::Ref(cx.when(&sprouted, move |cx, o| {
                    let payment = o?
                        .as_ref()
                        .cloned()
                        .ok_or_else(|| error("sprout gave no purse"))?;
                    let filled =
                        cx.send(&payment, "deposit", vec![Val::int(amount), Val::Ref(purse)]);
                    Ok(Val::Ref(cx.when(&filled, move |cx, o| {
                        o?;
                        Ok(Val::Ref(cx.send(
                            &payee,
                            "receive",
                            vec![Val::Ref(payment), Val::int(amount)],
                        )))
                    })))
                })))
            }
            "deposit_received" => {
                let received = cx.send(&self.incoming, "balance", Vec::new());
                let (purse, incoming) = (self.purse.clone(), self.incoming.clone());
                Ok(Val::Ref(cx.when(&received, move |cx, o| {
                    let amount = parse_amount(Some(&o?))?;
                    let moved = cx.send(
                        &purse,
                        "deposit",
                        vec![Val::int(amount), Val::Ref(incoming)],
                    );
                    Ok(Val::Ref(cx.when(&moved, move |cx, o| {
                        o?;
                        Ok(Val::Ref(cx.send(&purse, "balance", Vec::new())))
                    })))
                })))
            }
            _ => Err(error("no such method")),
        }
    }

    fn portrait(&self) -> Option<Portrait> {
        Some(Portrait::new(
            WALLET,
            1,
            Val::List(vec![
                Val::Ref(self.purse.clone()),
                Val::Ref(self.incoming.clone()),
            ]),
        ))
    }
}

/// The payers' facet.
struct Payee {
    incoming: Ref,
}

impl Object for Payee {
    fn receive(&self, cx: &mut Turn<'_>, method: &str, args: Vec<Val>) -> Outcome {
        match method {
            "receive" => {
                let payment = match args.first() {
                    Some(Val::Ref(r)) => r.clone(),
                    _ => return Err(error("receive needs a payment purse")),
                };
                let amount = parse_amount(args.get(1))?;
                let deposited = cx.send(
                    &self.incoming,
                    "deposit",
                    vec![Val::int(amount), Val::Ref(payment)],
                );
                Ok(Val::Ref(cx.when(&deposited, move |_, o| {
                    o?;
                    Ok(Val::int(amount))
                })))
            }
            _ => Err(error("no such method")),
        }
    }

    fn portrait(&self) -> Option<Portrait> {
        Some(Portrait::new(PAYEE, 1, Val::Ref(self.incoming.clone())))
    }
}
