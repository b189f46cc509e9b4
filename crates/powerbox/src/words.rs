//! Requests in plain words, for the install dialog and the audit view.
//!
//! Every string the app chose (a path hint, an interface name) is put in
//! quotes with [`crate::text::quote`]; origins are shown as written, since
//! [`crate::Origin`] only holds canonical ASCII.

use crate::package::{Access, Kind, Request, Sites};
use crate::text::quote;

/// One request in plain words, e.g. "Read and change one file you choose
/// (it suggests \"notes.txt\")" or "Connect to `https://example.org`".
///
/// ```
/// use pola_powerbox::{describe, Kind, Request, Sites};
/// let clock = Request {
///     name: "time".into(), kind: Kind::Clock, reason: "to show the time".into(),
///     access: None, path: None, sites: Sites::None, interface: None,
/// };
/// assert_eq!(describe(&clock), "Know the time");
/// ```
pub fn describe(request: &Request) -> String {
    let suggestion = || match &request.path {
        Some(p) => format!(" (it suggests {})", quote(p)),
        None => String::new(),
    };
    match request.kind {
        Kind::File => match request.access {
            Some(Access::ReadWrite) => {
                format!("Read and change one file you choose{}", suggestion())
            }
            _ => format!("Read one file you choose{}", suggestion()),
        },
        Kind::Folder => match request.access {
            Some(Access::ReadWrite) => format!(
                "Read and change one folder you choose, and everything in it{}",
                suggestion()
            ),
            _ => format!(
                "Read one folder you choose, and everything in it{}",
                suggestion()
            ),
        },
        Kind::Web => match &request.sites {
            Sites::Anywhere => "Connect to any web site".to_owned(),
            Sites::Some(list) if !list.is_empty() => {
                let names: Vec<String> = list.iter().map(ToString::to_string).collect();
                format!("Connect to {}", and_list(&names))
            }
            _ => "Connect to no web site".to_owned(),
        },
        Kind::Clock => "Know the time".to_owned(),
        Kind::Random => "Get random numbers".to_owned(),
        Kind::Storage => "Keep its own data".to_owned(),
        Kind::Object => match &request.interface {
            Some(i) => format!("Use an object that offers {}", quote(i)),
            None => "Use another app's object".to_owned(),
        },
    }
}

/// "a", "a and b", "a, b and c".
pub(crate) fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Origin;

    fn request(kind: Kind) -> Request {
        Request {
            name: "r".into(),
            kind,
            reason: "why".into(),
            access: None,
            path: None,
            sites: Sites::None,
            interface: None,
        }
    }

    #[test]
    fn every_kind_in_words() {
        let mut file = request(Kind::File);
        file.access = Some(Access::ReadWrite);
        file.path = Some("notes.txt".into());
        assert_eq!(
            describe(&file),
            "Read and change one file you choose (it suggests \"notes.txt\")"
        );
        file.access = Some(Access::Read);
        file.path = None;
        assert_eq!(describe(&file), "Read one file you choose");
        let mut folder = request(Kind::Folder);
        folder.access = Some(Access::ReadWrite);
        assert_eq!(
            describe(&folder),
            "Read and change one folder you choose, and everything in it"
        );
        let mut web = request(Kind::Web);
        web.sites = Sites::Anywhere;
        assert_eq!(describe(&web), "Connect to any web site");
        let site = |s| Origin::parse(s).expect("origin");
        web.sites = Sites::Some(vec![site("https://example.org")]);
        assert_eq!(describe(&web), "Connect to https://example.org");
        web.sites = Sites::Some(vec![
            site("https://a.example"),
            site("https://b.example"),
            site("http://c.example:8080"),
        ]);
        assert_eq!(
            describe(&web),
            "Connect to https://a.example, https://b.example and http://c.example:8080"
        );
        assert_eq!(describe(&request(Kind::Clock)), "Know the time");
        assert_eq!(describe(&request(Kind::Random)), "Get random numbers");
        assert_eq!(describe(&request(Kind::Storage)), "Keep its own data");
        let mut object = request(Kind::Object);
        object.interface = Some("text-source".into());
        assert_eq!(
            describe(&object),
            "Use an object that offers \"text-source\""
        );
    }

    #[test]
    fn app_text_is_quoted_and_escaped() {
        let mut file = request(Kind::File);
        file.access = Some(Access::Read);
        file.path = Some("x\") and your whole disk (\u{202E}".into());
        let words = describe(&file);
        assert!(
            words.ends_with("(it suggests \"x\\u{22}) and your whole disk (\\u{202e}\")"),
            "{words}"
        );
    }
}
