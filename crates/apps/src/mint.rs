//! E's mint and purse: the classic demonstration that capabilities alone,
//! with no access-control lists, make a sound payment system, written as
//! persistent kinds.
//!
//! - A **mint** (`make_purse(amount)`) creates purses holding new currency.
//! - A **purse** answers `balance()`, `sprout()` (a new empty purse of the
//!   same currency), `deposit(amount, source)` (moves `amount` from the
//!   purse `source` into this one) and, where the host gave the kinds a
//!   [`SturdyMaker`], `sturdyref()` or `sturdyref(seconds)` (a URI that
//!   reaches this purse again after a restart, for good or until it
//!   expires; it grants nothing more than the purse itself).
//! - An **issuer** is the mint's harmless facet: `make_purse(0)` only.
//!
//! Invariants (upheld by this module):
//! - A deposit succeeds only if `source` is a genuine purse of the *same*
//!   mint. Genuineness is checked by type ([`Turn::inspect`]): only this
//!   module can make a [`Purse`], so a forwarder, a purse of another
//!   vat, or an object that claims to be a purse is refused, and a purse
//!   of another mint is refused because its mint differs.
//! - A purse's balance lives in a private account object that is never
//!   handed out, so only a deposit can move money.
//! - Amounts are integers in `0..=`[`MAX_AMOUNT`]; negative, non-integer and
//!   too-large amounts are refused, and so is an overdraft or a balance that
//!   would overflow.
//! - A deposit is atomic: the withdrawal and the credit are staged in one
//!   turn, and if anything fails neither happens. In a persistent vat the
//!   turn's two account changes are one write, so a crash keeps both or
//!   neither.
//! - Total currency of a mint changes only through `make_purse`.
//! - A payment changes two small objects: its cost and its write do not
//!   grow with the number of purses (there is no ledger map to copy).

use std::sync::Arc;
use std::time::Duration;

use pola_vat::persist::{Kinds, Portrait};
use pola_vat::{Object, Outcome, Ref, Turn, Val, Vat, WaitError, error, error_message, from_fn};

/// The largest amount a purse can hold (fits Syrup's small integers).
pub const MAX_AMOUNT: u64 = i64::MAX as u64;

/// Reads an amount: a non-negative integer no larger than [`MAX_AMOUNT`].
///
/// # Errors
/// An error value naming the problem.
pub fn parse_amount(v: Option<&Val>) -> Result<u64, Val> {
    match v {
        Some(Val::Int(i)) => match i.as_i64() {
            Some(n) if n < 0 => Err(error("negative amount")),
            Some(n) => u64::try_from(n).map_err(|_| error("negative amount")),
            None => Err(error("amount too large")),
        },
        _ => Err(error("amount must be an integer")),
    }
}

fn amount_val(n: u64) -> Val {
    Val::int(n)
}

