//! Forms: what a page's form declares, and what submitting it sends.
//!
//! A renderer holds a form only as a capability; when it calls
//! `submit(FIELDS)`, the desk turns `FIELDS` into a map and asks
//! [`Form::submission`] what to send. The form, not the renderer, decides
//! the URL, the method and the hidden fields; the renderer can only fill
//! in the fields the page shows it.

use std::collections::BTreeMap;

use pola_syrup::Value;
use url::Url;
use url::form_urlencoded;

/// The longest value a renderer may give a field, in bytes.
pub const MAX_VALUE: usize = 4096;

/// A form of the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Form {
    /// Where it submits: its `action` resolved against the page (the page's
    /// own URL when the action is missing, empty, or not http(s)).
    pub action: Url,
    /// How it submits.
    pub method: Method,
    /// Its fields in page order, hidden ones included.
    pub fields: Vec<Field>,
}

/// How a form submits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// The fields become the action's query string.
    Get,
    /// The fields are the body, `application/x-www-form-urlencoded`.
    Post,
}

/// One field of a form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The name it is submitted under; `""` for a field that shows but is
    /// never sent.
    pub name: String,
    /// What kind of field it is.
    pub kind: FieldKind,
    /// Its value on the page: the text for text kinds, `"on"` or `""` for a
    /// checkbox, the selected option's label for a select, the label of a
    /// submit button.
    pub value: String,
    /// Its label (the page's `placeholder`), possibly `""`.
    pub label: String,
    /// For a select: the options' labels, as shown; `[]` otherwise.
    pub options: Vec<String>,
    /// For a select: the value sent for each option (parallel to
    /// `options`); `[]` otherwise.
    pub option_values: Vec<String>,
    /// For a checkbox: what is sent when it is checked (its `value`, `"on"`
    /// by default). For a submit button: what is sent when it is the one
    /// pressed. Otherwise `""`.
    pub sent_value: String,
}

/// The kinds of field, as the tree names them (`'text`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// A one-line text field (also every input type not listed here).
    Text,
    /// A password field.
    Password,
    /// An e-mail address field.
    Email,
    /// A search field.
    Search,
    /// A number field (the value is still a string).
    Number,
    /// A checkbox: value `"on"` or `""`.
    Checkbox,
    /// A multi-line text field.
    Textarea,
    /// A choice among `options`.
    Select,
    /// A submit button; its value is its label.
    Submit,
    /// A hidden field: never in the tree, always sent with the page's
    /// value. Also any field the page hides (`hidden`, an inline
    /// `display: none` on it or around it): a browser sends those too.
    Hidden,
}

impl FieldKind {
    /// The symbol the tree uses for this kind (`"text"`, `"password"`, …).
    pub fn symbol(self) -> &'static str {
        match self {
            FieldKind::Text => "text",
            FieldKind::Password => "password",
            FieldKind::Email => "email",
            FieldKind::Search => "search",
            FieldKind::Number => "number",
            FieldKind::Checkbox => "checkbox",
            FieldKind::Textarea => "textarea",
            FieldKind::Select => "select",
            FieldKind::Submit => "submit",
            FieldKind::Hidden => "hidden",
        }
    }
}

/// What to send when a form is submitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submission {
    /// Fetch this URL (the action with the fields as its query).
    Get(Url),
    /// Post `body` to `url`.
    Post {
        /// The form's action.
        url: Url,
        /// The fields, `application/x-www-form-urlencoded` (UTF-8).
        body: Vec<u8>,
    },
}

/// Why a submission was refused. Every message is plain words about the
/// renderer's request; none carries the page's hidden values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormError {
    /// The fields were not a dictionary.
    #[error("the fields must be a dictionary from field name to string")]
    NotADictionary,
    /// A key or value was not a string.
    #[error("field names and values must be strings")]
    NotAString,
    /// A name the form does not declare (or declares without a name).
    #[error("the form has no field named {0:?}")]
    UnknownField(String),
    /// A hidden field given a value other than the page's.
    #[error("the hidden field {0:?} cannot be changed")]
    HiddenChanged(String),
    /// A value over [`MAX_VALUE`] bytes.
    #[error("the value for {0:?} is too long (at most 4 KiB)")]
    ValueTooLong(String),
    /// A checkbox given something other than `"on"` or `""`.
    #[error("the checkbox {0:?} takes \"on\" or \"\"")]
    NotACheckboxValue(String),
    /// A select given something not among its options.
    #[error("{0:?} has no such option")]
    NoSuchOption(String),
    /// A submit button given something other than its label.
    #[error("the button {0:?} has no such label")]
    NoSuchButton(String),
}