/// Makes a durable reference (a sturdyref URI) to an object, valid for the
/// given number of seconds (for good if `None`): what a host gives the
/// purse kind so that `sturdyref()` works. Called inside the purse's turn;
/// what it stores should be part of that turn.
pub type SturdyMaker =
    Arc<dyn Fn(&mut Turn<'_>, &Ref, Option<u64>) -> Result<String, Val> + Send + Sync>;

const ACCOUNT: &str = "pola.mint.account";
const PURSE: &str = "pola.mint.purse";
const MINT: &str = "pola.mint";
const ISSUER: &str = "pola.mint.issuer";

/// The kinds of this module, for a persistent vat's registry; `sturdy`
/// (if any) is what `sturdyref()` on a purse uses.
pub fn kinds(kinds: &mut Kinds, sturdy: Option<SturdyMaker>) {
    let bad = |what: &str| error(format!("{what}: bad state"));
    kinds.add(ACCOUNT, 1, move |_, state| {
        let n = parse_amount(Some(&state)).map_err(|_| bad(ACCOUNT))?;
        Ok(Account(n))
    });
    let for_purse = sturdy.clone();
    kinds.add(PURSE, 1, move |_, state| {
        let refs = state.as_list().unwrap_or_default();
        match refs {
            [Val::Ref(mint), Val::Ref(account)] => Ok(Purse {
                mint: mint.clone(),
                account: account.clone(),
                sturdy: for_purse.clone(),
            }),
            _ => Err(bad(PURSE)),
        }
    });
    let for_mint = sturdy.clone();
    kinds.add(MINT, 1, move |_, _| {
        Ok(Mint {
            sturdy: for_mint.clone(),
        })
    });
    kinds.add(ISSUER, 1, move |_, state| match state {
        Val::Ref(mint) => Ok(Issuer { mint }),
        _ => Err(bad(ISSUER)),
    });
}

/// A purse's private balance.
struct Account(u64);

impl Object for Account {
    fn receive(&self, cx: &mut Turn<'_>, method: &str, args: Vec<Val>) -> Outcome {
        match method {
            "balance" => Ok(amount_val(self.0)),
            "credit" => {
                let n = parse_amount(args.first())?;
                let next = self
                    .0
                    .checked_add(n)
                    .filter(|b| *b <= MAX_AMOUNT)
                    .ok_or_else(|| error("balance would exceed the maximum"))?;
                cx.become_(Account(next))?;
                Ok(amount_val(next))
            }
            "debit" => {
                let n = parse_amount(args.first())?;
                let next = self
                    .0
                    .checked_sub(n)
                    .ok_or_else(|| error("insufficient funds"))?;
                cx.become_(Account(next))?;
                Ok(amount_val(next))
            }
            _ => Err(error("no such method")),
        }
    }

    fn portrait(&self) -> Option<Portrait> {
        Some(Portrait::new(ACCOUNT, 1, amount_val(self.0)))
    }
}

/// A purse: the public face of an account of one mint.
pub struct Purse {
    mint: Ref,
    account: Ref,
    sturdy: Option<SturdyMaker>,
}

impl Object for Purse {
    fn receive(&self, cx: &mut Turn<'_>, method: &str, args: Vec<Val>) -> Outcome {
        match method {
            "balance" | "get_balance" => cx.call(&self.account, "balance", Vec::new()),
            "sprout" => cx.call(&self.mint, "make_purse", vec![Val::int(0i64)]),
            "deposit" => {
                let amount = parse_amount(args.first())?;
                match args.get(1) {
                    // A promise for a purse (a pipelined sprout, say): try
                    // again once it settles.
                    Some(Val::Ref(src)) if src.is_promise() => {
                        let me = cx.me().ok_or_else(|| error("purse"))?;
                        Ok(Val::Ref(cx.when(src, move |cx, settled| {
                            cx.call(&me, "deposit", vec![amount_val(amount), settled?])
                        })))
                    }
                    Some(Val::Ref(src)) => {
                        let not_ours = || error("not a purse of this mint");
                        let src = cx.inspect::<Purse>(src).ok_or_else(not_ours)?;
                        if src.mint != self.mint {
                            return Err(not_ours());
                        }
                        cx.call(&src.account, "debit", vec![amount_val(amount)])?;
                        cx.call(&self.account, "credit", vec![amount_val(amount)])?;
                        Ok(amount_val(amount))
                    }
                    Some(_) => Err(error("not a purse of this mint")),
                    None => Err(error("deposit needs a source purse")),
                }
            }
            "sturdyref" => {
                let make = self
                    .sturdy
                    .clone()
                    .ok_or_else(|| error("this host makes no sturdyrefs"))?;
                let me = cx.me().ok_or_else(|| error("purse"))?;
                let valid_for = match args.first() {
                    None => None,
                    Some(v) => Some(parse_amount(Some(v)).map_err(|_| {
                        error("sturdyref(seconds): seconds must be a whole number")
                    })?),
                };
                Ok(Val::str(make(cx, &me, valid_for)?))
            }
            _ => Err(error("no such method")),
        }
    }

    fn portrait(&self) -> Option<Portrait> {
        Some(Portrait::new(
            PURSE,
            1,
            Val::List(vec![
                Val::Ref(self.mint.clone()),
                Val::Ref(self.account.clone()),
            ]),
        ))
    }
}

/// The mint: `make_purse(amount)`. Its identity is the currency.
struct Mint {
    sturdy: Option<SturdyMaker>,
}

impl Object for Mint {
    fn receive(&self, cx: &mut Turn<'_>, method: &str, args: Vec<Val>) -> Outcome {
        match method {
            "make_purse" => {
                let amount = parse_amount(args.first())?;
                let mint = cx.me().ok_or_else(|| error("mint"))?;
                let account = cx.spawn(Account(amount));
                Ok(Val::Ref(cx.spawn(Purse {
                    mint,
                    account,
                    sturdy: self.sturdy.clone(),
                })))
            }
            _ => Err(error("no such method")),
        }
    }

    fn portrait(&self) -> Option<Portrait> {
        Some(Portrait::new(MINT, 1, Val::null()))
    }
}

/// The mint's harmless facet: makes empty purses only.
struct Issuer {
    mint: Ref,
}

impl Object for Issuer {
    fn receive(&self, cx: &mut Turn<'_>, method: &str, args: Vec<Val>) -> Outcome {
        match method {
            "make_purse" => match parse_amount(args.first())? {
                0 => cx.call(&self.mint, "make_purse", vec![Val::int(0u64)]),
                _ => Err(error("the issuer makes empty purses only")),
            },
            _ => Err(error("no such method")),
        }
    }

    fn portrait(&self) -> Option<Portrait> {
        Some(Portrait::new(ISSUER, 1, Val::Ref(self.mint.clone())))
    }
}

/// Makes a new mint (a new currency) in this turn's vat; its purses make
/// sturdyrefs with `sturdy` (give the same one to [`kinds`]).
pub fn new_mint(cx: &mut Turn<'_>, sturdy: Option<SturdyMaker>) -> Ref {
    cx.spawn(Mint { sturdy })
}

/// Makes the issuer facet of `mint` (which must be near) in this turn's
/// vat.
pub fn new_issuer(cx: &mut Turn<'_>, mint: &Ref) -> Ref {
    cx.spawn(Issuer { mint: mint.clone() })
}

/// Makes a new mint in `vat`, from outside any vat.
pub fn spawn_mint(vat: &Vat) -> Ref {
    vat.spawn(Mint { sturdy: None })
}

/// Why the demo exchange stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// A step did not settle as it should have.
    #[error("demo step failed: {0}")]
    Wait(#[from] WaitError),
    /// A step settled with an unexpected result.
    #[error("demo step gave an unexpected result: {0}")]
    Unexpected(String),
}

/// Alice: pays someone from her purse by handing over a fresh payment purse.
fn alice(purse: Ref) -> impl Object {
    from_fn(move |cx, method, args| {
        if method != "pay" {
            return Err(error("no such method"));
        }
        let payee = args
            .first()
            .and_then(Val::as_ref)
            .cloned()
            .ok_or_else(|| error("pay whom?"))?;
        let amount = parse_amount(args.get(1))?;
        // Pipelined: the deposit goes to the payment before it exists here.
        let payment = cx.send(&purse, "sprout", Vec::new());
        let deposited = cx.send(
            &payment,
            "deposit",
            vec![amount_val(amount), Val::Ref(purse.clone())],
        );
        Ok(Val::Ref(cx.when(&deposited, move |cx, o| {
            o?;
            let thanks = cx.send(
                &payee,
                "receive",
                vec![Val::Ref(payment.clone()), amount_val(amount)],
            );
            Ok(Val::Ref(cx.when(&thanks, move |_cx, o| {
                o?;
                Ok(Val::Ref(payment))
            })))
        })))
    })
}

/// Bob: takes a payment into his own purse.
fn bob(purse: Ref) -> impl Object {
    from_fn(move |cx, method, args| {
        if method != "receive" {
            return Err(error("no such method"));
        }
        let payment = args.first().cloned().ok_or_else(|| error("no payment"))?;
        let amount = args.get(1).cloned().ok_or_else(|| error("no amount"))?;
        Ok(Val::Ref(cx.send(&purse, "deposit", vec![amount, payment])))
    })
}

/// A fake purse: claims a large balance and accepts every deposit.
fn forged_purse() -> impl Object {
    from_fn(|_cx, method, _args| match method {
        "balance" => Ok(Val::int(1_000_000i64)),
        _ => Ok(Val::int(0i64)),
    })
}

/// Runs Alice, Bob and a mint in three vats: Alice pays Bob 10 with a
/// payment purse, then the attacks that must fail. Calls `step` with one
/// line per step, as it happens.
///
/// # Errors
/// A step that did not settle within `timeout`, or settled wrongly.
pub fn demo_exchange_with(
    timeout: Duration,
    step: &mut dyn FnMut(String),
) -> Result<(), DemoError> {
    let mint_vat = Vat::new("mint");
    let alice_vat = Vat::new("alice");
    let bob_vat = Vat::new("bob");
    let result = run_demo(timeout, step, &mint_vat, &alice_vat, &bob_vat);
    for v in [&mint_vat, &alice_vat, &bob_vat] {
        v.shutdown();
    }
    result
}

/// Runs [`demo_exchange_with`] and returns its transcript.
///
/// # Errors
/// As [`demo_exchange_with`].
pub fn demo_exchange(timeout: Duration) -> Result<Vec<String>, DemoError> {
    let mut lines = Vec::new();
    demo_exchange_with(timeout, &mut |l| lines.push(l))?;
    Ok(lines)
}

fn run_demo(
    timeout: Duration,
    step: &mut dyn FnMut(String),
    mint_vat: &Vat,
    alice_vat: &Vat,
    bob_vat: &Vat,
) -> Result<(), DemoError> {
    let get_ref = |v: Val| match v {
        Val::Ref(r) => Ok(r),
        other => Err(DemoError::Unexpected(format!("{other:?}"))),
    };
    let balance = |purse: &Ref| -> Result<i64, DemoError> {
        let v = bob_vat.block_on(&bob_vat.send(purse, "balance", Vec::new()), timeout)?;
        v.as_i64()
            .ok_or_else(|| DemoError::Unexpected(format!("{v:?}")))
    };
    let refused = |p: &Ref| -> Result<String, DemoError> {
        match mint_vat.block_on(p, timeout) {
            Err(WaitError::Broken(e)) => Ok(error_message(&e).unwrap_or("refused").to_owned()),
            Ok(v) => Err(DemoError::Unexpected(format!("accepted: {v:?}"))),
            Err(e) => Err(e.into()),
        }
    };
    step(format!(
        "three vats, each its own event loop: {} ({}), {} ({}), {} ({})",
        mint_vat.name(),
        mint_vat.id(),
        alice_vat.name(),
        alice_vat.id(),
        bob_vat.name(),
        bob_vat.id()
    ));
    let mint = spawn_mint(mint_vat);
    let alice_purse = get_ref(mint_vat.block_on(
        &mint_vat.send(&mint, "make_purse", vec![Val::int(100i64)]),
        timeout,
    )?)?;
    let bob_purse = get_ref(mint_vat.block_on(
        &mint_vat.send(&mint, "make_purse", vec![Val::int(50i64)]),
        timeout,
    )?)?;
    step(format!(
        "the mint makes Alice a purse with {} and Bob a purse with {}",
        balance(&alice_purse)?,
        balance(&bob_purse)?
    ));
    let alice = alice_vat.spawn(alice(alice_purse.clone()));
    let bob = bob_vat.spawn(bob(bob_purse.clone()));
    step("Alice (in her vat) holds only her purse; Bob (in his) only his".to_owned());
    let payment = get_ref(alice_vat.block_on(
        &alice_vat.send(&alice, "pay", vec![Val::Ref(bob.clone()), Val::int(10i64)]),
        timeout,
    )?)?;
    step("Alice sprouts a payment purse, deposits 10 into it (pipelined), and sends it to Bob; Bob deposits it into his purse".to_owned());
    let (a, b, p) = (
        balance(&alice_purse)?,
        balance(&bob_purse)?,
        balance(&payment)?,
    );
    step(format!("balances: Alice {a}, Bob {b}, payment {p}"));
    if (a, b, p) != (90, 60, 0) {
        return Err(DemoError::Unexpected(format!("balances {a} {b} {p}")));
    }

    let again = bob_vat.send(
        &bob_purse,
        "deposit",
        vec![Val::int(10i64), Val::Ref(payment.clone())],
    );
    step(format!(
        "Bob tries to take 10 more from the empty payment: refused ({})",
        refused(&again)?
    ));
    let fake = bob_vat.spawn(forged_purse());
    let forged = bob_vat.send(
        &bob_purse,
        "deposit",
        vec![Val::int(500i64), Val::Ref(fake)],
    );
    step(format!(
        "Bob tries to deposit 500 from a forged purse that claims a balance of 1000000: refused ({})",
        refused(&forged)?
    ));
    let other_mint = spawn_mint(mint_vat);
    let counterfeit = mint_vat.send(&other_mint, "make_purse", vec![Val::int(1000i64)]);
    let cross = bob_vat.send(
        &bob_purse,
        "deposit",
        vec![Val::int(5i64), Val::Ref(counterfeit)],
    );
    step(format!(
        "Bob tries to deposit 5 from a purse of another mint: refused ({})",
        refused(&cross)?
    ));
    let negative = alice_vat.send(
        &alice_purse,
        "deposit",
        vec![Val::int(-5i64), Val::Ref(bob_purse.clone())],
    );
    step(format!(
        "Alice tries to deposit -5 from Bob's purse (a theft in disguise): refused ({})",
        refused(&negative)?
    ));
    let (a, b) = (balance(&alice_purse)?, balance(&bob_purse)?);
    step(format!("balances unchanged: Alice {a}, Bob {b}"));
    if (a, b) != (90, 60) {
        return Err(DemoError::Unexpected(format!("balances {a} {b}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts() {
        assert_eq!(parse_amount(Some(&Val::int(0i64))), Ok(0));
        assert_eq!(parse_amount(Some(&Val::int(i64::MAX))), Ok(MAX_AMOUNT));
        let msg = |v: Option<&Val>| {
            parse_amount(v)
                .err()
                .and_then(|e| error_message(&e).map(str::to_owned))
        };
        assert_eq!(
            msg(Some(&Val::int(-1i64))).as_deref(),
            Some("negative amount")
        );
        assert_eq!(
            msg(Some(&Val::int(u64::MAX))).as_deref(),
            Some("amount too large")
        );
        assert_eq!(
            msg(Some(&Val::f64(3.0))).as_deref(),
            Some("amount must be an integer")
        );
        assert_eq!(msg(None).as_deref(), Some("amount must be an integer"));
    }
}