impl Form {
    /// What submitting this form with `values` sends.
    ///
    /// `values` maps field names to strings, as a renderer's
    /// `submit(FIELDS)` gives them. A field not named keeps the page's
    /// value; hidden fields always go with the page's values; a checkbox is
    /// sent (as its own value) only when `"on"`; a submit button is sent
    /// only when named (with its label) and only if it has a name; fields
    /// without a name are never sent.
    ///
    /// # Errors
    ///
    /// A name the form does not declare, a hidden field given another
    /// value, a value over 4 KiB, a checkbox value other than `"on"`/`""`,
    /// a select value not among its options, or a button value other than
    /// its label: see [`FormError`].
    pub fn submission(&self, values: &BTreeMap<String, String>) -> Result<Submission, FormError> {
        for (name, value) in values {
            if value.len() > MAX_VALUE {
                return Err(FormError::ValueTooLong(shorten(name)));
            }
            if name.is_empty() || !self.fields.iter().any(|f| &f.name == name) {
                return Err(FormError::UnknownField(shorten(name)));
            }
        }
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        let mut pressed = false;
        for f in &self.fields {
            if f.name.is_empty() {
                continue;
            }
            let given = values.get(&f.name).map(String::as_str);
            match f.kind {
                FieldKind::Hidden => {
                    if given.is_some_and(|v| v != f.value) {
                        return Err(FormError::HiddenChanged(shorten(&f.name)));
                    }
                    pairs.push((&f.name, &f.value));
                }
                FieldKind::Checkbox => match given.unwrap_or(&f.value) {
                    "on" => pairs.push((&f.name, &f.sent_value)),
                    "" => {}
                    _ => return Err(FormError::NotACheckboxValue(shorten(&f.name))),
                },
                FieldKind::Select => {
                    let label = given.unwrap_or(&f.value);
                    match f.options.iter().position(|o| o == label) {
                        Some(i) => {
                            let v = f.option_values.get(i).map_or(label, String::as_str);
                            pairs.push((&f.name, v));
                        }
                        // Nothing to choose from: nothing is sent.
                        None if given.is_none() || (f.options.is_empty() && label.is_empty()) => {}
                        None => return Err(FormError::NoSuchOption(shorten(&f.name))),
                    }
                }
                FieldKind::Submit => {
                    // Buttons sharing a name are told apart by their label;
                    // one button at most is pressed.
                    if given == Some(f.value.as_str()) && !pressed {
                        pressed = true;
                        pairs.push((&f.name, &f.sent_value));
                    }
                }
                _ => pairs.push((&f.name, given.unwrap_or(&f.value))),
            }
        }
        for (name, value) in values {
            let buttons: Vec<&Field> = self
                .fields
                .iter()
                .filter(|f| &f.name == name && f.kind == FieldKind::Submit)
                .collect();
            let only_buttons =
                self.fields.iter().filter(|f| &f.name == name).count() == buttons.len();
            if only_buttons && !buttons.iter().any(|b| &b.value == value) {
                return Err(FormError::NoSuchButton(shorten(name)));
            }
        }
        let encoded = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        match self.method {
            Method::Get => {
                let mut url = self.action.clone();
                url.set_query(Some(&encoded));
                Ok(Submission::Get(url))
            }
            Method::Post => Ok(Submission::Post {
                url: self.action.clone(),
                body: encoded.into_bytes(),
            }),
        }
    }
}

/// A renderer's `FIELDS` (a Syrup dictionary from string to string) as the
/// map [`Form::submission`] takes.
///
/// # Errors
///
/// [`FormError::NotADictionary`] or [`FormError::NotAString`].
pub fn values_from<R>(fields: &Value<R>) -> Result<BTreeMap<String, String>, FormError> {
    let Value::Dict(d) = fields else {
        return Err(FormError::NotADictionary);
    };
    let mut out = BTreeMap::new();
    for (k, v) in d {
        match (k, v) {
            (Value::String(k), Value::String(v)) => {
                out.insert(k.clone(), v.clone());
            }
            _ => return Err(FormError::NotAString),
        }
    }
    Ok(out)
}

/// A name as an error quotes it: at most 64 characters.
fn shorten(name: &str) -> String {
    name.chars().take(64).collect()
}
